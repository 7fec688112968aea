"""Bad input never breaks the model: a generated probe of every exported kernel function.

The functions come from ``percpu_kmem.linux.__all__`` (every callable that is not a class), and
their parameters from ``inspect.signature``: a function added to the package is probed
without editing this file. A probe calls one function inside a task of a booted machine
with one parameter bad (a wrong type, None, a bool, a negative, zero, huge or float
number, an object of another machine) and the others plausible. Each probe must end in

* ``KmemUsageError`` (or a subclass) naming the function, or
* a kernel report (a ``KernelBug`` raised, or a new entry in ``m.reports``), or
* a normal return only where ``LEGAL`` says the kernel takes that input;

and leave preempt_count, interrupts and bottom halves as they were, no lock held.
After every probe ``m.check()`` passes, and after each batch a standard allocation
workload still runs on the same machine. A failure names the function, the arguments
and the raw exception.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import percpu_kmem as pk
from percpu_kmem import GFP_KERNEL, KernelBug, KernelPanic, KmemUsageError, Machine, NotInTaskError, linux
from percpu_kmem.mm.mempool import mempools_of
from percpu_kmem.runtime.errors import TaskAbort

# -- what is probed -------------------------------------------------------------------------


def kernel_functions() -> list[str]:
    """Every callable of the kernel API (percpu_kmem.linux) that is not a class (the kernel types)."""
    return sorted(n for n in linux.__all__
                  if callable(getattr(linux, n)) and not inspect.isclass(getattr(linux, n)))


#: Parameters that take any Python object by design: nothing about them can be bad.
FREE_PARAMS: dict[str, set[str]] = {
    "kthread_run": {"data"},
    "kthread_create": {"data"},
    "request_irq": {"dev_id"},
    "free_irq": {"dev_id"},
    "WARN_ON": {"cond"},
    "might_sleep_if": {"cond"},
    "block": {"on"},
    "DEFINE_PER_CPU": {"init"},
    "this_cpu_write": {"value"},
    "__this_cpu_write": {"value"},
    "mempool_create": {"pool_data"},
    "__vmalloc_node": {"caller"},
    "smp_call_function": {"info"},
    "on_each_cpu": {"info"},
    "smp_call_function_single": {"info"},
    "WARN": {"args"},  # printk's arguments (*args): the probe passes one, 0
    "WARN_ONCE": {"args"},
}


def probed_params(name: str) -> list[str]:
    sig = inspect.signature(getattr(pk, name))
    free = FREE_PARAMS.get(name, set())
    return [p for p, v in sig.parameters.items()
            if v.kind in (v.POSITIONAL_ONLY, v.POSITIONAL_OR_KEYWORD) and p not in free]


# -- bad values --------------------------------------------------------------------------------
#: (category, value) pairs; "other:" values are objects of another machine (built in ``Env``).
BAD_VALUES: list[tuple[str, Any]] = [
    ("none", None), ("true", True), ("false", False), ("negative", -1), ("negative", -4096),
    ("zero", 0), ("huge", 1 << 40), ("huge", 1 << 64), ("float", 1.5), ("float", math.nan),
    ("str", "5"), ("str", ""), ("bytes", b"x"), ("list", [1]), ("object", object()),
]
OTHER_KINDS = ("other:lock", "other:mutex", "other:wq", "other:page", "other:addr", "other:cache",
               "other:pool", "other:task")


def bad_strategy() -> st.SearchStrategy[tuple[str, Any]]:
    return st.one_of(
        st.sampled_from(BAD_VALUES),
        st.tuples(st.just("negative"), st.integers(max_value=-1)),
        st.tuples(st.just("huge"), st.integers(min_value=1 << 32, max_value=1 << 80)),
        st.tuples(st.just("float"), st.floats(allow_nan=True, allow_infinity=True)),
        st.tuples(st.just("str"), st.text(max_size=8)),
        st.tuples(st.sampled_from(OTHER_KINDS), st.none()),
    )


#: Inputs the kernel takes: a normal return is the right answer. Keyed by function, then
#: parameter, the categories of bad value that may return normally (the kernel's NULL,
#: 0 or an error code, or a documented no-op).
LEGAL: dict[str, dict[str, set[str]]] = {}


def legal(name: str, param: str, category: str) -> bool:
    return category in LEGAL.get(name, {}).get(param, set())


#: Legal calls that change the task's state on purpose, and how the probe undoes that
#: before it looks for damage: local_irq_restore(0) leaves interrupts off (flags without
#: X86_EFLAGS_IF), a request_irq that succeeded holds its IRQ for the next probe.
UNDO: dict[str, Callable[[tuple[Any, ...]], None]] = {
    "local_irq_restore": lambda args: pk.local_irq_enable() if pk.current().cpu.irqs_off else None,
    "spin_unlock_irqrestore": lambda args: pk.local_irq_enable() if pk.current().cpu.irqs_off else None,
    "request_irq": lambda args: pk.free_irq(args[0], args[4]),
}


# -- the objects probes use -------------------------------------------------------------------
class Other:
    """Objects that belong to another machine (used there once, so bound to it)."""

    _made: dict[str, Any] | None = None

    @classmethod
    def objects(cls) -> dict[str, Any]:
        if cls._made is None:
            m = Machine(cpus=1, seed=3)
            made: dict[str, Any] = {}

            def make() -> None:
                lock = pk.spin_lock_init("other_lock")
                pk.spin_lock(lock)
                pk.spin_unlock(lock)
                mtx = pk.mutex_init("other_mutex")
                pk.mutex_lock(mtx)
                pk.mutex_unlock(mtx)
                wq = pk.init_waitqueue_head("other_wq")
                pk.wake_up(wq)
                made.update({"other:lock": lock, "other:mutex": mtx, "other:wq": wq,
                             "other:page": pk.alloc_page(GFP_KERNEL),
                             "other:addr": pk.kmalloc(64, GFP_KERNEL),
                             "other:cache": pk.kmem_cache_create("other_cache", 48),
                             "other:pool": pk.mempool_create_kmalloc_pool(2, 32),
                             "other:task": pk.current()})
            m.run(make)
            cls._made = made
        return cls._made


PCPU_VAR = pk.DEFINE_PER_CPU(int, "bad_input_probe_counter")


class Env:
    """Plausible arguments, made on demand inside a task of ``m``."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.cache: Any = None
        self.pool: Any = None
        self.wq: Any = None
        self.irq = 3

    def good(self, fn: str, param: str) -> Any:
        maker = GOOD_BY_FN.get((fn, param)) or GOOD.get(param)
        if maker is None:
            raise AssertionError(f"test_bad_input: no plausible value for {fn}({param}=...): add one to GOOD")
        return maker(self)

    def kcache(self) -> Any:
        if self.cache is None:
            self.cache = pk.kmem_cache_create("probe_cache", 40)
        return self.cache

    def workqueue(self) -> Any:
        if self.wq is None or self.wq.destroyed:
            self.wq = pk.create_singlethread_workqueue("probe_wq")
        return self.wq

    def mpool(self) -> Any:
        if self.pool is None:
            self.pool = pk.mempool_create_kmalloc_pool(2, 64)
        return self.pool


