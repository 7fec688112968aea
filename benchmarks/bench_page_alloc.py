"""Page allocator benchmarks: ratios against a bare Python list in the same run.

    python -m benchmarks.bench_page_alloc [--quick]

1. order-0 alloc+free through the per-CPU list (alloc_page/__free_page in a task)
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

from percpu_kmem import GFP_KERNEL, Machine, __free_page, alloc_page


def best_of(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    return min(fn() for _ in range(repeat))


def bare_list(n: int) -> float:
    lst = list(range(64))
    t0 = time.perf_counter()
    for _ in range(n):
        x = lst.pop()
        lst.append(x)
    return (time.perf_counter() - t0) / n


def pcp_pair(n: int, memory: str = "64M") -> float:
    m = Machine(cpus=1, memory=memory, mean_run=10**9)

    def body() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            __free_page(alloc_page(GFP_KERNEL))
        return (time.perf_counter() - t0) / n

    return m.run(body)[0]  # type: ignore[no-any-return]


def buddy_pair(n: int) -> float:
    m = Machine(cpus=1, memory="64M")
    buddy = m.mm.zones[-1].buddy
    mem = m.mem
    t0 = time.perf_counter()
    for _ in range(n):
        pfn = buddy.rmqueue(0)
        mem.count[pfn] = 0
        buddy.free(pfn, 0)
    return (time.perf_counter() - t0) / n


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
    base = best_of(lambda: bare_list(n), rep)
    pcp = best_of(lambda: pcp_pair(n), rep)
    bud = best_of(lambda: buddy_pair(n), rep)
    print(f"{'operation':48} {'ns/op':>10} {'x list':>8}")
    print(f"{'list.pop + list.append (baseline)':48} {base * 1e9:10.0f} {1.0:8.1f}")
    print(f"{'alloc_page + __free_page (per-CPU list)':48} {pcp * 1e9:10.0f} {pcp / base:8.1f}")
    print(f"{'buddy rmqueue(0) + free (no runtime)':48} {bud * 1e9:10.0f} {bud / base:8.1f}")
    print()
    print(f"{'per-CPU pair as memory grows':48} {'ns/op':>10} {'x 64M':>8}")
    ref = None
    for size in ("64M", "1G", "4G") if quick else ("64M", "1G", "4G", "16G"):
        v = best_of(lambda: pcp_pair(n, size), rep)
        ref = ref or v
        print(f"{size:48} {v * 1e9:10.0f} {v / ref:8.2f}")
    print()
    print(f"{'boot (64 CPUs)':30} {'seconds':>10} {'peak RSS MiB':>12}")
    for size, nodes in (("64M", 1), ("4G", 4), ("16G", 1)):
        runs = [boot(size, nodes) for _ in range(1 if quick else 3)]
        print(f"{size + f', {nodes} node(s)':30} {statistics.median(r[0] for r in runs):10.3f} "
              f"{statistics.median(r[1] for r in runs):12.0f}")


if __name__ == "__main__":
    main()
