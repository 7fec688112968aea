"""The package's shape, as code: layers import only downward, no import cycles, literal
``__all__`` lists.

Layers, lowest first (docs/design.md): runtime/ knows nothing about memory; mm/ may use
the runtime; boot.py builds the machine's memory; machine.py composes the Machine;
linux.py lists the kernel API; the users (testing, scenarios, the command line, the
pytest plugin, the package's __init__) sit on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import percpu_kmem
from percpu_kmem import linux

PKG = Path(percpu_kmem.__file__).parent

#: module -> layer; a module may import only from its own layer or below.
LAYERS = {"runtime": 0, "mm": 1, "boot": 2, "snapshot": 2, "machine": 3, "linux": 4, "testing": 5, "scenarios": 5, "shrink": 5,
          "campaign": 5, "zoo": 5, "study": 5, "exhaustive": 5, "strategies": 5,
          "parallel": 5,
          "cli": 6, "pytest_plugin": 6, "__init__": 6, "__main__": 7}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts)


def _layer(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else "__init__"
    return LAYERS[key]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path, module: str) -> set[str]:
    """Every percpu_kmem module ``path`` imports at run time (TYPE_CHECKING blocks left out)."""
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.startswith("percpu_kmem"):
                    if child.module or child.level == 0:  # "from . import x" imports x, not the package
                        found.add(target)
                    for alias in child.names:  # "from . import costs" names a module
                        if (PKG.parent / (target + "." + alias.name).replace(".", "/")).with_suffix(".py").exists():
                            found.add(f"{target}.{alias.name}")
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("percpu_kmem"))
            visit(child)

    visit(tree)
    found.discard(module)
    return found


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
GRAPH = {m: {i for i in _imports(p, m) if i in MODULES} for m, p in MODULES.items()}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_layer_and_below(module: str) -> None:
    upward = sorted(i for i in GRAPH[module] if _layer(i) > _layer(module))
    assert not upward, f"{module} (layer {_layer(module)}) imports from above: {upward}"


def test_the_runtime_imports_nothing_of_memory() -> None:
    for module, deps in GRAPH.items():
        if module.startswith("percpu_kmem.runtime"):
            assert all(d.startswith("percpu_kmem.runtime") for d in deps), (module, deps)


def test_there_is_no_import_cycle() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if d.endswith("__init__") or GRAPH.get(d) is None:
                continue
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        # a package's __init__ re-exports its modules; cycles through it are the package's own
        if m not in state and not m.endswith(("runtime", "mm")) and m != "percpu_kmem":
            dfs(m)


def _all_assignments(path: Path) -> list[ast.AST]:
    tree = ast.parse(path.read_text())
    return [n for n in tree.body if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign))
            and any(isinstance(t, ast.Name) and t.id == "__all__"
                    for t in ([n.target] if not isinstance(n, ast.Assign) else n.targets))]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_every_module_has_one_literal_all(module: str) -> None:
    found = _all_assignments(MODULES[module])
    assert len(found) == 1, f"{module}: {len(found)} __all__ assignments"
    (node,) = found
    value = node.value
    assert isinstance(value, ast.List) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts), (
        f"{module}: __all__ is not a literal list of names")


def test_the_kernel_api_and_the_python_api_are_separate() -> None:
    kernel = set(linux.__all__)
    python = set(percpu_kmem.__all__)
    assert not kernel & python
    assert {"Machine", "Report", "Trace", "KmemError", "explore"} <= python
    assert {"kmalloc", "spin_lock", "alloc_pages", "smp_call_function", "on_each_cpu"} <= kernel
    for name in kernel:  # the kernel names still resolve at the top, for code written that way
        assert getattr(percpu_kmem, name) is getattr(linux, name)
    leaked = {"CURRENT", "current_task", "set_current_task", "caller_site", "user_site", "HARDIRQ_MASK", "SOFTIRQ_MASK", "block"} & (kernel | python)
    assert not leaked


def test_code_inside_a_class_body_uses_the_unmangled_gfp_names() -> None:
    from percpu_kmem import Machine
    from percpu_kmem.linux import GFP_FS, GFP_IO, GFP_KERNEL, GFP_WAIT, alloc_pages, kfree, kmalloc
    from percpu_kmem.linux import __free_pages as free_pages_of

    assert GFP_WAIT | GFP_IO | GFP_FS == GFP_KERNEL == linux.__GFP_WAIT | linux.__GFP_IO | linux.__GFP_FS

    class Driver:
        def run(self) -> None:
            buf = kmalloc(512, GFP_WAIT | GFP_IO | GFP_FS)
            page = alloc_pages(GFP_WAIT, 0)
            free_pages_of(page, 0)
            kfree(buf)

    m = Machine(cpus=1, memory="16M")
    m.run(Driver().run)
    assert m.reports == []
    m.check()
