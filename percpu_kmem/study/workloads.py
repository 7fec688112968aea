"""Workloads that stress the per-CPU layers, each a parameterised scenario of one machine.

Every workload is called as ``fn(m, ops=..., seed=..., **params)`` on a booted machine of
any policy (a study runs them under "virtual"; a stress run may use random or pct) and
returns a :class:`WorkloadRun`: the operations done (an allocation or a free is one
operation), the frees and how many were remote (the object was allocated on another CPU),
and the measured interval of virtual time. Set-up (creating a cache, initial objects) runs
first in its own task and is not measured; all CPU clocks are then aligned (a barrier), and
one worker per CPU runs the measured part, pinned to its CPU.

The shapes follow the benchmarks docs/scalability.md cites: Hoard's threadtest, Larson &
Krishnan's larson, xmalloc-test's producer/consumer, a network receive storm, will-it-scale's
page_fault1 (order-0 churn beyond pcp high), MicroQuill's shbench, and a memory-pressure
mix where reclaim and kswapd run. Sizes and counts are scaled down (docs say how).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..linux import (
    cpu_relax,
    current,
    local_bh_disable,
    local_bh_enable,
    raise_irq,
    raise_softirq,
    raw_smp_processor_id,
    set_cpus_allowed,
    spin_lock,
    spin_lock_init,
    spin_unlock,
)
from ..machine import Machine
from ..mm.gfp import GFP_ATOMIC, GFP_KERNEL
from ..mm.kmalloc import kfree, kmalloc
from ..mm.page_alloc import __free_pages, alloc_pages, fill_page_cache
from ..mm.slab import kmem_cache_alloc, kmem_cache_create, kmem_cache_free
from ..runtime.errors import KmemUsageError


@dataclass
class WorkloadRun:
    """What one measured run did, and the virtual time it took."""

    ops: int = 0
    frees: int = 0
    remote_frees: int = 0
    cycles: int = 0  # makespan: from the aligned start to the last CPU's end
    spin_cycles: int = 0  # summed over the CPUs
    spin_per_cpu: list[int] | None = None  # cycles each CPU spent spinning on held locks
    lock_acquisitions: int = 0
    lock_contentions: int = 0
    locks: dict[str, tuple[int, int]] | None = None  # class -> (acquisitions, contentions) in the run

    @property
    def remote_free_ratio(self) -> float:
        return self.remote_frees / self.frees if self.frees else 0.0


@dataclass(frozen=True)
class Workload:
    name: str
    doc: str
    fn: Callable[..., WorkloadRun]
    #: the parameters and their defaults (besides ops and seed)
    params: dict[str, Any]

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """``params`` over the defaults, each checked before anything runs: a known name, a
        value of the default's kind, within the parameter's range (_PARAM_RANGES; a size
        range with min_size <= max_size). KmemUsageError otherwise."""
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise KmemUsageError(f"workload {self.name!r}: unknown parameter(s) {', '.join(unknown)}; it takes "
                                 f"{', '.join(sorted(self.params)) or 'none'}")
        kw = {**self.params, **params}
        for name, value in params.items():
            default = self.params[name]
            low, high = _PARAM_RANGES.get(name, (None, None))
            kind_ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                       if isinstance(default, float) else isinstance(value, int) and not isinstance(value, bool))
            if not kind_ok or (low is not None and value < low) or (high is not None and value > high):
                span = f"from {low}" if high is None else f"in [{low}, {high}]"
                raise KmemUsageError(f"workload {self.name!r}: {name}(={value!r}) must be "
                                     f"{'a number' if isinstance(default, float) else 'an int'} {span}")
        if "min_size" in kw and "max_size" in kw and kw["min_size"] > kw["max_size"]:
            raise KmemUsageError(f"workload {self.name!r}: min_size(={kw['min_size']}) is above "
                                 f"max_size(={kw['max_size']})")
        return kw

    def __call__(self, m: Machine, ops: int = 200, seed: int = 0, **params: Any) -> WorkloadRun:
        kw = self.check_params(params)
        if isinstance(ops, bool) or not isinstance(ops, int) or ops < 1:
            raise KmemUsageError(f"workload {self.name!r}: ops(={ops!r}) must be an int >= 1 (per CPU)")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise KmemUsageError(f"workload {self.name!r}: seed(={seed!r}) must be an int")
        return self.fn(m, ops, seed, **kw)


#: Each workload parameter's range (inclusive; None: unbounded): counts of at least one,
#: sizes a kmalloc serves, flags 0 or 1, fractions within [0, 1].
_PARAM_RANGES: dict[str, tuple[float | None, float | None]] = {
    "batch": (1, None), "slots": (1, None), "rounds": (1, None), "queue": (1, None), "burst": (1, None),
    "size": (1, 131072), "min_size": (1, 131072), "max_size": (1, 131072), "depth": (0, None),
    "hold": (0, None), "outside": (0, None), "local": (0, 1), "shared": (0, 1),
    "fill": (0.0, 1.0), "out_of_order": (0.0, 1.0),
}


WORKLOADS: dict[str, Workload] = {}


def workload(name: str, **params: Any) -> Callable[[Callable[..., WorkloadRun]], Callable[..., WorkloadRun]]:
    def deco(fn: Callable[..., WorkloadRun]) -> Callable[..., WorkloadRun]:
        WORKLOADS[name] = Workload(name, (fn.__doc__ or "").strip().splitlines()[0], fn, params)
        return fn
    return deco


# -- measuring ---------------------------------------------------------------------------------
def _lock_counts(m: Machine) -> dict[Any, tuple[int, int]]:
    return {lk: (lk.acquisitions, lk.contentions) for lk in list(m.locks)}


def measure(m: Machine, workers: Sequence[Callable[[], Any]]) -> WorkloadRun:
    """Run ``workers`` (one per CPU, pinned) from aligned clocks; the interval's figures."""
    from ..runtime.lockstat import class_name
    start = max(c.clock for c in m.cpus)
    for c in m.cpus:
        c.clock = start
    spin0 = [c.spin_cycles for c in m.cpus]
    locks0 = _lock_counts(m)

    def pinned(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            set_cpus_allowed(current(), [raw_smp_processor_id()])
            return fn()
        return run

    m.run(*(pinned(w) for w in workers), names=[f"study/{i}" for i in range(len(workers))])
    res = WorkloadRun()
    res.cycles = max(c.clock for c in m.cpus) - start
    res.spin_per_cpu = [c.spin_cycles - s0 for c, s0 in zip(m.cpus, spin0)]
    res.spin_cycles = sum(res.spin_per_cpu)
    per_class: dict[str, tuple[int, int]] = {}
    for lk, (acq, con) in _lock_counts(m).items():
        a0, c0 = locks0.get(lk, (0, 0))
        if acq - a0:
            name = class_name(lk)
            pa, pc = per_class.get(name, (0, 0))
            per_class[name] = (pa + acq - a0, pc + con - c0)
    res.locks = per_class
    res.lock_acquisitions = sum(a for a, _ in per_class.values())
    res.lock_contentions = sum(c for _, c in per_class.values())
    return res


def _each(fn: Callable[[int], Any], ids: Iterable[int]) -> list[Callable[[], Any]]:
    """One callable per worker: ``fn(i)`` for each ``i``."""
    return [partial(fn, i) for i in ids]


def _setup(m: Machine, fn: Callable[[], Any]) -> Any:
    return m.run(fn, names=["study-setup"])[0]


def _cache(m: Machine, name: str, size: int) -> Any:
    """The workload's cache: created by its first call, found again by the next (a warm-up)."""
    def get() -> Any:
        c = m.slab.find(name)
        return c if c is not None and c.objsize >= size else kmem_cache_create(name, size)
    return _setup(m, get)


class _Counts:
    """Per-worker operation counts, summed after the run (no shared line between CPUs)."""

    def __init__(self, n: int) -> None:
        self.ops = [0] * n
        self.frees = [0] * n
        self.remote = [0] * n

    def into(self, res: WorkloadRun) -> WorkloadRun:
        res.ops, res.frees, res.remote_frees = sum(self.ops), sum(self.frees), sum(self.remote)
        return res


class _Barrier:
    """A sense-less counting barrier: spin_lock for the count, cpu_relax() while waiting."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.lock = spin_lock_init("study_barrier")

    def wait(self, phase: int) -> None:
        spin_lock(self.lock)
        self.count += 1
        spin_unlock(self.lock)
        while self.count < self.n * phase:
            cpu_relax()


# -- the workloads -------------------------------------------------------------------------------
@workload("threadtest", batch=100, size=64)
def threadtest(m: Machine, ops: int, seed: int, batch: int, size: int) -> WorkloadRun:
    """Hoard's threadtest: each CPU allocates ``batch`` objects (more than a magazine), then frees them."""
    cache = _cache(m, f"threadtest-{size}", size)
    n = m.nr_cpus
    cnt = _Counts(n)

    def worker(i: int) -> None:
        done = 0
        while done < ops:
            k = min(batch, max(1, (ops - done) // 2))
            objs = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(k)]
            for o in objs:
                if o is not None:
                    kmem_cache_free(cache, o)
            done += 2 * k
        cnt.ops[i] = done
        cnt.frees[i] = done // 2

    return cnt.into(measure(m, _each(worker, range(n))))


@workload("magazine-pairs", size=64)
def magazine_pairs(m: Machine, ops: int, seed: int, size: int) -> WorkloadRun:
    """Bonwick & Adams 3.8: each CPU loops kmem_cache_alloc then kmem_cache_free of one object."""
    cache = _cache(m, f"pairs-{size}", size)
    n = m.nr_cpus
    cnt = _Counts(n)

    def worker(i: int) -> None:
        for _ in range(ops // 2):
            obj = kmem_cache_alloc(cache, GFP_KERNEL)
            if obj is not None:
                kmem_cache_free(cache, obj)
        cnt.ops[i] = 2 * (ops // 2)
        cnt.frees[i] = ops // 2

    return cnt.into(measure(m, _each(worker, range(n))))


@workload("larson", slots=64, rounds=4, min_size=8, max_size=1000)
def larson(m: Machine, ops: int, seed: int, slots: int, rounds: int, min_size: int, max_size: int) -> WorkloadRun:
    """Larson & Krishnan: random-size kmalloc/kfree in slot arrays handed to the next CPU each round."""
    n = m.nr_cpus
    rng0 = random.Random(seed)

    def init() -> list[list[tuple[Any, int]]]:  # CPU 0 allocates every initial object
        cpu = raw_smp_processor_id()
        return [[(kmalloc(rng0.randint(min_size, max_size), GFP_KERNEL), cpu) for _ in range(slots)]
                for _ in range(n)]

    arrays = _setup(m, init)
    cnt = _Counts(n)
    barrier = _Barrier(n)
    per_round = max(1, ops // (2 * rounds))

    def worker(i: int) -> None:
        rng = random.Random(seed * 7919 + i)
        cpu = raw_smp_processor_id()
        for r in range(rounds):
            arr = arrays[(i + r) % n]  # round r: the array CPU i-r worked on before
            for _ in range(per_round):
                j = rng.randrange(slots)
                obj, home = arr[j]
                kfree(obj)
                cnt.frees[i] += 1
                if home != cpu:
                    cnt.remote[i] += 1
                arr[j] = (kmalloc(rng.randint(min_size, max_size), GFP_KERNEL), cpu)
                cnt.ops[i] += 2
            barrier.wait(r + 1)

    res = cnt.into(measure(m, _each(worker, range(n))))

    def cleanup() -> None:
        for arr in arrays:
            for obj, _home in arr:
                kfree(obj)

    _setup(m, cleanup)
    return res


@workload("producer-consumer", size=64, batch=32, queue=16, local=0)
def producer_consumer(m: Machine, ops: int, seed: int, size: int, batch: int, queue: int, local: int) -> WorkloadRun:
    """xmalloc-test: half the CPUs allocate batches onto a bounded queue, the others free them (remote).

    ``local=1``: the control, every CPU frees its own batches (same queue, same operations)."""
    cache = _cache(m, f"xmalloc-{size}", size)
    n = m.nr_cpus
    cnt = _Counts(n)
    q: list[tuple[list[Any], int]] = []
    qlock = spin_lock_init("xmalloc_queue")
    producers = max(1, n // 2)
    total_batches = max(1, (ops * n) // (2 * batch))
    per_producer = [total_batches // producers + (1 if p < total_batches % producers else 0)
                    for p in range(producers)]
    consumed = [0]

    def produce(i: int, k: int) -> None:
        cpu = raw_smp_processor_id()
        for _ in range(k):
            objs = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(batch)]
            cnt.ops[i] += batch
            while True:
                spin_lock(qlock)
                if len(q) < queue:
                    q.append((objs, cpu))
                    spin_unlock(qlock)
                    break
                spin_unlock(qlock)
                cpu_relax()

    def consume(i: int, until: int) -> None:
        cpu = raw_smp_processor_id()
        while True:
            spin_lock(qlock)
            if consumed[0] >= until:
                spin_unlock(qlock)
                return
            item = q.pop(0) if q else None
            if item is not None:
                consumed[0] += 1
            spin_unlock(qlock)
            if item is None:
                cpu_relax()
                continue
            objs, home = item
            for o in objs:
                kmem_cache_free(cache, o)
            cnt.ops[i] += len(objs)
            cnt.frees[i] += len(objs)
            if home != cpu:
                cnt.remote[i] += len(objs)

    if n == 1 or local:
        mine = [total_batches // n + (1 if i < total_batches % n else 0) for i in range(n)]

        def alone(i: int) -> None:  # produce a batch, then free it on this same CPU
            cpu = raw_smp_processor_id()
            for _ in range(mine[i]):
                objs = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(batch)]
                cnt.ops[i] += batch
                spin_lock(qlock)  # the queue's lock is taken as often as in the split case
                q.append((objs, cpu))
                item = q.pop()
                spin_unlock(qlock)
                for o in item[0]:
                    kmem_cache_free(cache, o)
                cnt.ops[i] += batch
                cnt.frees[i] += batch
                if item[1] != cpu:
                    cnt.remote[i] += batch
        return cnt.into(measure(m, _each(alone, range(n))))
    workers = [partial(produce, i, per_producer[i]) for i in range(producers)]
    workers += [partial(consume, i, total_batches) for i in range(producers, n)]
    return cnt.into(measure(m, workers))


NET_RX_SOFTIRQ = 3
RX_IRQ = 19


@workload("net-rx", size=2048, burst=8)
def net_rx(m: Machine, ops: int, seed: int, size: int, burst: int) -> WorkloadRun:
    """A network receive storm: the RX hardirq allocates skbs GFP_ATOMIC; NET_RX softirq frees them on the next CPU."""
    n = m.nr_cpus
    cnt = _Counts(n)
    backlog: list[list[tuple[Any, int]]] = [[] for _ in range(n)]
    locks = [spin_lock_init("softnet_data.lock") for _ in range(n)]

    def rx_handler(irq: int, dev: object) -> None:  # hardirq on this CPU: steer to the next one (RPS)
        cpu = raw_smp_processor_id()
        skbs = [kmalloc(size, GFP_ATOMIC) for _ in range(burst)]
        cnt.ops[cpu] += burst
        dst = (cpu + 1) % n
        spin_lock(locks[dst])
        backlog[dst].extend((s, cpu) for s in skbs if s is not None)
        spin_unlock(locks[dst])

    def net_rx_action() -> None:  # softirq: free what was steered here
        cpu = raw_smp_processor_id()
        spin_lock(locks[cpu])
        items = backlog[cpu]
        backlog[cpu] = []
        spin_unlock(locks[cpu])
        for s, home in items:
            kfree(s)
            cnt.ops[cpu] += 1
            cnt.frees[cpu] += 1
            if home != cpu:
                cnt.remote[cpu] += 1

    def setup() -> None:
        if RX_IRQ in m.irq.actions:  # a warm-up registered it
            m.free_irq(RX_IRQ)
        m.request_irq(RX_IRQ, rx_handler, "eth0")
        m.open_softirq(NET_RX_SOFTIRQ, net_rx_action)

    _setup(m, setup)
    rounds = max(1, ops // (2 * burst))

    def worker(i: int) -> None:
        for _ in range(rounds):
            raise_irq(RX_IRQ)
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()

    finished = [0]
    flock = spin_lock_init("study_rx_done")

    def drain(i: int) -> None:
        worker(i)
        spin_lock(flock)
        finished[0] += 1
        spin_unlock(flock)
        cpu = raw_smp_processor_id()
        while finished[0] < n or backlog[cpu]:  # packets may still be steered here
            local_bh_disable()
            raise_softirq(NET_RX_SOFTIRQ)
            local_bh_enable()
            if not backlog[cpu]:
                cpu_relax()

    return cnt.into(measure(m, _each(drain, range(n))))


@workload("page-churn", depth=0)
def page_churn(m: Machine, ops: int, seed: int, depth: int) -> WorkloadRun:
    """will-it-scale page_fault1: each CPU allocates ``depth`` order-0 pages (default: beyond pcp high), frees them."""
    n = m.nr_cpus
    if depth <= 0:
        hot = max((z.pageset[0][0] for z in m.mm.zones if z.present), key=lambda p: p.high)
        depth = max(64, hot.high + hot.batch)
    cnt = _Counts(n)

    def worker(i: int) -> None:
        done = 0
        while done < ops:
            k = min(depth, max(1, (ops - done) // 2))
            pages = [alloc_pages(GFP_KERNEL, 0) for _ in range(k)]
            for p in pages:
                if p is not None:
                    __free_pages(p, 0)
            done += 2 * k
        cnt.ops[i] = done
        cnt.frees[i] = done // 2

    return cnt.into(measure(m, _each(worker, range(n))))


@workload("shbench", slots=64, min_size=1, max_size=500, out_of_order=0.25)
def shbench(m: Machine, ops: int, seed: int, slots: int, min_size: int, max_size: int,
            out_of_order: float) -> WorkloadRun:
    """shbench-like: random sizes 1-500 B; a stack of objects freed LIFO, some out of order; no sharing."""
    n = m.nr_cpus
    cnt = _Counts(n)

    def worker(i: int) -> None:
        rng = random.Random(seed * 104729 + i)
        live: list[int] = []
        done = 0
        while done < ops:
            if len(live) < slots and (not live or rng.random() < 0.5):
                p = kmalloc(rng.randint(min_size, max_size), GFP_KERNEL)
                if p is not None:
                    live.append(p)
            else:
                j = rng.randrange(len(live)) if rng.random() < out_of_order else len(live) - 1
                kfree(live.pop(j))
                cnt.frees[i] += 1
            done += 1
        for p in live:
            kfree(p)
            cnt.frees[i] += 1
            done += 1
        cnt.ops[i] = done

    return cnt.into(measure(m, _each(worker, range(n))))


@workload("memory-pressure", fill=0.9, batch=32, size=256)
def memory_pressure(m: Machine, ops: int, seed: int, fill: float, batch: int, size: int) -> WorkloadRun:
    """Page cache fills ``fill`` of memory; CPUs allocate pages and objects, so kswapd and direct reclaim run."""
    n = m.nr_cpus

    def setup() -> None:
        free = m.mm.nr_free_pages()
        fill_page_cache(int(free * fill), "clean")

    _setup(m, setup)
    cnt = _Counts(n)

    def worker(i: int) -> None:
        done = 0
        while done < ops:
            pages = [alloc_pages(GFP_KERNEL, 0) for _ in range(batch)]
            objs = [kmalloc(size, GFP_KERNEL) for _ in range(batch)]
            for p in pages:
                if p is not None:
                    __free_pages(p, 0)
            for o in objs:
                kfree(o)
            done += 4 * batch
            cnt.frees[i] += 2 * batch
            fill_page_cache(batch // 2, "clean")  # the file reads that keep the pressure up
        cnt.ops[i] = done

    return cnt.into(measure(m, _each(worker, range(n))))


@workload("critical-section", hold=1000, outside=3000, shared=1)
def critical_section(m: Machine, ops: int, seed: int, hold: int, outside: int, shared: int) -> WorkloadRun:
    """The closed-form check: spin_lock; ``hold`` cycles; spin_unlock; ``outside`` cycles (shared=0: a lock per CPU)."""
    from ..linux import charge
    n = m.nr_cpus
    locks = [spin_lock_init("study_cs")] if shared else [spin_lock_init(f"study_cs{i}") for i in range(n)]
    cnt = _Counts(n)

    def worker(i: int) -> None:
        lk = locks[0] if shared else locks[i]
        for _ in range(ops):
            spin_lock(lk)
            charge(hold)
            spin_unlock(lk)
            charge(outside)
        cnt.ops[i] = ops

    return cnt.into(measure(m, _each(worker, range(n))))


def get_workload(w: Workload | str) -> Workload:
    if isinstance(w, Workload):
        return w
    if isinstance(w, str) and w in WORKLOADS:
        return WORKLOADS[w]
    raise KmemUsageError(f"unknown workload {w!r}: choose one of {', '.join(WORKLOADS)}")


__all__ = ["WorkloadRun", "Workload", "WORKLOADS", "workload", "measure", "get_workload", "threadtest",
           "magazine_pairs", "larson", "producer_consumer", "net_rx", "page_churn", "shbench", "memory_pressure",
           "critical_section"]