def _page(e: Env) -> Any:
    return pk.alloc_page(GFP_KERNEL)


def _addr(e: Env) -> Any:
    return pk.kmalloc(64, GFP_KERNEL)


GOOD: dict[str, Callable[[Env], Any]] = {
    "size": lambda e: 64, "align": lambda e: 8, "goal": lambda e: 0, "flags": lambda e: GFP_KERNEL,
    "gfp_mask": lambda e: GFP_KERNEL, "gfp": lambda e: GFP_KERNEL, "order": lambda e: 0,
    "page": _page, "addr": _addr, "objp": _addr, "cachep": lambda e: e.kcache(),
    "v": _addr, "i": lambda e: 1, "old": lambda e: 0, "new": lambda e: 1, "x": lambda e: 1,
    "lock": lambda e: pk.spin_lock_init(), "m": lambda e: pk.mutex_init(),
    "wq": lambda e: pk.init_waitqueue_head(), "condition": lambda e: (lambda: True),
    "func": lambda e: (lambda info: None), "wait": lambda e: True,
    "pool": lambda e: e.mpool(), "min_nr": lambda e: 2, "new_min_nr": lambda e: 3,
    "alloc_fn": lambda e: pk.mempool_kmalloc, "free_fn": lambda e: pk.mempool_kfree,
    "element": _addr, "pool_data": lambda e: 64, "kc": lambda e: e.kcache(),
    "var": lambda e: PCPU_VAR, "target": lambda e: PCPU_VAR, "ptr": lambda e: PCPU_VAR,
    "cpu": lambda e: 0, "cpus": lambda e: [0], "nid": lambda e: 0, "t": lambda e: pk.current(),
    "irq": lambda e: e.irq, "handler": lambda e: (lambda irq, dev: None), "nr": lambda e: 1,
    "action": lambda e: (lambda: None), "threadfn": lambda e: (lambda: None),
    "namefmt": lambda e: "probe", "name": lambda e: "probe_name", "msg": lambda e: "probe message",
    "level": lambda e: "INFO", "msecs": lambda e: 1, "usecs": lambda e: 1, "nsecs": lambda e: 1,
    "cycles": lambda e: 1, "timeout": lambda e: 1, "timeout_ns": lambda e: 1, "state": lambda e: 2,
    "event": lambda e: "probe", "depth": lambda e: 1, "what1": lambda e: "probe", "what2": lambda e: "",
    "n": lambda e: 4, "c": lambda e: 0, "b": lambda e: 0, "val": lambda e: 0, "value": lambda e: 1,
    "count": lambda e: 4, "dst": _addr, "src": _addr, "data": lambda e: b"abcd",
    "type": lambda e: int, "fields": lambda e: [("a", int)], "pfn": lambda e: pk.page_to_pfn(_page(e)),
    "paddr": lambda e: pk.__pa(_addr(e)), "offset": lambda e: 0, "prot": lambda e: 0x163,
    "pages": lambda e: [_page(e)], "kind": lambda e: "clean", "limit": lambda e: 120,
    "batchcount": lambda e: 60, "shared": lambda e: 8, "ctor": lambda e: None, "dtor": lambda e: None,
    "count_objects": lambda e: (lambda gfp: 0), "scan_objects": lambda e: (lambda nr, gfp: 0),
    "seeks": lambda e: 2, "pgdat": lambda e: None, "physaddr": lambda e: 0,
    "phys_addr": lambda e: 0xF0000000, "read_fn": lambda e: None, "write_fn": lambda e: None,
    "timer": lambda e: pk.timer_list(lambda data: None), "function": lambda e: (lambda data: None),
    "callback": lambda e: (lambda arg: None), "expires": lambda e: 5, "delay": lambda e: 1,
    "work": lambda e: pk.work_struct(lambda work: None), "j": lambda e: 1,
    "a": lambda e: 0, "fmt": lambda e: "probe %d", "cond": lambda e: False,
    "dev": lambda e: None, "node": lambda e: 0, "len": lambda e: 16, "s": lambda e: "probe",
    "max": lambda e: 4, "p": _addr, "new_size": lambda e: 32, "new_n": lambda e: 2,
    "sem": lambda e: pk.sema_init(None, 1),
}


