"""The one way the benchmarks measure: a measurement and its baseline in the same
thread, interleaved, best of several repetitions; report ratios.

The project's machines are shared and noisy: a baseline timed a minute before the
measurement, or in another thread, measures a different machine. So every
measurement here is a callable returning seconds per operation, run in rounds
together with its baseline (``interleaved``): round 1 runs baseline then
measurement, round 2 the other way round, and so on; each keeps the best (the
smallest) of its rounds. Noise only ever adds time, so the minimum is the
estimate least disturbed by it, and interleaving spreads slow phases of the
machine over both sides of the ratio.

The bare-Python baselines the targets are stated against live here too:
``bare_list`` (a list.pop + list.append pair), ``empty_call`` (an empty function
call with one argument, as ``preempt_point("x")`` has) and ``bare_baton`` (a
two-thread ``threading.Lock`` ping-pong, the least a hand-off between two OS
threads can cost).
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def interleaved(fns: Sequence[Callable[[], T]], repeat: int) -> list[T]:
    """Run every callable once per round, ``repeat`` rounds, alternating the order of
    the calls from one round to the next; return each callable's smallest result.

    Each callable returns seconds per operation (or a tuple whose first item is
    that: tuples compare on it first), so smaller is better.
    """
    if repeat < 1:
        raise ValueError(f"interleaved: repeat(={repeat!r}) must be >= 1")
    best: list[Any] = [None] * len(fns)
    order = list(range(len(fns)))
    for r in range(repeat):
        for i in (order if r % 2 == 0 else order[::-1]):
            v = fns[i]()
            if best[i] is None or v < best[i]:
                best[i] = v
    return best


def best_of(fn: Callable[[], T], repeat: int) -> T:
    """The smallest of ``repeat`` results of ``fn`` (a measurement with no baseline
    beside it; prefer ``interleaved`` whenever there is one)."""
    return interleaved([fn], repeat)[0]


# -- baselines -------------------------------------------------------------------
def bare_list(n: int) -> float:
    """Seconds per list.pop() + list.append() pair, in a loop of ``n``."""
    lst = list(range(64))
    t0 = time.perf_counter()
    for _ in range(n):
        x = lst.pop()
        lst.append(x)
    return (time.perf_counter() - t0) / n


# -- the simulated operations several benchmarks time (in a task of a machine) -----------
def kmalloc_pair(n: int) -> float:
    """Seconds per kmalloc(64, GFP_KERNEL) + kfree pair on the magazine fast path, in a loop
    of ``n`` (after 256 pairs that warm the size-64 magazines)."""
    from percpu_kmem.linux import GFP_KERNEL, kfree, kmalloc
    for _ in range(256):
        kfree(kmalloc(64, GFP_KERNEL))
    t0 = time.perf_counter()
    for _ in range(n):
        kfree(kmalloc(64, GFP_KERNEL))
    return (time.perf_counter() - t0) / n


def lock_pair(n: int) -> float:
    """Seconds per spin_lock + spin_unlock pair of one uncontended lock, in a loop of ``n``."""
    from percpu_kmem.linux import spin_lock, spin_lock_init, spin_unlock
    lock = spin_lock_init("bench_lock")
    t0 = time.perf_counter()
    for _ in range(n):
        spin_lock(lock)
        spin_unlock(lock)
    return (time.perf_counter() - t0) / n


def _empty(ev: str) -> None:
    pass


def empty_call(n: int) -> float:
    """Seconds per call of an empty module-level function with one argument."""
    f = _empty
    t0 = time.perf_counter()
    for _ in range(n):
        f("x")
    return (time.perf_counter() - t0) / n


def bare_baton(n: int) -> float:
    """Seconds per hand-off of a bare two-thread baton: two ``threading.Lock``s
    released and acquired in turn, ``2 * n`` hand-offs."""
    a, b = threading.Lock(), threading.Lock()
    a.acquire()
    b.acquire()

    def other() -> None:
        for _ in range(n):
            b.acquire()
            a.release()

    th = threading.Thread(target=other)
    th.start()
    t0 = time.perf_counter()
    for _ in range(n):
        b.release()
        a.acquire()
    dt = time.perf_counter() - t0
    th.join()
    return dt / (2 * n)


# -- where it ran ----------------------------------------------------------------
def machine_info() -> dict[str, str]:
    """Cores, CPU model (/proc/cpuinfo), Python version and platform."""
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": sys.platform,
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
    }


def spin_lock_runs(n: int, *, boot: bool, policy: str = "random", engine: str = "thread",
                   steps: int = 10, **options: Any) -> float:
    """Seconds per run of the two-task, ten-step spin_lock scenario on a fresh
    Machine(cpus=2, seed=s) per run, s = 0..n-1 (construction and boot included). A lock
    belongs to the machine that first uses it: each run makes its own. ``engine``,
    ``steps`` (per task) and the policy's ``options`` vary it."""
    from percpu_kmem import Machine
    from percpu_kmem.linux import spin_lock, spin_lock_init, spin_unlock

    lock = [spin_lock_init()]

    def body() -> None:
        lk = lock[0]
        for _ in range(steps):
            spin_lock(lk)
            spin_unlock(lk)

    t0 = time.perf_counter()
    for seed in range(n):
        lock[0] = spin_lock_init()
        Machine(cpus=2, policy=policy, seed=seed, boot=boot, engine=engine, **options).run(body, body)
    return (time.perf_counter() - t0) / n
