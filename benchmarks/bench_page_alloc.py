"""Page allocator benchmarks: ratios against a bare Python list in the same run.

    python -m benchmarks.bench_page_alloc [--quick]

1. order-0 alloc+free through the per-CPU list (alloc_page/__free_page in a task),
   and the same with alloc_pages(GFP_KERNEL, 0)/__free_pages(page, 0), which hold the
   order-0 fast path themselves (row 7b of ``python -m benchmarks``)
   (each row's baseline is measured beside it, interleaved: benchmarks/_measure.py)
2. order-0 rmqueue+free on the buddy alone (no runtime, no locks)
3. baseline: list.pop() + list.append()
4. the per-CPU pair as memory grows (should stay flat)
5. boot time and resident memory of 64 MiB, 4 GiB and 16 GiB machines (fresh processes)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks._measure import bare_list, best_of, interleaved
from percpu_kmem import GFP_KERNEL, Machine, __free_page, __free_pages, alloc_page, alloc_pages

__all__ = ["bare_list", "best_of", "pcp_loop", "pages_loop", "pcp_pair", "buddy_pair", "boot", "main"]


def pcp_loop(n: int) -> float:
    """Seconds per alloc_page + __free_page pair (order 0, the per-CPU list); in a task."""
    t0 = time.perf_counter()
    for _ in range(n):
        __free_page(alloc_page(GFP_KERNEL))
    return (time.perf_counter() - t0) / n


def pages_loop(n: int) -> float:
    """Seconds per alloc_pages(GFP_KERNEL, 0) + __free_pages(page, 0) pair; in a task."""
    t0 = time.perf_counter()
    for _ in range(n):
        __free_pages(alloc_pages(GFP_KERNEL, 0), 0)
    return (time.perf_counter() - t0) / n


def pcp_pair(n: int, memory: str = "64M", rep: int = 1) -> tuple[float, float]:
    """(list baseline, per-CPU pair), interleaved in one task of a machine of ``memory``
    whose policy never decides."""
    base, pcp, _ = pcp_pairs(n, memory, rep)
    return base, pcp


def pcp_pairs(n: int, memory: str = "64M", rep: int = 1) -> tuple[float, float, float]:
    """(list baseline, alloc_page pair, alloc_pages pair), as pcp_pair."""
    m = Machine(cpus=1, memory=memory, mean_run=10**9)
    base, pcp, pages = m.run(lambda: interleaved([lambda: bare_list(n), lambda: pcp_loop(n),
                                                  lambda: pages_loop(n)], rep))[0]
    return base, pcp, pages


def buddy_pair(n: int, rep: int = 1) -> tuple[float, float]:
    """(list baseline, buddy rmqueue(0) + free), interleaved in this thread (no task,
    no runtime, no locks)."""
    m = Machine(cpus=1, memory="64M")
    buddy = m.mm.zones[-1].buddy
    mem = m.mem

    def loop() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            pfn = buddy.rmqueue(0)
            mem.count[pfn] = 0
            buddy.free(pfn, 0)
        return (time.perf_counter() - t0) / n

    base, bud = interleaved([lambda: bare_list(n), loop], rep)
    return base, bud


BOOT = ("import resource, time; t0 = time.perf_counter(); from percpu_kmem import Machine; t1 = time.perf_counter(); "
        "m = Machine(cpus=64, memory='{size}', nodes={nodes}); t2 = time.perf_counter(); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]; print(t2 - t1, hwm)")


def boot(size: str, nodes: int) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", BOOT.format(size=size, nodes=nodes)], capture_output=True,
                         text=True, check=True).stdout.split()
    return float(out[0]), int(out[1]) / 1024


def main() -> None:
    quick = "--quick" in sys.argv
    n = 2000 if quick else 20000
    rep = 3 if quick else 5
    base, pcp, pages = pcp_pairs(n, rep=rep)
    bbase, bud = buddy_pair(n, rep)
    print(f"{'operation':48} {'ns/op':>10} {'x list':>8}")
    print(f"{'list.pop + list.append (baseline)':48} {base * 1e9:10.0f} {1.0:8.1f}")
    print(f"{'alloc_page + __free_page (per-CPU list)':48} {pcp * 1e9:10.0f} {pcp / base:8.1f}")
    print(f"{'alloc_pages(.., 0) + __free_pages (fast path)':48} {pages * 1e9:10.0f} {pages / base:8.1f}")
    print(f"{'buddy rmqueue(0) + free (no runtime)':48} {bud * 1e9:10.0f} {bud / bbase:8.1f}")
    print()
    print(f"{'per-CPU pair as memory grows':48} {'ns/op':>10} {'x list':>8} {'x 64M':>8}")
    ref = None
    for size in ("64M", "1G", "4G") if quick else ("64M", "1G", "4G", "16G"):
        b, v = pcp_pair(n, size, rep)
        ref = ref or v / b
        print(f"{size:48} {v * 1e9:10.0f} {v / b:8.1f} {v / b / ref:8.2f}")
    print()
    print(f"{'boot (64 CPUs)':30} {'seconds':>10} {'peak RSS MiB':>12}")
    for size, nodes in (("64M", 1), ("4G", 4), ("16G", 1)):
        runs = [boot(size, nodes) for _ in range(1 if quick else 3)]
        print(f"{size + f', {nodes} node(s)':30} {statistics.median(r[0] for r in runs):10.3f} "
              f"{statistics.median(r[1] for r in runs):12.0f}")


if __name__ == "__main__":
    main()