def _done_completion(e: Env) -> Any:
    """A completion with a ``done`` to take: a wait on it returns at once."""
    x = pk.init_completion()
    pk.complete(x)
    return x

GOOD_BY_FN: dict[tuple[str, str], Callable[[Env], Any]] = {
    ("register_io_device", "m"): lambda e: e.m, ("unregister_io_device", "m"): lambda e: e.m,
    ("kmem_cache_create", "flags"): lambda e: 0, ("kmem_cache_create", "offset"): lambda e: 0,
    ("__ioremap", "flags"): lambda e: 0, ("vmap", "flags"): lambda e: 4,
    ("__vmalloc_node", "node"): lambda e: -1, ("__vmalloc_node", "align"): lambda e: 4096,
    ("memcpy_fromio", "dst"): _addr, ("memcpy_toio", "src"): _addr,
    ("ioremap", "offset"): lambda e: 0xF0000000, ("ioremap_nocache", "offset"): lambda e: 0xF0000000,
    ("__ioremap", "offset"): lambda e: 0xF0000000, ("mempool_alloc_slab", "pool_data"): lambda e: e.kcache(),
    ("mempool_free_slab", "pool_data"): lambda e: e.kcache(),
    ("mempool_alloc_pages", "pool_data"): lambda e: 0, ("mempool_free_pages", "pool_data"): lambda e: 0,
    ("mempool_free_pages", "element"): _page,
    ("mempool_free", "element"): lambda e: pk.mempool_alloc(e.mpool(), GFP_KERNEL),
    ("open_softirq", "nr"): lambda e: 7, ("raise_softirq", "nr"): lambda e: 7,
    ("cmpxchg", "ptr"): _addr, ("xchg", "ptr"): _addr,
    ("kmemleak_not_leak", "ptr"): _addr, ("kmemleak_ignore", "ptr"): _addr,
    ("per_cpu_ptr", "ptr"): lambda e: pk.alloc_percpu(int), ("this_cpu_ptr", "ptr"): lambda e: pk.alloc_percpu(int),
    ("free_percpu", "ptr"): lambda e: pk.alloc_percpu(int), ("__alloc_percpu", "align"): lambda e: 4,
    ("kthread_bind", "t"): lambda e: pk.kthread_run(lambda: None),
    ("set_cpus_allowed", "t"): lambda e: pk.kthread_run(lambda: None),
    ("wake_up_process", "t"): lambda e: pk.kthread_run(lambda: None),
    ("fill_page_cache", "nr"): lambda e: 1, ("wake_up_nr", "nr"): lambda e: 1,
    **{(fn, "x"): _done_completion for fn in (
        "reinit_completion", "INIT_COMPLETION", "complete", "complete_all", "wait_for_completion",
        "wait_for_completion_timeout", "wait_for_completion_interruptible",
        "wait_for_completion_interruptible_timeout", "wait_for_completion_killable",
        "try_wait_for_completion", "completion_done")},
    **{(fn, "sem"): (lambda e: pk.init_rwsem()) for fn in (
        "down_read", "down_write", "down_read_trylock", "down_write_trylock", "up_read", "up_write",
        "downgrade_write", "rwsem_is_locked")},
    ("kthread_stop", "t"): lambda e: pk.kthread_run(lambda: None),
    **{(fn, "lock"): (lambda e: pk.rwlock_init()) for fn in (
        "read_lock", "read_unlock", "write_lock", "write_unlock", "read_trylock", "write_trylock",
        "read_lock_irq", "read_unlock_irq", "write_lock_irq", "write_unlock_irq", "read_lock_irqsave",
        "read_unlock_irqrestore", "write_lock_irqsave", "write_unlock_irqrestore", "read_lock_bh",
        "read_unlock_bh", "write_lock_bh", "write_unlock_bh")},
    # timers, tasklets and work queues
    ("timer_setup", "flags"): lambda e: 0,
    ("tasklet_init", "t"): lambda e: pk.tasklet_struct(lambda data: None),
    ("tasklet_setup", "t"): lambda e: pk.tasklet_struct(lambda data: None),
    ("tasklet_schedule", "t"): lambda e: pk.tasklet_struct(lambda data: None),
    ("tasklet_hi_schedule", "t"): lambda e: pk.tasklet_struct(lambda data: None),
    ("tasklet_disable", "t"): lambda e: pk.tasklet_struct(lambda data: None),
    ("tasklet_disable_nosync", "t"): lambda e: pk.tasklet_struct(lambda data: None),
    ("tasklet_kill", "t"): lambda e: pk.tasklet_struct(lambda data: None),
    ("tasklet_enable", "t"): lambda e: pk.DECLARE_TASKLET_DISABLED("probe", lambda data: None),
    ("INIT_DELAYED_WORK", "work"): lambda e: pk.delayed_work(lambda work: None),
    ("delayed_work_pending", "work"): lambda e: pk.delayed_work(lambda work: None),
    ("queue_delayed_work", "work"): lambda e: pk.delayed_work(lambda work: None),
    ("schedule_delayed_work", "work"): lambda e: pk.delayed_work(lambda work: None),
    ("cancel_delayed_work", "work"): lambda e: pk.delayed_work(lambda work: None),
    ("cancel_delayed_work_sync", "work"): lambda e: pk.delayed_work(lambda work: None),
    ("queue_work", "wq"): lambda e: e.workqueue(),
    ("queue_delayed_work", "wq"): lambda e: e.workqueue(),
    ("flush_workqueue", "wq"): lambda e: e.workqueue(),
    ("queue_work_on", "wq"): lambda e: e.workqueue(),
    ("destroy_workqueue", "wq"): lambda e: pk.create_singlethread_workqueue("probe_wq_gone"),
    ("smp_load_acquire", "size"): lambda e: 4, ("smp_store_release", "size"): lambda e: 4,
    ("usleep_range", "min"): lambda e: 10, ("usleep_range", "max"): lambda e: 20,
    ("bitmap_zero", "dst"): _addr, ("bitmap_zero", "nbits"): lambda e: 64,
    ("free_pages_exact", "virt"): lambda e: pk.alloc_pages_exact(64, GFP_KERNEL),
    ("kvfree", "addr"): lambda e: pk.kvmalloc(64, GFP_KERNEL),
    ("get_cpu_ptr", "ptr"): lambda e: pk.alloc_percpu(int), ("put_cpu_ptr", "ptr"): lambda e: pk.alloc_percpu(int),
    ("copy_to_user", "to"): lambda e: bytearray(4), ("copy_to_user", "from_"): _addr,
    ("copy_from_user", "to"): _addr, ("copy_from_user", "from_"): lambda e: b"abcd",
    ("clear_user", "to"): lambda e: bytearray(4),
}


