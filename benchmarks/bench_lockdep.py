"""What lockdep costs: spin_lock/spin_unlock pairs with ``lockdep=True`` against the same
pairs on a machine without it, measured in the same thread, interleaved (benchmarks/_measure.py).

    python -m benchmarks.bench_lockdep [--quick]

1. one lock, taken and released in a loop (no lock held: no dependency to look up);
2. two locks nested, A then B (the edge A -> B is looked up at every inner acquisition);
3. a mutex_lock/mutex_unlock pair, uncontended.

Each on a bare 1-CPU runtime machine (``boot=False``), random policy with a huge
``mean_run`` so no scheduling decision is taken inside the loop: what is measured is
the lock path itself. (With lockdep off the lock path pays one ``is None`` test per
acquisition and release; docs/lockdep.md gives how that compared with the code before.)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from benchmarks._measure import interleaved, lock_pair
from percpu_kmem import Machine, mutex_init, mutex_lock, mutex_unlock, spin_lock, spin_lock_init, spin_unlock

__all__ = ["nested_loop", "mutex_loop", "bench", "main"]


def nested_loop(n: int) -> float:
    """Seconds per nested pair of pairs (A, then B under A), in a loop of ``n``."""
    a, b = spin_lock_init("bench_A"), spin_lock_init("bench_B")
    t0 = time.perf_counter()
    for _ in range(n):
        spin_lock(a)
        spin_lock(b)
        spin_unlock(b)
        spin_unlock(a)
    return (time.perf_counter() - t0) / n


def mutex_loop(n: int) -> float:
    """Seconds per mutex_lock + mutex_unlock pair, uncontended."""
    m = mutex_init("bench_mutex")
    t0 = time.perf_counter()
    for _ in range(n):
        mutex_lock(m)
        mutex_unlock(m)
    return (time.perf_counter() - t0) / n


def bench(loop: Callable[[int], float], n: int, rep: int) -> tuple[float, float]:
    """(off, on): seconds per iteration of ``loop`` with lockdep off and on, interleaved."""
    off = Machine(cpus=1, boot=False, mean_run=10**9)
    on = Machine(cpus=1, boot=False, mean_run=10**9, lockdep=True)
    return tuple(interleaved([lambda: off.run(lambda: loop(n))[0],  # type: ignore[return-value]
                              lambda: on.run(lambda: loop(n))[0]], rep))


def main() -> None:
    quick = "--quick" in sys.argv
    n = 20000 if quick else 200000
    rep = 3 if quick else 5
    print(f"{'lockdep on vs off (1 CPU, no decision in the loop)':52} {'off ns':>8} {'on ns':>8} {'x off':>7}")
    for name, loop in (("spin_lock + spin_unlock", lock_pair),
                       ("A then B nested (two pairs)", nested_loop),
                       ("mutex_lock + mutex_unlock", mutex_loop)):
        off, on = bench(loop, n, rep)
        print(f"{name:52} {off * 1e9:8.0f} {on * 1e9:8.0f} {on / off:7.2f}")


if __name__ == "__main__":
    main()
