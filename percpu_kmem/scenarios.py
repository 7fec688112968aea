"""Runnable scenarios: the stress tests and demonstrations the command line runs.

Two kinds live here.

*Stress scenarios* are what ``stress/`` holds and what a user writes: a function of a
booted :class:`Machine` that runs its tasks (``m.run(...)``) and asserts what must
hold, exactly the scenario :func:`percpu_kmem.testing.explore` takes, marked with
:func:`stress` to say which machine it wants::

    from percpu_kmem.scenarios import stress

    @stress(cpus=2, slab_debug=True)
    def double_free(m):
        ...
        m.run(driver)

A run of one fails when the scenario raises, when ``m.check()`` finds an
inconsistency, or when the machine recorded a report whose kind the scenario did
not declare with ``expect=`` (percpu_kmem/campaign.py runs them over seeds).
:func:`load_scenarios` finds them by path: a file (every marked function in it),
``file.py::name``, or a folder (every file in it, recursively).

:func:`default_scenarios` is the default set of ``percpu-kmem stress``: every file
of the repository's ``stress/`` folder except ``stress/zoo/`` (buggy on purpose).
:func:`leak_snapshot` and :func:`assert_no_leaks` are the leak check a scenario ends
with: what it allocated (slab objects, caches, vmalloc areas, per-CPU areas, mempools,
pages) is back where it was.

*Built-in demonstrations* (:data:`SCENARIOS`) take parameters and a ``fixed`` flag
and return a dict of results; ``explore_scenario`` runs one over many seeds.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .linux import (
    get_cpu,
    might_sleep,
    preempt_point,
    put_cpu,
    raise_irq,
    raw_smp_processor_id,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
)
from .machine import Machine
from .mm.gfp import GFP_ATOMIC, GFP_KERNEL
from .mm.kmalloc import kfree, kmalloc
from .mm.physmem import PAGE_SIZE
from .mm.slab import SLAB_POISON, SLAB_RED_ZONE, kmem_cache_alloc, kmem_cache_create, kmem_cache_free
from .runtime.errors import InconsistentState, KmemUsageError

#: Seeds a stress scenario runs over when it names no budget of its own.
STRESS_SEEDS = 200
#: The repository's folder of stress scenarios (next to the package).
STRESS_DIR = Path(__file__).resolve().parent.parent / "stress"
#: Sub-folders of stress/ left out of the default set: the zoo's drivers are buggy on purpose.
DEFAULT_EXCLUDE = ("zoo",)
#: The attribute :func:`stress` sets on a scenario function.
_MARK = "__percpu_kmem_stress__"


@dataclass(frozen=True)
class StressScenario:
    """A stress scenario: ``run(m)`` on a machine built with ``Machine(**machine)``.

    ``name`` is ``file.py::function`` for one loaded from a file; ``expect`` the
    report kinds that do not fail a run; ``seeds`` the scenario's own seed budget.
    """

    name: str
    run: Callable[[Machine], Any]
    doc: str = ""
    machine: dict[str, Any] = field(default_factory=dict)
    expect: frozenset[str] = frozenset()
    seeds: int = STRESS_SEEDS

    def make_machine(self, **overrides: Any) -> Machine:
        """A fresh machine for one run: the scenario's arguments, then ``overrides``."""
        return Machine(**{**self.machine, **overrides})


def stress(*, expect: str | Iterable[str] = (), seeds: int = STRESS_SEEDS,
           **machine: Any) -> Callable[[Callable[[Machine], Any]], Callable[[Machine], Any]]:
    """Mark ``fn(m)`` as a stress scenario run on ``Machine(**machine)`` (cpus, memory, slab_debug, ...).

    ``expect`` names the report kinds a run may show without failing (a kind or
    several); ``seeds`` is how many seeds a campaign gives it by default. The
    function itself is returned unchanged, so it still works with ``explore()``.
    """
    kinds = frozenset([expect] if isinstance(expect, str) else expect)
    if not all(isinstance(k, str) and k for k in kinds):
        raise KmemUsageError(f"stress(expect={expect!r}) takes report kinds (non-empty strings)")
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds <= 0:
        raise KmemUsageError(f"stress(seeds={seeds!r}) must be a positive int")
    for bad in ("policy", "seed", "replay"):
        if bad in machine:
            raise KmemUsageError(f"stress({bad}=...): a campaign chooses the {bad} of each run")

    def mark(fn: Callable[[Machine], Any]) -> Callable[[Machine], Any]:
        if not callable(fn):
            raise KmemUsageError(f"@stress marks a scenario function, got {fn!r}")
        setattr(fn, _MARK, (dict(machine), kinds, seeds))
        return fn
    return mark


