"""Schedules per second: the exhaustive search and every policy on the same scenario.

    python -m benchmarks.bench_explore [--quick]

The scenario: two tasks on two CPUs, each twice taking a spinlock around a
read-modify-write of a counter in simulated (bootmem) memory and writing a line of its
own; a fresh Machine per run (construction and boot included), as explore() does.
Printed per way of exploring: seconds per run, runs (schedules) per second, and how
many distinct schedules the runs were. The exhaustive search runs every schedule up to
2 preemptions, with and without its partial-order reduction; the policies run as many
seeds as the reduced search ran schedules. Each measurement is the best of several
rounds, interleaved (benchmarks/_measure.py).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

from benchmarks._measure import interleaved, machine_info
from percpu_kmem import Machine
from percpu_kmem.exhaustive import explore_exhaustive
from percpu_kmem.linux import alloc_bootmem, read_u32, spin_lock, spin_lock_init, spin_unlock, write_u32
from percpu_kmem.testing import explore

__all__ = ["scenario", "bench_exhaustive", "bench_policy", "bench_drawn", "main"]

_AREAS: list[int] = []


def _init() -> None:
    p = alloc_bootmem(256)
    write_u32(p, 0)
    _AREAS.append(p)


def scenario(m: Machine) -> None:
    base = _AREAS[-1]
    lock = spin_lock_init("bench_lock")

    def worker(mine: int) -> Callable[[], None]:
        def fn() -> None:
            for _ in range(2):
                spin_lock(lock)
                write_u32(base, read_u32(base) + 1)
                spin_unlock(lock)
                write_u32(base + 64 * mine, 1)
        return fn

    m.run(worker(1), worker(2))


def bench_exhaustive(reduction: bool) -> tuple[float, int, bool]:
    """(seconds per schedule, schedules, complete) of the search up to 2 preemptions."""
    res = explore_exhaustive(scenario, cpus=2, preemptions=2, reduction=reduction, init=[_init])
    return res.elapsed / res.schedules, res.schedules, res.complete


def bench_policy(policy: str, n: int) -> tuple[float, int]:
    """(seconds per run, distinct schedules) of ``n`` seeds of ``policy`` (None: the campaign)."""
    st = explore(scenario, seeds=range(n), policies=policy, cpus=2, init=[_init], stats=True, shrink=False)
    return st.elapsed / st.runs, st.distinct_schedules


def bench_drawn(n: int) -> tuple[float, int]:
    """(seconds per run, distinct schedules) of ``n`` schedules of strategies.Schedule with
    random picks (what a Hypothesis-driven test runs, without Hypothesis's own cost)."""
    import time

    from percpu_kmem.strategies import MAX_PICK, Schedule
    rng = random.Random(0)
    seen: set[tuple[object, ...]] = set()
    t0 = time.perf_counter()
    for _ in range(n):
        s = Schedule([rng.randint(0, MAX_PICK) for _ in range(60)])
        scenario(s.machine(cpus=2, init=[_init]))
        seen.add(tuple(s.choices))
    return (time.perf_counter() - t0) / n, len(seen)


def main() -> None:
    quick = "--quick" in sys.argv
    rep = 2 if quick else 3
    info = machine_info()
    print(f"# {info['cpu']}, {info['cores']} cores, {info['python']}, {info['date']}")
    (red, n_red, c_red), (full, n_full, c_full) = interleaved(
        [lambda: bench_exhaustive(True), lambda: bench_exhaustive(False)], rep)
    n = n_red if not quick else min(n_red, 40)
    rows: list[tuple[str, float, int, str]] = [
        ("exhaustive, <= 2 preemptions, reduction on", red, n_red, "complete" if c_red else "incomplete"),
        ("exhaustive, <= 2 preemptions, reduction off", full, n_full, "complete" if c_full else "incomplete"),
    ]
    names = ["random", "pct", "virtual", "campaign"]
    results = interleaved([(lambda p=p: bench_policy(None if p == "campaign" else p, n)) for p in names]
                          + [lambda: bench_drawn(n)], rep)
    for name, (sec, distinct) in zip([*names, "drawn (strategies.Schedule)"], results, strict=True):
        rows.append((f"{name}, {n} seeds", sec, distinct, "distinct"))
    print(f"{'way of exploring':48} {'ms/run':>8} {'runs/s':>8} {'schedules':>10}")
    for label, sec, count, note in rows:
        print(f"{label:48} {sec * 1e3:8.2f} {1 / sec:8.0f} {count:>10} {note}")


if __name__ == "__main__":
    main()
