"""What KASAN and kmemleak cost: the same loops on a machine without them, with
``kasan=True`` and with ``kmemleak=True``, measured in the same thread, interleaved
(benchmarks/_measure.py).

    python -m benchmarks.bench_kasan [--quick]

1. kmalloc(64, GFP_KERNEL) + kfree on the magazine fast path (cache warmed first): with
   a detector on, both go through the slab's debug path (KASAN: shadow, alloc and free
   tracks, the quarantine's rotation; kmemleak: a tracked object per allocation);
2. read_u32 + write_u32 of a live kmalloc'ed object: every access is checked by KASAN
   (kmemleak adds nothing here: its cost is the scan);
3. memcpy of 256 bytes between two kmalloc(256) objects;
4. a kmemleak scan (``m.kmemleak_scan()``) of a machine holding 1,000 small objects, a
   tenth of them unreferenced, against the same machine's ``m.check()`` without it.

Each on Machine(cpus=1, seed=0, mean_run=10**9): one task, no scheduling decision in the
loop, so what is measured is the path itself. With a detector off the accessors pay one
``is None`` test (``m.kasan``) and the slab's fast path nothing at all (the hooks ride
the existing ``cachep.debug`` test).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from benchmarks._measure import interleaved, kmalloc_pair
from percpu_kmem import GFP_KERNEL, Machine, kfree, kmalloc, memcpy, read_u32, write_u32

__all__ = ["access_loop", "memcpy_loop", "scan_cost", "bench", "main"]


def access_loop(n: int) -> float:
    p = kmalloc(64, GFP_KERNEL)
    t0 = time.perf_counter()
    for i in range(n):
        write_u32(p + 8, i)
        read_u32(p + 8)
    dt = (time.perf_counter() - t0) / n
    kfree(p)
    return dt


def memcpy_loop(n: int) -> float:
    a, b = kmalloc(256, GFP_KERNEL), kmalloc(256, GFP_KERNEL)
    t0 = time.perf_counter()
    for _ in range(n):
        memcpy(b, a, 256)
    dt = (time.perf_counter() - t0) / n
    kfree(a)
    kfree(b)
    return dt


def bench(loop: Callable[[int], float], n: int, rep: int) -> tuple[float, float, float]:
    """(off, kasan, kmemleak): seconds per iteration of ``loop``, interleaved."""
    ms = [Machine(cpus=1, seed=0, mean_run=10**9, **kw) for kw in ({}, {"kasan": True}, {"kmemleak": True})]
    res = interleaved([lambda m=m: m.run(lambda: loop(n))[0] for m in ms], rep)  # type: ignore[misc]
    return res[0], res[1], res[2]


def scan_cost(rep: int) -> tuple[float, float]:
    """(m.check() without kmemleak, m.kmemleak_scan() with it): seconds, 1,000 objects held."""
    ms = [Machine(cpus=1, seed=0, mean_run=10**9, **kw) for kw in ({}, {"kmemleak": True})]

    def fill() -> None:
        holder = kmalloc(4096, GFP_KERNEL)
        for i in range(1000):
            p = kmalloc(32, GFP_KERNEL)
            if i % 10 and i // 10 < 1024:
                write_u32(holder + 4 * (i % 1024), p)

    for m in ms:
        m.run(fill)
        m.kmemleak.not_leak(next(iter(m.kmemleak.objects))) if m.kmemleak else None

    def timed(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    off, on = interleaved([lambda: timed(ms[0].check), lambda: timed(ms[1].kmemleak_scan)], rep)
    return off, on


def main() -> None:
    quick = "--quick" in sys.argv
    n = 5000 if quick else 50000
    rep = 3 if quick else 5
    print(f"{'detector cost (1 CPU, no decision in the loop)':44} {'off ns':>8} {'kasan':>8} {'x off':>6}"
          f" {'kmemleak':>9} {'x off':>6}")
    for name, loop in (("kmalloc(64) + kfree", kmalloc_pair), ("write_u32 + read_u32 (live object)", access_loop),
                       ("memcpy 256 bytes", memcpy_loop)):
        off, kasan, leak = bench(loop, n, rep)
        print(f"{name:44} {off * 1e9:8.0f} {kasan * 1e9:8.0f} {kasan / off:6.2f} {leak * 1e9:9.0f} {leak / off:6.2f}")
    off, on = scan_cost(rep)
    print(f"{'scan, 1,000 objects (ms): check() / kmemleak_scan()':44} {off * 1e3:8.2f} {on * 1e3:8.2f}")


if __name__ == "__main__":
    main()