# -- one probe ------------------------------------------------------------------------------------
@dataclass
class Probe:
    fn: str
    param: str
    category: str
    value: Any

    def __str__(self) -> str:
        return f"{self.fn}({self.param}={self.value!r}) [{self.category}]"


@dataclass
class Outcome:
    probe: Probe
    kind: str  # usage | bug | report | return | raw
    detail: str
    damage: str = ""
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return f"{self.probe}: {self.kind}: {self.detail}{' DAMAGE: ' + self.damage if self.damage else ''}" \
               f" (args {self.args!r})"


def _state(t: Any) -> str:
    c = t.cpu
    bad = []
    if c.preempt_count:
        bad.append(f"preempt_count={c.preempt_count:#x}")
    if c.irqs_off:
        bad.append("irqs disabled")
    if t.held:
        bad.append(f"holds {t.held!r}")
    if t.kstate:
        bad.append(f"task state {t.kstate}")
    return ", ".join(bad)


def run_probe(m: Machine, env: Env, probe: Probe) -> Outcome:
    """Call ``probe`` in a task of ``m``; classify the answer and look for damage."""
    fn = getattr(pk, probe.fn)
    box: dict[str, Any] = {}

    def task() -> None:
        t = pk.current()
        before = _state(t)
        if before:
            box["out"] = Outcome(probe, "raw", "", f"the task started in a damaged state: {before}")
            return
        value = Other.objects()[probe.category] if probe.category.startswith("other:") else probe.value
        args = tuple(value if p == probe.param else env.good(probe.fn, p) for p in probed_params(probe.fn))
        # parameters left out (FREE_PARAMS) keep their defaults or get a plain value
        sig = inspect.signature(fn)
        full = []
        it = iter(args)
        for p, v in sig.parameters.items():
            if p in FREE_PARAMS.get(probe.fn, set()):
                full.append(v.default if v.default is not v.empty else 0)
            else:
                full.append(next(it))
        nrep = len(m.reports)
        try:
            fn(*full)
        except KmemUsageError as e:
            out = Outcome(probe, "usage", str(e), args=tuple(full))
            if probe.fn not in str(e) and fn.__name__ not in str(e) and not isinstance(e, NotInTaskError):
                out.kind, out.detail = "raw", f"KmemUsageError not naming {probe.fn}: {e}"
        except KernelBug as e:
            box["out"] = Outcome(probe, "bug", str(e).splitlines()[0], args=tuple(full))
            raise
        except TaskAbort:
            raise
        except BaseException as e:
            out = Outcome(probe, "raw", f"{type(e).__name__}: {e}", args=tuple(full))
        else:
            out = Outcome(probe, "report" if len(m.reports) > nrep else "return", "", args=tuple(full))
            undo = UNDO.get(probe.fn)
            if undo is not None:
                undo(tuple(full))
        out.damage = _state(t)
        box["out"] = out

    try:
        m.run(task, names=["probe"])
    except KernelBug:
        pass
    except KernelPanic as e:  # panic() and fatal reports end the machine: a kernel answer, no damage
        return Outcome(probe, "bug", str(e).splitlines()[0], args=box["out"].args if "out" in box else ())
    except BaseException as e:
        out = box.get("out") or Outcome(probe, "raw", "")
        out.damage += f" the run raised {type(e).__name__}: {e}"
        return out
    out = box.get("out") or Outcome(probe, "raw", "the probe task did not finish")
    try:
        m.check()
    except BaseException as e:
        out.damage += f" m.check(): {type(e).__name__}: {e}"
    return out


