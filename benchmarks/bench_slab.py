"""Slab benchmarks: ratios against a bare Python list measured in the same run.

    python -m benchmarks.bench_slab [--quick]

1-6 run in one kernel thread of Machine(cpus=1, policy="random", seed=0) (a
second such machine with slab_debug=True for the debug rows); 7 on a third:

1. kmalloc(64, GFP_KERNEL) + kfree on the magazine fast path (cache warmed first)
2. kmem_cache_alloc + kmem_cache_free on a kmem_cache_create'd cache
3. depot round trip: allocate 2*batchcount+1 objects, free them; every iteration
   exchanges one magazine with the depot on the way down and one on the way up
   (depot_lock.acquisitions says so). One CPU gets no depot by default
   (sharedfactor 0), so the cache is tuned to sharedfactor 8. Run with the
   default batchcount and with batchcount 4, where the exchanges dominate and
   their cost can be read off against the same loop staying in one magazine.
4. 1 and 3 again with slab debugging (poison, redzones, last-user word)
5. slow path: allocate from an empty cache (cache_grow + refill from slabs), per
   object, against the same allocation loop served by a full magazine
6. baseline: list.pop() + list.append()
7. what the random policy's decisions cost: 1 on a machine whose policy never
   decides (mean_run=10**9)
"""

from __future__ import annotations

import sys
import time

from benchmarks._measure import bare_list, best_of, interleaved, kmalloc_pair
from percpu_kmem import (
    GFP_KERNEL,
    Machine,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_free,
    kmem_cache_shrink,
    kmem_cache_tune,
)