def _doc_line(obj: Any) -> str:
    lines = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return lines[0] if lines else ""


def _scenario_of(fn: Callable[[Machine], Any], name: str) -> StressScenario:
    machine, kinds, seeds = getattr(fn, _MARK)
    return StressScenario(name, fn, _doc_line(fn), machine, kinds, seeds)


def _import_file(path: Path) -> Any:
    """Import a scenario file as a module of its own (its name derived from its path).

    The file's folder goes on ``sys.path`` first, as pytest's default import mode does,
    so a scenario file can import the driver module beside it.
    """
    name = "percpu_kmem_stress_" + "_".join(p for p in path.resolve().with_suffix("").parts[1:])
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    if name in sys.modules:
        return sys.modules[name]
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise KmemUsageError(f"cannot import scenario file {str(path)!r}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def scenarios_in(module: Any, where: str) -> list[StressScenario]:
    """The stress scenarios a module defines (functions marked with :func:`stress`), in file order."""
    found = [(getattr(getattr(fn, "__code__", None), "co_firstlineno", 0), attr, fn)
             for attr, fn in vars(module).items()
             if callable(fn) and hasattr(fn, _MARK) and getattr(fn, "__module__", None) == module.__name__]
    return [_scenario_of(fn, f"{where}::{attr}") for _, attr, fn in sorted(found, key=lambda t: t[:2])]


def load_scenarios(spec: str | Path) -> list[StressScenario]:
    """The stress scenarios ``spec`` names: a ``.py`` file, ``file.py::name`` or a folder.

    A folder is searched recursively (files starting with ``_`` are skipped), in
    sorted order. Raises KmemUsageError when nothing is found under ``spec``.
    """
    text = str(spec)
    path_text, _, fn_name = text.partition("::")
    path = Path(path_text)
    if not path.exists():
        raise KmemUsageError(f"no scenario file or folder {path_text!r}")
    if path.is_dir():
        if fn_name:
            raise KmemUsageError(f"{text!r}: '::name' follows a file, not a folder")
        found: list[StressScenario] = []
        for f in sorted(path.rglob("*.py")):
            if not any(part.startswith(("_", ".")) for part in f.relative_to(path).parts):
                found.extend(scenarios_in(_import_file(f), str(f)))
        if not found:
            raise KmemUsageError(f"no @stress scenario in any file under {path_text!r}")
        return found
    if path.suffix != ".py":
        raise KmemUsageError(f"{path_text!r} is not a Python file")
    module = _import_file(path)
    found = scenarios_in(module, path_text)
    if fn_name:
        fn = getattr(module, fn_name, None)
        if fn is None:
            raise KmemUsageError(f"{path_text!r} has no {fn_name!r}")
        if not callable(fn):
            raise KmemUsageError(f"{text!r} is not a function")
        if hasattr(fn, _MARK):
            return [_scenario_of(fn, text)]
        return [StressScenario(text, fn, _doc_line(fn))]  # a plain explore()-style scenario
    if not found:
        raise KmemUsageError(f"no @stress scenario in {path_text!r} (mark one with @stress(...))")
    return found


def _display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter commands), else absolute."""
    absolute = path.resolve()
    try:
        return str(absolute.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(absolute)


def default_scenarios(folder: str | Path | None = None) -> list[StressScenario]:
    """The default stress set: every scenario under ``folder`` (default: :data:`STRESS_DIR`)
    except the sub-folders in :data:`DEFAULT_EXCLUDE`. Raises KmemUsageError when the folder
    is missing (an installed package without the repository's stress/: pass a path)."""
    root = Path(folder) if folder is not None else STRESS_DIR
    if not root.is_dir():
        raise KmemUsageError(f"no stress/ folder at {str(root)!r} (percpu_kmem installed without its "
                             f"repository?): pass a scenario file or folder")
    found: list[StressScenario] = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).parts
        if rel[0] in DEFAULT_EXCLUDE or any(part.startswith(("_", ".")) for part in rel):
            continue
        where = _display_path(f)
        found.extend(scenarios_in(_import_file(Path(where)), where))
    if not found:
        raise KmemUsageError(f"no @stress scenario under {str(root)!r}")
    return found