def failure(out: Outcome) -> str:
    """Why this outcome is wrong ('' when it is right)."""
    if out.damage:
        return str(out)
    if out.kind == "raw":
        return str(out)
    if out.kind == "return" and not legal(out.probe.fn, out.probe.param, out.probe.category):
        return f"{out} (accepted silently: add to LEGAL if the kernel takes it)"
    return ""


def workload(m: Machine) -> None:
    """A standard allocation workload: the machine must still do its job."""
    def work() -> None:
        addrs = [pk.kmalloc(s, GFP_KERNEL) for s in (8, 100, 3000)]
        page = pk.alloc_pages(GFP_KERNEL, 1)
        lock = pk.spin_lock_init("workload")
        flags = pk.spin_lock_irqsave(lock)
        a = pk.kmalloc(32, pk.GFP_ATOMIC)
        pk.spin_unlock_irqrestore(lock, flags)
        for x in (*addrs, a):
            assert x is not None
            pk.kfree(x)
        assert page is not None
        pk.__free_pages(page, 1)
        v = pk.vmalloc(3 * pk.PAGE_SIZE)
        pk.vfree(v)
    m.run(work, work)
    m.check()


def all_probes() -> list[Probe]:
    probes = []
    for name in kernel_functions():
        for p in probed_params(name):
            for cat, val in BAD_VALUES:
                probes.append(Probe(name, p, cat, val))
            for cat in OTHER_KINDS:
                probes.append(Probe(name, p, cat, None))
    return probes


def new_machine() -> Machine:
    return Machine(cpus=2, memory="32M", seed=11, policy="random")


# -- the tests -------------------------------------------------------------------------------------
def test_every_kernel_function_is_probed() -> None:
    names = kernel_functions()
    assert len(names) > 150
    with_params = [n for n in names if probed_params(n)]
    assert len(all_probes()) >= 2000, len(all_probes())
    assert set(p.fn for p in all_probes()) == set(with_params)


#: Functions whose probes may still fail: none are left. Every function must pass.
KNOWN_OPEN: set[str] = set()


class Bench:
    """One machine for many probes; replaced when a probe leaves it unusable."""

    def __init__(self) -> None:
        self.m = new_machine()
        self.env = Env(self.m)

    def probe(self, p: Probe) -> str:
        if self.m.unusable is not None:
            self.__init__()  # type: ignore[misc]
        out = run_probe(self.m, self.env, p)
        why = failure(out)
        if out.kind == "return" and not out.damage:
            why = ""  # legal-or-not is tracked by the sweep script, not asserted here (see LEGAL)
        if out.damage:
            self.__init__()  # type: ignore[misc]
        return "" if p.fn in KNOWN_OPEN else why


_BENCH: Bench | None = None


def bench() -> Bench:
    global _BENCH
    if _BENCH is None:
        _BENCH = Bench()
    return _BENCH


_PROBEABLE = [n for n in kernel_functions() if probed_params(n)]


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(_PROBEABLE), st.integers(0, 7), bad_strategy()),
                min_size=20, max_size=20))
def test_generated_bad_input_is_answered_clearly(batch: list[tuple[str, int, tuple[str, Any]]]) -> None:
    b = bench()
    problems = []
    for name, k, (cat, val) in batch:
        params = probed_params(name)
        p = Probe(name, params[k % len(params)], cat, val)
        why = b.probe(p)
        if why:
            problems.append(why)
    workload(b.m) if b.m.unusable is None else None
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", [n for n in _PROBEABLE if n not in KNOWN_OPEN])
def test_every_function_answers_none_and_a_wrong_type(name: str) -> None:
    b = Bench()
    problems = [why for p in probed_params(name) for cat, val in (("none", None), ("object", object()))
                if (why := b.probe(Probe(name, p, cat, val)))]
    assert not problems, "\n".join(problems)


