"""The shape of mm/: one error tree, GFP bits once, no import cycles, literal __all__."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from percpu_kmem.mm import gfp
from percpu_kmem.mm.buddy import BuddyCorruption
from percpu_kmem.mm.physmem import BadPhysAddress, InconsistentState, PhysMem
from percpu_kmem.runtime import errors

MM_DIR = Path(__file__).resolve().parents[2] / "percpu_kmem" / "mm"
MM_MODULES = sorted(p.stem for p in MM_DIR.glob("*.py") if p.stem != "__init__")


def test_mm_errors_join_the_kmem_error_tree() -> None:
    assert InconsistentState is errors.InconsistentState
    assert issubclass(BuddyCorruption, errors.InconsistentState)
    assert issubclass(BadPhysAddress, errors.KmemUsageError)
    assert issubclass(BadPhysAddress, ValueError)


def test_bad_phys_address_is_caught_as_kmem_error() -> None:
    mem = PhysMem("1M")
    with pytest.raises(errors.KmemError):
        mem.read(mem.nr_pages << 12, 1)


def test_each_gfp_bit_once_with_its_kernel_spelling_as_alias() -> None:
    for name in gfp.__all__:
        if name.startswith("__GFP_"):
            assert getattr(gfp, name) == getattr(gfp, name[2:]), name


def test_no_mm_module_keeps_its_own_gfp_copies() -> None:
    for mod in MM_MODULES:
        tree = ast.parse((MM_DIR / f"{mod}.py").read_text())
        for node in tree.body:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
            for t in targets:
                if isinstance(t, ast.Name) and mod != "gfp":
                    assert "GFP_" not in t.id or not t.id.lstrip("_").startswith("GFP_"), f"{mod}.{t.id}"


@pytest.mark.parametrize("mod", MM_MODULES)
def test_every_mm_module_has_one_literal_all(mod: str) -> None:
    tree = ast.parse((MM_DIR / f"{mod}.py").read_text())
    alls = [n for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
            and any(isinstance(t, ast.Name) and t.id == "__all__"
                    for t in ([n.target] if isinstance(n, ast.AnnAssign) else n.targets))]
    assert len(alls) == 1, f"{mod}: {len(alls)} assignments to __all__"
    value = alls[0].value
    assert isinstance(value, ast.List) and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                                               for e in value.elts), f"{mod}: __all__ is not a literal list"
    names = [e.value for e in value.elts]  # type: ignore[attr-defined]
    assert len(names) == len(set(names)), f"{mod}: duplicates in __all__"


@pytest.mark.timeout(120)
def test_each_mm_module_imports_first_without_a_cycle() -> None:
    code = ("import importlib, sys\n"
            "for mod in sys.argv[1:]:\n"
            "    for k in [k for k in sys.modules if k.startswith('percpu_kmem')]:\n"
            "        del sys.modules[k]\n"
            "    importlib.import_module('percpu_kmem.mm.' + mod)\n")
    r = subprocess.run([sys.executable, "-c", code, *MM_MODULES], capture_output=True, text=True, timeout=100,
                       cwd=MM_DIR.parents[1])
    assert r.returncode == 0, r.stderr


def _mm_imports(mod: str) -> set[str]:
    """The mm modules ``mod`` imports anywhere (function bodies too), except type-only ones."""
    tree = ast.parse((MM_DIR / f"{mod}.py").read_text())
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                 for n in ast.walk(node)}
    deps = set()
    for node in ast.walk(tree):
        if id(node) in type_only or not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1:
            deps |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif node.module and node.module.startswith("percpu_kmem.mm."):
            deps.add(node.module.split(".")[2])
    return deps & set(MM_MODULES) - {mod}


def test_mm_import_graph_has_no_cycle_even_through_function_level_imports() -> None:
    graph = {mod: _mm_imports(mod) for mod in MM_MODULES}
    done: set[str] = set()

    def visit(mod: str, path: tuple[str, ...]) -> None:
        assert mod not in path, "import cycle: " + " -> ".join((*path, mod))
        if mod in done:
            return
        for dep in sorted(graph[mod]):
            visit(dep, (*path, mod))
        done.add(mod)

    for mod in MM_MODULES:
        visit(mod, ())


def test_no_private_reach_ins_between_mm_modules() -> None:
    for mod in MM_MODULES:
        tree = ast.parse((MM_DIR / f"{mod}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                assert not private, f"{mod} imports {private} from {node.module}"


def test_one_frame_walker_in_mm() -> None:
    walkers = [mod for mod in MM_MODULES if "_getframe" in (MM_DIR / f"{mod}.py").read_text()]
    assert walkers == ["context"]