def leak_snapshot(m: Machine) -> dict[str, int]:
    """What is allocated on ``m`` now, counted per kind: take it before a scenario's run and
    give it to :func:`assert_no_leaks` after. Read between runs (a quiet machine).

    Counted: objects in use in every slab cache by name (allocated from the slabs, less the
    ones cached in per-CPU magazines and the depot, which are free), vmalloc/ioremap areas,
    dynamic per-CPU areas, mempools, and pages allocated outside the slab caches, the
    vmalloc areas' own pages and the per-CPU chunks (page cache that reclaim may take is
    left out: reclaim owns it).
    """
    snap: dict[str, int] = {}
    for c in m.slab.caches:
        active = c.counts()[0] - c.cached_objects()
        snap[f"slab:{c.name}"] = snap.get(f"slab:{c.name}", 0) + active
    snap["vmalloc areas"] = len(m.vmalloc.vmlist)
    snap["percpu areas"] = sum(ch.nr_alloc for ch in m.percpu.chunks)
    snap["mempools"] = len(m.mempools.pools)
    used = m.mem.nr_pages - m.mm.nr_free_pages()
    chunk_pages = sum(len(ch.pfns) for ch in m.percpu.chunks if not ch.dead) * (m.percpu.unit_size // PAGE_SIZE)
    vm_pages = sum(len(a.pages) for a in m.vmalloc.vmlist)
    reclaim = m.mm.reclaim
    cache_pages = sum(reclaim.counts().values()) if reclaim is not None else 0
    snap["pages"] = used - m.slab.nr_slab_pages - chunk_pages - vm_pages - cache_pages
    return snap


def assert_no_leaks(m: Machine, before: dict[str, int]) -> None:
    """Raise AssertionError naming every count of :func:`leak_snapshot` that grew since ``before``
    (a leak: something the scenario allocated and did not free)."""
    after = leak_snapshot(m)
    grown = [f"{k}: {before.get(k, 0)} -> {v}" for k, v in sorted(after.items()) if v > before.get(k, 0)]
    if grown:
        raise AssertionError("leak check: still allocated after the scenario: " + "; ".join(grown))


@dataclass(frozen=True)
class Scenario:
    name: str
    doc: str
    run: Callable[..., dict[str, Any]]
    tasks: int = 4


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str, tasks: int = 4) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        SCENARIOS[name] = Scenario(name, (fn.__doc__ or "").strip().splitlines()[0], fn, tasks)
        return fn
    return deco


@scenario("percpu-counter")
def percpu_counter(m: Machine, tasks: int = 4, iterations: int = 20, fixed: bool = False) -> dict[str, Any]:
    """Per-CPU counter incremented without get_cpu() (or with it, --fixed): lost updates."""
    counts = [0] * m.nr_cpus

    def worker() -> None:
        for _ in range(iterations):
            cpu = get_cpu() if fixed else raw_smp_processor_id()
            v = counts[cpu]
            preempt_point("percpu_read")
            counts[cpu] = v + 1
            if fixed:
                put_cpu()
            else:
                preempt_point("percpu_write")

    m.run(*([worker] * tasks))
    return {"expected": tasks * iterations, "counted": sum(counts),
            "lost": tasks * iterations - sum(counts)}


@scenario("irq-lock")
def irq_lock(m: Machine, tasks: int = 2, iterations: int = 20, fixed: bool = False) -> dict[str, Any]:
    """An IRQ handler takes a lock its CPU holds with plain spin_lock (or irqsave, --fixed)."""
    lock = spin_lock_init("dev_lock")

    def handler(irq: int, dev: object) -> None:
        flags = spin_lock_irqsave(lock)
        spin_unlock_irqrestore(lock, flags)

    m.request_irq(10, handler, "dev", rate=0.2)

    def worker() -> None:
        for _ in range(iterations):
            if fixed:
                flags = spin_lock_irqsave(lock)
                preempt_point("critical")
                spin_unlock_irqrestore(lock, flags)
            else:
                spin_lock(lock)
                preempt_point("critical")
                spin_unlock(lock)

    m.run(*([worker] * tasks))
    return {"recursions": len(m.reports_of("spinlock_recursion"))}


@scenario("sleep-in-atomic", tasks=2)
def sleep_in_atomic(m: Machine, tasks: int = 2, iterations: int = 1, fixed: bool = False) -> dict[str, Any]:
    """might_sleep() inside a spinlock (or after it, --fixed)."""
    lock = spin_lock_init("my_lock")

    def worker() -> None:
        for _ in range(iterations):
            spin_lock(lock)
            if not fixed:
                might_sleep()
            spin_unlock(lock)
            might_sleep()

    m.run(*([worker] * tasks))
    return {"reports": len(m.reports_of("sleep_in_atomic"))}