# -- the cases named in the issue ------------------------------------------------------------------
def _in_task(m: Machine, fn: Callable[[], Any]) -> Any:
    return m.run(fn)[0]


def test_alloc_pages_with_a_bool_order_is_refused_before_zone_lock() -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError, match=r"alloc_pages: order\(=True\) must be an int"):
        m.run(lambda: pk.alloc_pages(GFP_KERNEL, True))
    page = _in_task(m, lambda: pk.alloc_pages(GFP_KERNEL, 0))
    assert page is not None and m.reports == []
    m.check()


@pytest.mark.parametrize("fn", ["spin_lock", "spin_lock_irq", "spin_lock_irqsave", "spin_lock_bh",
                                "spin_trylock", "spin_unlock", "mutex_lock", "mutex_unlock", "wake_up"])
def test_lock_functions_refuse_a_non_lock_and_leave_no_state(fn: str) -> None:
    m = new_machine()

    def task() -> str:
        c = pk.current().cpu
        with pytest.raises(KmemUsageError, match=fn):
            getattr(pk, fn)(None)
        return _state(pk.current()) or f"clean {c.preempt_count}"
    assert _in_task(m, task) == "clean 0"
    workload(m)


def test_msleep_with_a_str_leaves_the_task_on_its_cpu() -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError, match=r"msleep: msecs\(='5'\)"):
        m.run(lambda: pk.msleep("5"))
    workload(m)


def test_register_shrinker_refuses_non_callables_and_later_runs_work() -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError, match="register_shrinker: count_objects"):
        m.run(lambda: pk.register_shrinker("x", None, "x"))
    m.run(lambda: None)
    workload(m)


def test_a_shrinker_returning_garbage_is_unregistered() -> None:
    m = new_machine()
    m.run(lambda: pk.register_shrinker("bad", lambda gfp: "many", lambda nr, gfp: 0))
    with pytest.raises(KmemUsageError, match="count_objects of shrinker 'bad' returned 'many'"):
        m.mm.reclaim.shrink_slab(GFP_KERNEL, 10)
    assert "bad" not in [s.name for s in m.mm.reclaim.shrinkers]
    workload(m)


def test_bad_names_and_timeout_leave_the_machine_runnable() -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError):
        m.run(lambda: None, names=[1])
    m.run(lambda: None)
    with pytest.raises(KmemUsageError):
        Machine(timeout="60")
    with pytest.raises(KmemUsageError):
        Machine(cpus=True)


def test_outside_a_task_mutex_trylock_raises_and_takes_nothing() -> None:
    mtx = pk.mutex_init("outside")
    with pytest.raises(NotInTaskError):
        pk.mutex_trylock(mtx)
    assert mtx.owner is None
    lock = pk.spin_lock_init("outside")
    with pytest.raises(NotInTaskError):
        pk.spin_lock(lock)
    assert not lock.locked()


@pytest.mark.parametrize("kind, call", [
    ("other:lock", pk.spin_lock), ("other:mutex", pk.mutex_lock), ("other:mutex", pk.mutex_trylock),
    ("other:wq", pk.wake_up), ("other:page", pk.get_page), ("other:page", pk.page_address),
    ("other:task", pk.wake_up_process),
])
def test_objects_of_another_machine_are_refused(kind: str, call: Callable[[Any], Any]) -> None:
    m = new_machine()
    obj = Other.objects()[kind]
    with pytest.raises(KmemUsageError, match="another machine"):
        m.run(lambda: call(obj))
    workload(m)


def test_a_lock_is_bound_to_the_machine_that_first_uses_it() -> None:
    lock = pk.spin_lock_init("first")
    a, b = new_machine(), new_machine()

    def take() -> None:
        pk.spin_lock(lock)
        pk.spin_unlock(lock)
    a.run(take)
    assert lock.machine is a
    with pytest.raises(KmemUsageError, match=r"spin_lock: lock\(=.*\) belongs to another machine"):
        b.run(take)
    b.check()


def test_boot_false_machine_says_it_has_no_memory() -> None:
    m = Machine(cpus=1, boot=False)
    with pytest.raises(KmemUsageError, match="built with boot=False: it has no memory layers"):
        m.run(lambda: pk.kmalloc(8, GFP_KERNEL))
    assert getattr(m, "slab", None) is None


def test_misleading_messages_are_gone() -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError, match=r"virt_to_page: addr\(=1.5\)"):
        m.run(lambda: pk.virt_to_page(1.5))
    with pytest.raises(KmemUsageError, match=r"Machine: replay\(=42\)"):
        Machine(replay=42)


@pytest.mark.parametrize("call", [
    lambda: pk.raise_softirq(None), lambda: pk.open_softirq(99, lambda: None),
    lambda: pk.request_irq(3, lambda i, d: None, "x"), lambda: pk.kthread_bind(pk.current(), 99),
    lambda: pk.schedule_timeout(1.5), lambda: pk.__pa(None), lambda: pk.get_order(True),
    lambda: pk.write_u32(0xC0000000, None), lambda: pk.mem_read(0xC0000000, True),
    lambda: pk.printk(None), lambda: pk.BUG(1), lambda: pk.local_irq_restore(-1),
])
def test_named_functions_check_their_arguments(call: Callable[[], Any]) -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError):
        m.run(call)
    workload(m)


