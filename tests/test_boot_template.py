"""Boot templates (percpu_kmem/boot.py, percpu_kmem/snapshot.py): a machine booted from its
key's template is the machine a boot from scratch makes, object for object, and shares no
state with any other machine."""

from __future__ import annotations

import array
import random
import threading
import types
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import pytest

from percpu_kmem import GFP_KERNEL, Machine, kfree, kmalloc
from percpu_kmem import boot as boot_mod
from percpu_kmem.linux import (
    __free_pages,
    alloc_pages,
    alloc_percpu,
    free_percpu,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_free,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    vfree,
    vmalloc,
)
from percpu_kmem.machine import MEMORY_LAYERS
from percpu_kmem.mm.physmem import parse_size
from percpu_kmem.runtime.errors import KmemUsageError
from percpu_kmem.snapshot import Unsupported, compile_graph, immutable

PROCS = ("slabinfo", "buddyinfo", "zoneinfo", "meminfo", "vmstat", "vmallocinfo", "lock_stat")


@pytest.fixture(autouse=True)
def _fresh_templates(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(boot_mod, "TEMPLATE_AFTER", 2)  # templates from the third machine (quick tests)
    was = boot_mod.boot_templates(True)
    boot_mod.clear_boot_templates()
    yield
    boot_mod.clear_boot_templates()
    boot_mod.boot_templates(was)


# -- a structural comparison of two object graphs ------------------------------------------
def _fields(o: Any) -> dict[str, Any]:
    out = dict(getattr(o, "__dict__", {}))
    for k in type(o).__mro__:
        for n in k.__dict__.get("__slots__", ()):
            if n not in ("__weakref__", "__dict__") and hasattr(o, n):
                out[n] = getattr(o, n)
    return out


def same_state(a: Any, b: Any, memory_only: bool = False) -> set[int]:
    """Assert that ``a`` and ``b`` are the same graph: same types, equal values, the same
    aliasing (one object of ``a`` is always one object of ``b``), dicts in the same order. Returns the ids of the mutable objects the two graphs share.
    ``memory_only``: ``a`` and ``b`` are machines; compare their memory layers (what their
    tasks left, the engine, is not walked)."""
    pairs: dict[int, int] = {}
    back: dict[int, int] = {}
    shared: set[int] = set()
    keep = []
    stack: list[tuple[Any, Any, str]] = [(a, b, "m")]
    if memory_only:
        pairs[id(a)], back[id(b)] = id(b), id(a)
        stack = [(getattr(a, k), getattr(b, k), f"m.{k}") for k in vars(a) if k in MEMORY_LAYERS]
    while stack:
        x, y, path = stack.pop()
        assert type(x) is type(y), f"{path}: {type(x).__name__} != {type(y).__name__}"
        if immutable(x) and not isinstance(x, tuple):
            assert x == y or (x is y), f"{path}: {x!r} != {y!r}"
            continue
        if id(x) in pairs or id(y) in back:
            assert pairs.get(id(x)) == id(y) and back.get(id(y)) == id(x), f"{path}: aliasing differs"
            continue
        pairs[id(x)] = id(y)
        back[id(y)] = id(x)
        keep.append((x, y))
        if x is y and not isinstance(x, tuple):
            shared.add(id(x))
            continue
        t = type(x)
        if t in (list, tuple):
            assert len(x) == len(y), f"{path}: len {len(x)} != {len(y)}"
            stack.extend((p, q, f"{path}[{i}]") for i, (p, q) in enumerate(zip(x, y)))
        elif t in (dict, OrderedDict):
            assert list(x) == list(y), f"{path}: keys {list(x)[:8]} != {list(y)[:8]}"
            stack.extend((x[k], y[k], f"{path}[{k!r}]") for k in x)
        elif t in (set, frozenset):
            assert all(immutable(e) for e in x) and x == y, f"{path}: sets differ"
        elif t in (array.array, bytearray):
            assert x == y, f"{path}: contents differ"
        elif t in (type(threading.Lock()), type(threading.RLock())):
            assert x.locked() == y.locked() if hasattr(x, "locked") else True, path
        elif t is weakref.WeakSet:
            assert len(x) == len(y), f"{path}: {len(x)} != {len(y)}"
        elif t is random.Random:
            assert x.getstate() == y.getstate(), f"{path}: random state differs"
        elif t is types.MethodType:
            stack.append((x.__func__, y.__func__, f"{path}.__func__"))
            stack.append((x.__self__, y.__self__, f"{path}.__self__"))
        elif t is types.FunctionType:
            assert x.__code__ is y.__code__ and x.__qualname__ == y.__qualname__, f"{path}: other function"
            stack.extend((p.cell_contents, q.cell_contents, f"{path}<cell {i}>")
                         for i, (p, q) in enumerate(zip(x.__closure__ or (), y.__closure__ or ())))
            stack.append((x.__defaults__, y.__defaults__, f"{path}.__defaults__"))
        else:
            fx, fy = _fields(x), _fields(y)  # (in any order: a cache makes some fields at first use)
            assert sorted(fx) == sorted(fy), f"{path}: fields {list(fx)} != {list(fy)}"
            stack.extend((fx[n], fy[n], f"{path}.{n}") for n in fx)
    return shared


def machine_texts(m: Machine) -> dict[str, Any]:
    m.check()
    zones = [(z.zone.name, [list(fl) for fl in z.buddy.free_lists] if hasattr(z.buddy, "free_lists") else None)
             for z in m.mm.zones]
    return {"procs": {p: m.proc(p) for p in PROCS}, "dmesg": list(m.dmesg), "zones": zones,
            "reports": [r.text for r in m.reports]}


def _key(m: Machine) -> Any:
    return boot_mod.template_key(m, parse_size(m.memory_arg))


CONFIGS = [
    {"cpus": 2},
    {"cpus": 1, "memory": "16M"},
    {"cpus": 4, "nodes": 2, "memory": "128M"},
    {"cpus": 2, "memory": "1G"},  # highmem
    {"cpus": 2, "slab_debug": True},
    {"cpus": 3, "lockdep": True, "costs": {"lock": 35}},
    {"cpus": 2, "kmemleak": True, "kcsan": True, "events": True, "policy": "virtual"},
    {"cpus": 2, "fault_inject": "failslab=1,50,0,-1", "on_bug": "raise", "policy": "pct", "timeout": 5,
     "irq_rate": 0.25},
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_a_templated_machine_is_a_booted_machine(cfg: dict[str, Any]) -> None:
    scratch = [Machine(seed=s, **cfg) for s in range(boot_mod.TEMPLATE_AFTER)]
    assert boot_mod.template_for(_key(scratch[0])) is not None, boot_mod.template_refusals
    copy = Machine(seed=0, **cfg)
    twin = Machine(seed=0, **cfg)
    boot_mod.boot_templates(False)
    fresh = Machine(seed=0, **cfg)
    boot_mod.boot_templates(True)
    shared = same_state(fresh, scratch[0])  # what any two machines share (the default cost table)
    assert same_state(fresh, copy) == shared, "a copy shares what booted machines do not"
    assert same_state(copy, twin) == shared
    assert machine_texts(copy) == machine_texts(fresh)


def test_a_key_gets_its_template_at_its_32nd_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()
    assert boot_mod.TEMPLATE_AFTER == 32
    key = _key(Machine(cpus=1, seed=0))
    for s in range(1, 31):
        Machine(cpus=1, seed=s)
    assert boot_mod.template_for(key) is None
    Machine(cpus=1, seed=31)
    assert boot_mod.template_for(key) is not None


def test_templates_are_used_from_the_third_machine_of_a_key() -> None:
    key = _key(Machine(cpus=2, seed=1))
    assert boot_mod.template_for(key) is None
    Machine(cpus=2, seed=2)
    rebuild = boot_mod.template_for(key)
    assert rebuild is not None
    Machine(cpus=2, seed=3)
    assert boot_mod.template_for(key) is rebuild
    boot_mod.boot_templates(False)
    Machine(cpus=2, seed=4)  # boots from scratch: the template stays as it was
    assert boot_mod.template_for(key) is rebuild


def test_what_is_never_templated() -> None:
    def init() -> None:
        pass

    class Mine(Machine):
        pass

    made: list[Machine] = []
    for make in (lambda: Machine(cpus=2, init=[init]), lambda: Machine(cpus=2, kasan=True),
                 lambda: Mine(cpus=2), lambda: Machine(cpus=1, memory="2G"),
                 lambda: Machine(cpus=1, boot=False).run(lambda: made.append(Machine(cpus=3)))):
        for _ in range(boot_mod.TEMPLATE_AFTER + 1):
            make()
        assert not boot_mod._templates
    assert made[0].dmesg[0].startswith("[    0.000000][    T1] ")  # made by the task with pid 1
    assert not boot_mod.template_refusals


def _workload() -> None:
    p = kmalloc(200, GFP_KERNEL)
    c = kmem_cache_create("tmpl_test", 72, 0, 0, None, None)
    o = kmem_cache_alloc(c, GFP_KERNEL)
    page = alloc_pages(GFP_KERNEL, 2)
    v = vmalloc(3 * 4096)
    pc = alloc_percpu(int)
    lk = spin_lock_init("tmpl_lock")
    spin_lock(lk)
    spin_unlock(lk)
    kfree(p)
    kmem_cache_free(c, o)
    __free_pages(page, 2)
    vfree(v)
    free_percpu(pc)
    kmalloc(64, GFP_KERNEL)  # kept: slabinfo shows it


def _other() -> None:
    lk = spin_lock_init("tmpl_other")
    for n in (8, 100, 3000):
        spin_lock(lk)
        spin_unlock(lk)
        kfree(kmalloc(n, GFP_KERNEL))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_copies_share_nothing(seed: int) -> None:
    for s in range(boot_mod.TEMPLATE_AFTER):
        Machine(cpus=2, seed=s)
    a = Machine(cpus=2, seed=seed)
    b = Machine(cpus=2, seed=seed)
    before = machine_texts(b)
    a.run(_workload, _other)
    a.run(lambda: a.slab.slabinfo_write("size-64 60 30 4"))
    a.mm.min_free_kbytes = 4096  # the vm.min_free_kbytes sysctl
    a.mm.setup_per_zone_pages_min()
    a.dmesg.append("scribble")
    a.mem.flags[5] |= 1 << 20
    assert machine_texts(a) != before
    assert machine_texts(b) == before  # the other copy is as it was
    c = Machine(cpus=2, seed=seed)  # and the next copy too
    assert machine_texts(c) == before
    same_state(b, c, memory_only=True)  # (both read the same way: check() made the same fields)
    # the same work on a copy and on a machine booted from scratch: the same run
    boot_mod.boot_templates(False)
    fresh = Machine(cpus=2, seed=seed)
    boot_mod.boot_templates(True)
    fresh.run(_workload, _other)
    c.run(_workload, _other)
    assert str(c.trace) == str(fresh.trace)
    assert machine_texts(c) == machine_texts(fresh)
    same_state(c, fresh, memory_only=True)


# -- snapshot.py --------------------------------------------------------------------------
class _Node:
    def __init__(self, v: int) -> None:
        self.v = v
        self.next: Any = None
        self.items: list[Any] = []


class _Slotted:
    __slots__ = ("a", "b", "__weakref__")


def test_compile_graph_copies_keeping_aliasing_and_cycles() -> None:
    ext = object()
    a, b = _Node(1), _Node(2)
    a.next, b.next = b, a  # a cycle
    shared = [1, 2]
    a.items = [shared, shared, ext, (shared, 3)]
    s = _Slotted()
    s.a = a
    cell_target = {"k": a}

    def reader() -> Any:
        return cell_target

    root = {"a": a, "s": s, "m": a.__init__, "f": reader, "buf": bytearray(b"xy"),
            "arr": array.array("i", [1, 2]), "od": OrderedDict(x=1), "lock": threading.Lock()}
    rebuild, used = compile_graph(root, {id(ext): 7})
    assert used == (7,)
    new_ext = object()
    c = rebuild([new_ext])
    assert same_state(root, {**c, "lock": root["lock"]}) >= {id(root["lock"])}
    ca = c["a"]
    assert ca is not a and ca.next.next is ca and ca.items[0] is ca.items[1] is ca.items[3][0]
    assert list(vars(ca)) == list(vars(a))  # the attribute order too
    assert ca.items[2] is new_ext
    assert c["s"].a is ca and not hasattr(c["s"], "b")
    assert c["m"].__self__ is ca
    assert c["f"]() is not cell_target and c["f"]()["k"] is ca
    assert c["lock"] is not root["lock"]
    c["buf"][0] = 0
    c["arr"][0] = 9
    assert root["buf"] == bytearray(b"xy") and root["arr"][0] == 1
    assert rebuild([new_ext])["a"] is not ca  # every call: a new copy


@pytest.mark.parametrize("bad", [weakref.ref(_Node), random.Random(1), iter([1])],
                         ids=["weakref", "random", "iterator"])
def test_compile_graph_refuses_what_it_cannot_copy(bad: Any) -> None:
    with pytest.raises(Unsupported):
        compile_graph({"x": [bad]}, {})


class _ListWithMore(list):  # type: ignore[type-arg]
    pass


class _Chain:
    def __init__(self, nxt: Any) -> None:
        self.nxt = nxt


def test_compile_graph_refuses_builtin_subclasses_and_chains_too_deep() -> None:
    with pytest.raises(Unsupported, match="_ListWithMore"):
        compile_graph([_ListWithMore([1])], {})
    head = None
    for _ in range(20_000):
        head = _Chain(head)
    with pytest.raises(Unsupported, match="too deep"):
        compile_graph(head, {})


def test_compile_graph_shares_frozen_dataclasses_of_immutables() -> None:
    from percpu_kmem.runtime.costs import DEFAULT

    root = {"costs": DEFAULT, "list": [DEFAULT]}
    copy = compile_graph(root, {})[0]([])
    assert copy["costs"] is DEFAULT and copy["list"][0] is DEFAULT and copy["list"] is not root["list"]


def test_compile_graph_refuses_a_held_lock() -> None:
    lk = threading.Lock()
    with lk, pytest.raises(Unsupported, match="held"):
        compile_graph([lk], {})


def test_layers_are_what_boot_sets() -> None:
    for s in range(boot_mod.TEMPLATE_AFTER + 1):
        m = Machine(cpus=2, seed=s)
    assert [k for k in vars(m) if k in MEMORY_LAYERS] == [
        "mem", "bootmem", "mm", "meminfo_hooks", "slab", "mempools", "vmalloc", "percpu"]


def test_a_boot_that_changes_the_runtime_machine_is_not_templated(monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = boot_mod.boot_from_scratch

    def boot_and_tick(m: Machine, size: int) -> None:
        scratch(m, size)
        m.cpus[1].clock += 5  # not one of the changes a template puts back

    monkeypatch.setattr(boot_mod, "boot_from_scratch", boot_and_tick)
    for s in range(boot_mod.TEMPLATE_AFTER + 1):
        m = Machine(cpus=2, seed=s)
        assert m.cpus[1].clock == 5  # every one booted from scratch
    assert not boot_mod._templates
    assert "changed the runtime machine" in boot_mod.template_refusals[_key(m)]


def test_a_boot_state_the_snapshot_cannot_copy_is_not_templated(monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = boot_mod.boot_from_scratch

    def boot_with_a_weakref(m: Machine, size: int) -> None:
        scratch(m, size)
        m.slab.watcher = weakref.ref(m.slab)  # type: ignore[attr-defined]

    monkeypatch.setattr(boot_mod, "boot_from_scratch", boot_with_a_weakref)
    for s in range(boot_mod.TEMPLATE_AFTER + 1):
        m = Machine(cpus=2, seed=s)
        assert m.slab.watcher() is m.slab  # type: ignore[attr-defined]
    assert boot_mod.template_refusals[_key(m)].startswith("an object of weakref.ReferenceType")


def test_boot_templates_takes_a_bool() -> None:
    with pytest.raises(KmemUsageError, match="True or False"):
        boot_mod.boot_templates(1)  # type: ignore[arg-type]


def test_a_copy_logs_the_boot_lines_as_a_boot_does() -> None:
    from loguru import logger

    lines: list[str] = []
    logger.enable("percpu_kmem")
    sink = logger.add(lambda msg: lines.append(f"{msg.record['level'].name} {msg.record['message']}"))
    try:
        boot_mod.boot_templates(False)
        Machine(cpus=2)
        fresh, lines[:] = list(lines), []
        boot_mod.boot_templates(True)
        for s in range(boot_mod.TEMPLATE_AFTER):
            Machine(cpus=2, seed=s)
        lines.clear()
        Machine(cpus=2)
    finally:
        logger.remove(sink)
        logger.disable("percpu_kmem")
    assert lines == fresh and len(fresh) == 3


def _check_text(m: Machine) -> str:
    try:
        m.check()
    except Exception as e:  # the text is what is compared
        return f"{type(e).__name__}: {e}"
    return "ok"


@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_the_scenarios_run_alike_on_a_copy_and_on_a_booted_machine(policy: str) -> None:
    """Every stock scenario (percpu_kmem.scenarios): the same result, reports, trace and
    /proc files on a copy as on a machine booted from scratch."""
    from percpu_kmem.scenarios import SCENARIOS

    for s in range(boot_mod.TEMPLATE_AFTER):
        Machine(cpus=2, policy=policy, seed=s)
    for name, sc in SCENARIOS.items():
        for seed in (0, 1):
            copy = Machine(cpus=2, policy=policy, seed=seed)
            boot_mod.boot_templates(False)
            fresh = Machine(cpus=2, policy=policy, seed=seed)
            boot_mod.boot_templates(True)
            assert sc.run(copy) == sc.run(fresh), name
            assert str(copy.trace) == str(fresh.trace), name
            assert _check_text(copy) == _check_text(fresh), name  # (a buggy scenario leaves a lock held)
            assert [r.text for r in copy.reports] == [r.text for r in fresh.reports], name
            assert [copy.proc(p) for p in PROCS] == [fresh.proc(p) for p in PROCS], name
    assert boot_mod.template_for(_key(copy)) is not None


def test_a_template_serves_machines_that_differ_in_what_the_boot_does_not_read() -> None:
    """The template's machine had other runtime arguments (policy, seed, replay, ...): a copy
    still is the machine its own arguments boot to."""
    first = Machine(cpus=2, seed=9, policy="pct", on_bug="panic", events=True, depth=2)
    first.run(lambda: None)
    for _ in range(1, boot_mod.TEMPLATE_AFTER):
        Machine(cpus=2, seed=9, policy="pct", on_bug="panic", events=True, depth=2, replay=first.trace)
    assert boot_mod.template_for(_key(first)) is not None
    for kw in ({"policy": "random", "seed": 4, "mean_run": 3}, {"policy": "virtual", "timeout": 3, "irq_rate": 0.5},
               {"policy": "free", "seed": 2}, {"kmemleak": "fail", "fault_inject": "fail_page_alloc=1,100,0,1"}):
        copy = Machine(cpus=2, **kw)
        boot_mod.boot_templates(False)
        fresh = Machine(cpus=2, **kw)
        boot_mod.boot_templates(True)
        same_state(copy, fresh)
        assert machine_texts(copy) == machine_texts(fresh)


def _dict_object(o: Any) -> bool:
    """Has ``o`` a dict object of its own (not its attributes kept in the object itself)?
    (Asked before anything reads ``o.__dict__``, which makes one.)"""
    import gc

    return any(r is o.__dict__ for r in gc.get_referents(o))


def test_a_copy_keeps_its_attributes_where_a_booted_machine_does() -> None:
    """CPython's fastest attribute loads need the attributes in the object itself: a copy
    keeps them there where a boot does (the page allocator's fast paths read its objects)."""
    for s in range(boot_mod.TEMPLATE_AFTER):
        Machine(cpus=1, seed=s)
    copy = Machine(cpus=1)
    boot_mod.boot_templates(False)
    fresh = Machine(cpus=1)
    for get in (lambda m: m.mm, lambda m: m.mm.zones[0], lambda m: m.mem, lambda m: m.mem.zones[1].buddy,
                lambda m: m.slab, lambda m: m.slab.caches[3], lambda m: m.mm.reclaim, lambda m: m.vmalloc):
        assert _dict_object(get(copy)) == _dict_object(get(fresh)), get(fresh)
    a, b = _Node(1), _Node(2)
    assert b.__dict__  # b has a dict object now, a not
    ca, cb = compile_graph([a, b], {})[0]([])
    assert not _dict_object(ca) and _dict_object(cb)