@scenario("free-race", tasks=2)
def free_race(m: Machine, tasks: int = 2, iterations: int = 20, fixed: bool = False) -> dict[str, Any]:
    """Tasks drain a shared list of slab objects without a lock (or with one, --fixed): double frees."""
    lock = spin_lock_init("list_lock")
    box: list[Any] = []
    pending: list[int] = []

    def setup() -> None:
        box.append(kmem_cache_create("dev_buf", 64, 0, SLAB_RED_ZONE | SLAB_POISON))
        for _ in range(iterations):
            obj = kmem_cache_alloc(box[0], GFP_KERNEL)
            assert obj is not None, "a 64-byte object on a fresh machine"
            pending.append(obj)

    m.run(setup)

    def worker() -> None:
        while True:
            if fixed:
                spin_lock(lock)
            if not pending:
                if fixed:
                    spin_unlock(lock)
                return
            obj = pending[-1]  # look at the tail ...
            preempt_point("list_peek")
            if pending and pending[-1] == obj:
                pending.pop()  # ... and unlink it: another CPU may have seen the same tail
            if fixed:
                spin_unlock(lock)
            kmem_cache_free(box[0], obj)

    m.run(*([worker] * tasks))
    return {"double_frees": sum(r.count for r in m.reports_of("slab_double_free"))}


@scenario("irq-kmalloc", tasks=2)
def irq_kmalloc(m: Machine, tasks: int = 2, iterations: int = 10, fixed: bool = False) -> dict[str, Any]:
    """An interrupt handler calls kmalloc(GFP_KERNEL) (or GFP_ATOMIC, --fixed): sleeping in atomic context."""
    def handler(irq: int, dev: object) -> None:
        kfree(kmalloc(128, GFP_ATOMIC if fixed else GFP_KERNEL))

    m.request_irq(11, handler, "nic")

    def worker() -> None:
        for _ in range(iterations):
            kfree(kmalloc(256, GFP_KERNEL))
            raise_irq(11)

    m.run(*([worker] * tasks))
    return {"reports": len(m.reports_of("sleep_in_atomic"))}


DEFAULT_SCENARIO = "percpu-counter"


def explore_scenario(name: str, *, seeds: range, cpus: int, policy: str, tasks: int | None = None,
                     iterations: int | None = None, fixed: bool = False,
                     progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run scenario ``name`` for every seed; collect which seeds showed a bug."""
    sc = SCENARIOS[name]
    kw: dict[str, Any] = {"fixed": fixed}
    if tasks is not None:
        kw["tasks"] = tasks
    if iterations is not None:
        kw["iterations"] = iterations
    buggy: list[int] = []
    kinds: dict[str, int] = {}
    first: dict[str, Any] | None = None
    for seed in seeds:
        m = Machine(cpus=cpus, policy=policy, seed=seed)
        res = sc.run(m, **kw)
        try:
            m.check()
            inconsistent = ""
        except InconsistentState as e:  # what a report left behind (a lock held by a task an Oops
            inconsistent = str(e)       # killed), or an inconsistency of its own: a bug either way
        bad = bool(m.reports) or bool(res.get("lost")) or bool(inconsistent)
        for r in m.reports:
            kinds[r.kind] = kinds.get(r.kind, 0) + 1
        if inconsistent and not m.reports:
            kinds["inconsistent_state"] = kinds.get("inconsistent_state", 0) + 1
        if bad:
            buggy.append(seed)
            if first is None:
                first = {"seed": seed, "result": res,
                         "reports": [r.text for r in m.reports] + ([inconsistent] if inconsistent else []),
                         "replay": m.replay_hint() if policy != "free" else None}
        if progress:
            progress(1)
    return {"scenario": name, "policy": policy, "cpus": cpus, "runs": len(seeds), "buggy_seeds": buggy,
            "report_kinds": kinds, "first": first}


__all__ = ["STRESS_SEEDS", "STRESS_DIR", "DEFAULT_EXCLUDE", "StressScenario", "stress", "scenarios_in",
           "load_scenarios", "default_scenarios", "leak_snapshot", "assert_no_leaks",
           "Scenario", "SCENARIOS", "scenario", "percpu_counter", "irq_lock", "sleep_in_atomic", "free_race",
           "irq_kmalloc", "DEFAULT_SCENARIO", "explore_scenario"]