# -- the leftovers of KNOWN_OPEN (h8) ------------------------------------------------------------
@pytest.mark.parametrize("call, words", [
    (lambda: pk.mempool_kmalloc(None, 64), r"^mempool_kmalloc: kmalloc: flags .*calls kmalloc"),
    (lambda: pk.mempool_kmalloc(GFP_KERNEL, None), r"^mempool_kmalloc: pool_data\(=None\) must be the size"),
    (lambda: pk.mempool_kmalloc(GFP_KERNEL, "64"), r"^mempool_kmalloc: pool_data\(='64'\)"),
    (lambda: pk.mempool_alloc_pages(GFP_KERNEL, 1.5), r"^mempool_alloc_pages: pool_data\(=1.5\) must be the order"),
    (lambda: pk.mempool_alloc_pages(-1, 0), r"^mempool_alloc_pages: alloc_pages: gfp_mask"),
    (lambda: pk.mempool_free_pages(None, 0), r"^mempool_free_pages: __free_pages: page\(=None\)"),
    (lambda: pk.mempool_alloc_slab(GFP_KERNEL, None), r"^mempool_alloc_slab: kmem_cache_alloc"),
    (lambda: pk.mempool_free_slab(1.5, pk.kmem_cache_create("h8_slab", 32)), r"^mempool_free_slab: kmem_cache_free"),
    (lambda: pk.mempool_kfree("x", 64), r"^mempool_kfree: kfree: objp"),
    (lambda: pk.mempool_create_kmalloc_pool(-1, 64), r"^mempool_create_kmalloc_pool: min_nr\(=-1\)"),
    (lambda: pk.mempool_create_page_pool(None, 0), r"^mempool_create_page_pool: min_nr must be an int"),
    (lambda: pk.mempool_create_slab_pool(True, None), r"^mempool_create_slab_pool: min_nr must be an int"),
])
def test_mempool_stock_functions_name_themselves(call: Callable[[], Any], words: str) -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError, match=words):
        m.run(call)
    workload(m)


def live_slab_objects(m: Machine) -> int:
    """Objects allocated from every cache, not counting those parked in magazines."""
    return sum(c.counts()[0] - c.cached_objects() for c in m.slab.caches)


def test_mempool_create_with_a_bad_pool_data_is_refused_and_hands_everything_back() -> None:
    m = Machine(cpus=1, memory="32M", slab_debug=True)
    live = live_slab_objects(m)
    with pytest.raises(KmemUsageError, match=r"^mempool_kmalloc: pool_data\(='x'\)"):
        m.run(lambda: pk.mempool_create(2, pk.mempool_kmalloc, pk.mempool_kfree, "x"))
    assert live_slab_objects(m) == live and mempools_of(m) == []
    m.check()


def test_mempool_free_checks_a_stock_pools_element_before_the_reserve_takes_it() -> None:
    m = new_machine()

    def task() -> tuple[int, int]:
        pool = pk.mempool_create_kmalloc_pool(2, 64)
        a = pk.mempool_alloc(pool, GFP_KERNEL)
        b = pk.mempool_alloc(pool, GFP_KERNEL)
        c = pk.mempool_alloc(pool, GFP_KERNEL)  # the reserve is now below min_nr
        before = pool.curr_nr
        with pytest.raises(KmemUsageError, match=r"mempool_free: element\(=True\) must be an address"):
            pk.mempool_free(True, pool)
        after = pool.curr_nr
        pages = pk.mempool_create_page_pool(1, 0)
        with pytest.raises(KmemUsageError, match=r"mempool_free: element\(=.*\) must be a struct page"):
            pk.mempool_free(a, pages)
        for x in (a, b, c):
            pk.mempool_free(x, pool)
        pk.mempool_destroy(pool)
        pk.mempool_destroy(pages)
        return before, after
    before, after = _in_task(m, task)
    assert before == after
    m.check()


def test_mempool_kfree_ignores_pool_data_as_the_kernel_does() -> None:
    m = new_machine()

    def task() -> None:
        addr = pk.kmalloc(64, GFP_KERNEL)
        pk.mempool_kfree(addr, "anything")
    live = live_slab_objects(m)
    m.run(task)
    assert m.reports == [] and live_slab_objects(m) == live
    m.check()


@pytest.mark.parametrize("args, words", [
    (("5", 60, 8), r"kmem_cache_tune: limit\(='5'\) must be an int >= 1"),
    ((120, 121, 8), r"kmem_cache_tune: batchcount\(=121\) must be an int \(at most limit\) from 1 to 120"),
    ((120, 60, -1), r"kmem_cache_tune: shared\(=-1\) must be an int >= 0"),
    ((1.0, 1, 0), r"kmem_cache_tune: limit\(=1.0\)"),
])
def test_kmem_cache_tune_checks_its_ints(args: tuple[Any, ...], words: str) -> None:
    m = new_machine()

    def task() -> tuple[int, int, int]:
        c = pk.kmem_cache_create("h8_tune", 40)
        with pytest.raises(KmemUsageError, match=words):
            pk.kmem_cache_tune(c, *args)
        return c.limit, c.batchcount, c.shared
    limit, batch, shared = _in_task(m, task)
    assert (limit, batch, shared) != args
    m.check()


