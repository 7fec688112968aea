"""What KCSAN-style race detection costs: the same loops on a machine with ``kcsan=True``
and on one without, measured in the same thread, interleaved (benchmarks/_measure.py).

    python -m benchmarks.bench_kcsan [--quick]

1. read_u32 + write_u32 of a kmalloc'ed word (two checked accesses);
2. a 64-byte mem_write (64 shadow cells);
3. spin_lock + spin_unlock (the lock's clock acquired and released);
4. kmalloc(64, GFP_KERNEL) + kfree (the freed object's shadow dropped);
5. a whole run: two tasks, each 200 rounds of spin_lock, read_u32 + write_u32 of a
   shared counter, spin_unlock (wall time of m.run on 2 CPUs, random policy).

Rows 1-4 run in a task of Machine(cpus=1, mean_run=10**9): no scheduling decision is
taken inside the loop, so what is measured is the access or lock path itself. With
kcsan off each accessor pays one ``is None`` test and each lock operation one more;
docs/kcsan.md gives the numbers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from benchmarks._measure import interleaved, kmalloc_pair, lock_pair
from percpu_kmem import GFP_KERNEL, Machine, kfree, kmalloc, spin_lock, spin_lock_init, spin_unlock
from percpu_kmem.linux import mem_write, read_u32, write_u32

__all__ = ["access_loop", "wide_write_loop", "bench", "run_bench", "main"]


def access_loop(n: int) -> float:
    """Seconds per read_u32 + write_u32 pair on one word, in a loop of ``n``; in a task."""
    p = kmalloc(16, GFP_KERNEL)
    assert p is not None
    t0 = time.perf_counter()
    for i in range(n):
        write_u32(p, read_u32(p) + i)
    dt = time.perf_counter() - t0
    kfree(p)
    return dt / n


def wide_write_loop(n: int) -> float:
    """Seconds per 64-byte mem_write."""
    p = kmalloc(64, GFP_KERNEL)
    assert p is not None
    data = bytes(range(64))
    t0 = time.perf_counter()
    for _ in range(n):
        mem_write(p, data)
    dt = time.perf_counter() - t0
    kfree(p)
    return dt / n


def bench(loop: Callable[[int], float], n: int, rep: int) -> tuple[float, float]:
    """(off, on): seconds per iteration of ``loop`` with kcsan off and on, interleaved."""
    off = Machine(cpus=1, mean_run=10**9)
    on = Machine(cpus=1, mean_run=10**9, kcsan=True)
    return tuple(interleaved([lambda: off.run(lambda: loop(n))[0],  # type: ignore[return-value]
                              lambda: on.run(lambda: loop(n))[0]], rep))


def _run_once(kcsan: bool, rounds: int) -> float:
    m = Machine(cpus=2, seed=1, kcsan=kcsan)
    lock = spin_lock_init("bench_kcsan_run")
    box: list[int] = []
    m.run(lambda: box.append(kmalloc(16, GFP_KERNEL) or 0))
    p = box[0]

    def worker() -> None:
        for _ in range(rounds):
            spin_lock(lock)
            write_u32(p, read_u32(p) + 1)
            spin_unlock(lock)

    t0 = time.perf_counter()
    m.run(worker, worker)
    dt = time.perf_counter() - t0
    assert not m.reports_of("kcsan_data_race")
    return dt


def run_bench(rounds: int, rep: int) -> tuple[float, float]:
    """(off, on): wall seconds of a whole two-task run."""
    return tuple(interleaved([lambda: _run_once(False, rounds),  # type: ignore[return-value]
                              lambda: _run_once(True, rounds)], rep))


def main() -> None:
    quick = "--quick" in sys.argv
    n = 5000 if quick else 50000
    rep = 3 if quick else 5
    print(f"{'kcsan on vs off (1 CPU, no decision in the loop)':52} {'off ns':>8} {'on ns':>8} {'x off':>7}")
    for name, loop in (("read_u32 + write_u32", access_loop),
                       ("mem_write of 64 bytes", wide_write_loop),
                       ("spin_lock + spin_unlock", lock_pair),
                       ("kmalloc(64) + kfree", kmalloc_pair)):
        off, on = bench(loop, n, rep)
        print(f"{name:52} {off * 1e9:8.0f} {on * 1e9:8.0f} {on / off:7.2f}")
    off, on = run_bench(40 if quick else 200, rep)
    print(f"{'whole run, 2 tasks x locked counter (ms)':52} {off * 1e3:8.1f} {on * 1e3:8.1f} {on / off:7.2f}")


if __name__ == "__main__":
    main()