def cache_pair(cache, n: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(256):
        kmem_cache_free(cache, kmem_cache_alloc(cache, GFP_KERNEL))
    t0 = time.perf_counter()
    for _ in range(n):
        kmem_cache_free(cache, kmem_cache_alloc(cache, GFP_KERNEL))
    return (time.perf_counter() - t0) / n


def depot_round_trip(cache, iters: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Seconds per object (alloc+free pair) and depot_lock acquisitions over ``iters`` rounds."""
    k = 2 * cache.batchcount + 1
    objs = [0] * k
    for _ in range(4):  # prime: both magazines full, full magazines in the depot
        held = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(4 * cache.batchcount)]
        for o in held:
            kmem_cache_free(cache, o)
    lock = cache.depot_lock
    acq0 = lock.acquisitions
    per_object = alloc_free_rounds(cache, objs, iters)
    return per_object, lock.acquisitions - acq0


def depot_fast_pair(cache, n: int) -> float:  # type: ignore[no-untyped-def]
    """The same alloc-k-then-free-k loop shape, but k small enough to stay in the loaded magazine."""
    k = 8
    objs = [0] * k
    iters = max(1, n // k)
    for i in range(k):  # leave room: loaded magazine neither empty nor full
        objs[i] = kmem_cache_alloc(cache, GFP_KERNEL)
    for o in objs:
        kmem_cache_free(cache, o)
    return alloc_free_rounds(cache, objs, iters)


def alloc_free_rounds(cache, objs: list[int], iters: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per object of ``iters`` rounds of: allocate len(objs) objects, free them all."""
    k = len(objs)
    t0 = time.perf_counter()
    for _ in range(iters):
        for i in range(k):
            objs[i] = kmem_cache_alloc(cache, GFP_KERNEL)
        for o in objs:
            kmem_cache_free(cache, o)
    return (time.perf_counter() - t0) / (iters * k)


def slow_path(cache, nobj: int, rounds: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Seconds per object allocated from an empty cache (grows every num objects); slabs grown."""
    best = float("inf")
    grown = 0
    for _ in range(rounds):
        kmem_cache_shrink(cache)
        g0 = cache.grown
        t0 = time.perf_counter()
        held = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(nobj)]
        best = min(best, (time.perf_counter() - t0) / nobj)
        grown = cache.grown - g0
        for o in held:
            kmem_cache_free(cache, o)
    return best, grown


def magazine_allocs(cache, rounds: int) -> float:  # type: ignore[no-untyped-def]
    """Seconds per allocation served by a full loaded magazine (the slow path's reference)."""
    best = float("inf")
    b = cache.batchcount
    for _ in range(rounds):
        for o in [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(2 * b)]:
            kmem_cache_free(cache, o)  # leaves loaded and previous full
        t0 = time.perf_counter()
        held = [kmem_cache_alloc(cache, GFP_KERNEL) for _ in range(b)]
        best = min(best, (time.perf_counter() - t0) / b)
        for o in held:
            kmem_cache_free(cache, o)
    return best


def tuned_depot_cache(name: str, batchcount: int | None = None):  # type: ignore[no-untyped-def]
    c = kmem_cache_create(name, 64, 0, 0)
    if batchcount is None:
        kmem_cache_tune(c, c.limit, c.batchcount, 8)
    else:
        kmem_cache_tune(c, 2 * batchcount, batchcount, 8)
    return c


def run_plain(n: int, depot_iters: int, rep: int) -> dict[str, object]:
    def body() -> dict[str, object]:
        r: dict[str, object] = {}
        c = kmem_cache_create("bench_obj", 100, 0, 0)
        d = tuned_depot_cache("bench_depot")
        r["depot_batch"] = d.batchcount
        r["base"], r["kmalloc"], r["cache"], r["depot_fast"] = interleaved(
            [lambda: bare_list(n), lambda: kmalloc_pair(n), lambda: cache_pair(c, n),
             lambda: depot_fast_pair(d, n)], rep)
        r["depot"] = best_of(lambda: depot_round_trip(d, depot_iters), rep)
        s = tuned_depot_cache("bench_depot4", 4)
        r["depot4"] = best_of(lambda: depot_round_trip(s, depot_iters * 10), rep)
        g = kmem_cache_create("bench_grow", 100, 0, 0)
        r["grow_num"] = g.num
        r["mag_alloc"] = magazine_allocs(g, rep * 20)
        r["slow"] = slow_path(g, 20 * g.num, rep)
        return r
    m = Machine(cpus=1, policy="random", seed=0)
    out = m.run(body)[0]
    assert not m.reports, m.reports
    return out  # type: ignore[no-any-return]


def run_debug(n: int, depot_iters: int, rep: int) -> dict[str, object]:
    def body() -> dict[str, object]:
        r: dict[str, object] = {}
        d = tuned_depot_cache("bench_depot")
        r["depot_batch"] = d.batchcount
        r["base"], r["kmalloc"], r["depot_fast"] = interleaved(
            [lambda: bare_list(n), lambda: kmalloc_pair(n), lambda: depot_fast_pair(d, n)], rep)
        r["depot"] = best_of(lambda: depot_round_trip(d, depot_iters), rep)
        s = tuned_depot_cache("bench_depot4", 4)
        r["depot4"] = best_of(lambda: depot_round_trip(s, depot_iters * 10), rep)
        return r
    m = Machine(cpus=1, policy="random", seed=0, slab_debug=True)
    out = m.run(body)[0]
    assert not m.reports, m.reports
    return out  # type: ignore[no-any-return]


def run_no_decisions(n: int, rep: int) -> tuple[float, float]:
    """(baseline, kmalloc pair) on a machine whose policy never decides."""
    m = Machine(cpus=1, policy="random", seed=0, mean_run=10**9)
    base, pair = m.run(lambda: interleaved([lambda: bare_list(n), lambda: kmalloc_pair(n)], rep))[0]
    return base, pair


def row(label: str, sec: float, base: float) -> None:
    print(f"{label:56} {sec * 1e9:10.0f} {sec / base:8.1f}")


def depot_rows(r: dict[str, object], iters: int) -> None:
    base = r["base"]
    b = r["depot_batch"]
    fast = r["depot_fast"]
    row("same loop shape, k=8 (stays in the loaded magazine)", fast, base)  # type: ignore[arg-type]
    for key, bc, n_iters in (("depot", b, iters), ("depot4", 4, iters * 10)):
        per_obj, acq = r[key]  # type: ignore[misc]
        k = 2 * bc + 1  # type: ignore[operator]
        row(f"depot round trip, batchcount {bc}, k={k}, per object", per_obj, base)  # type: ignore[arg-type]
        print(f"{'':4}depot_lock acquisitions: {acq} in {n_iters} rounds (expected {2 * n_iters})")
    per_obj4 = r["depot4"][0]  # type: ignore[index]
    per_exch = (per_obj4 - fast) * 9 / 2  # type: ignore[operator]
    row("  extra per depot exchange (+ its swap miss), from bc 4", per_exch, base)  # type: ignore[arg-type]


def main() -> None:
    quick = "--quick" in sys.argv
    n = 5000 if quick else 100000
    iters = 20 if quick else 200
    rep = 3 if quick else 5
    t0 = time.perf_counter()
    p = run_plain(n, iters, rep)
    base = p["base"]
    print(f"{'operation (Machine(cpus=1, policy=random, seed=0))':56} {'ns/op':>10} {'x list':>8}")
    row("list.pop + list.append (baseline)", base, base)  # type: ignore[arg-type]
    row("kmalloc(64, GFP_KERNEL) + kfree (magazine hit)", p["kmalloc"], base)  # type: ignore[arg-type]
    row("kmem_cache_alloc + kmem_cache_free (100-byte cache)", p["cache"], base)  # type: ignore[arg-type]
    depot_rows(p, iters)
    slow, grown = p["slow"]  # type: ignore[misc]
    row("alloc only, served by a full magazine (100-byte cache)", p["mag_alloc"], base)  # type: ignore[arg-type]
    row(f"slow path: alloc from an empty cache, per object ({p['grow_num']}/slab)", slow, base)
    print(f"{'':4}slabs grown per round: {grown}")
    nd_base, nd = run_no_decisions(n, rep)
    row("kmalloc + kfree, policy never decides (mean_run=10**9)", nd, nd_base)
    dn = n // 5
    di = max(10, iters // 4)
    d = run_debug(dn, di, rep)
    dbase = d["base"]
    print(f"\n{'with slab_debug=True (poison, redzones, last user)':56} {'ns/op':>10} {'x list':>8}")
    row("list.pop + list.append (baseline)", dbase, dbase)  # type: ignore[arg-type]
    row("kmalloc(64, GFP_KERNEL) + kfree (magazine hit)", d["kmalloc"], dbase)  # type: ignore[arg-type]
    depot_rows(d, di)
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