@pytest.mark.parametrize("fn", ["memset", "memset_io"])
def test_memset_beyond_the_machines_memory_is_a_page_fault(fn: str) -> None:
    """An int size larger than memory is the simulated driver's bug, not misuse of the API: the
    fill faults where the mapping ends (an Oops), before a byte is written."""
    m = new_machine()
    size = m.mem.nr_pages * pk.PAGE_SIZE
    m.run(lambda: getattr(pk, fn)(pk.kmalloc(64, GFP_KERNEL), 0, size + 1))
    assert m.reports[-1].kind == "page_fault" and "write access" in m.reports[-1].lines[1]
    workload(m)


@pytest.mark.parametrize("fn", ["writeb", "writew", "writel", "__raw_writeb", "__raw_writew", "__raw_writel"])
def test_mmio_writes_name_themselves(fn: str) -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError, match=rf"^{fn}: addr\(=1.5\)"):
        m.run(lambda: getattr(pk, fn)(0, 1.5))
    with pytest.raises(KmemUsageError, match=rf"^{fn}: b\(=None\)"):
        m.run(lambda: getattr(pk, fn)(None, 0xC0000000))
    assert getattr(pk, fn).__name__ == fn


def test_vmalloc_to_pfn_c_struct_and_bootmem_node_name_themselves() -> None:
    m = new_machine()
    with pytest.raises(KmemUsageError, match=r"^vmalloc_to_pfn\(\) takes a kernel virtual address"):
        m.run(lambda: pk.vmalloc_to_pfn("5"))
    with pytest.raises(KmemUsageError, match=r"^c_struct: struct s: fields\(=None\) must be a list"):
        pk.c_struct("s", None)
    with pytest.raises(KmemUsageError, match=r"^c_struct: struct s: a field is a \(name, type\) pair, got 'a'"):
        pk.c_struct("s", ["a"])
    with pytest.raises(KmemUsageError, match=r"^__alloc_bootmem_node: align\(=0\) must be an int >= 1"):
        Machine(cpus=1, memory="16M", init=[lambda: pk.__alloc_bootmem_node(0, 64, 0, 0)])


def test_vmalloc_takes_the_kernels_protections_only() -> None:
    m = new_machine()

    def task() -> None:
        for prot in (pk.PAGE_KERNEL, pk.PAGE_KERNEL_EXEC, pk.PAGE_KERNEL_NOCACHE):
            addr = pk.__vmalloc(pk.PAGE_SIZE, GFP_KERNEL, prot)
            assert addr is not None
            pk.vfree(addr)
        for bad_prot in (0, 0x5, -1, None, True, 1.5):
            with pytest.raises(KmemUsageError, match=r"^__vmalloc: prot\(=.*\) must be PAGE_KERNEL \(0x163\)"):
                pk.__vmalloc(pk.PAGE_SIZE, GFP_KERNEL, bad_prot)
    areas = list(m.vmalloc.vmlist)
    m.run(task)
    assert m.vmalloc.vmlist == areas  # every area vfree'd, none made by a refused call
    m.check()


@pytest.mark.parametrize("size", [-1, 0, 3])
def test_kmem_cache_create_with_a_bad_size_prints_the_early_error_and_gives_null(size: int) -> None:
    """2.6.11 printk()s "Early error" and BUG()s for size < BYTES_PER_WORD (size_t: -1 is huge);
    the model reports both lines and returns NULL, as for its other bad arguments."""
    m = new_machine()
    assert _in_task(m, lambda: pk.kmem_cache_create(f"h8_bad{size}", size)) is None
    assert [r.text.splitlines()[0] for r in m.reports] == [f"kmem_cache_create: Early error in slab h8_bad{size}"]
    assert "kernel BUG at" in m.reports[0].text
    m.check()


def test_the_probe_undoes_legal_state_changes_and_reuses_no_irq() -> None:
    m = new_machine()
    env = Env(m)
    out = run_probe(m, env, Probe("local_irq_restore", "flags", "zero", 0))
    assert out.kind == "return" and not out.damage, out
    out = run_probe(m, env, Probe("spin_unlock_irqrestore", "flags", "zero", 0))
    assert out.kind in ("return", "report") and not out.damage, out
    for name in ("", "5"):  # a request_irq that succeeded leaves its IRQ free for the next probe
        out = run_probe(m, env, Probe("request_irq", "name", "str", name))
        assert out.kind in ("return", "usage") and not out.damage and "already has" not in out.detail, out
    out = run_probe(m, env, Probe("panic", "msg", "str", "5"))
    assert out.kind == "bug" and failure(out) == ""
