"""The speed yardstick: every target of the tracker issue "Structure and speed"
(items 7-11) measured against its baseline, in one table.

    python -m benchmarks [--quick] [--json]

Rows (each measurement interleaved with its baseline in the same thread, best of
several rounds; benchmarks/_measure.py):

7a  kmalloc(64, GFP_KERNEL) + kfree on the magazine fast path, in a task of
    Machine(cpus=1, seed=0) (default random policy, size-64 cache warmed)
    vs a bare list.pop + list.append pair. Target: at most 25x.
7b  alloc_pages(GFP_KERNEL, 0) + __free_pages(page, 0) through the per-CPU
    (pcp) list, same machine and task, vs the same list pair. Target: at most 25x.
8a  a scheduling point that does not switch (preempt_point on the budget fast
    path: Machine(cpus=1, boot=False, mean_run=10**9)) vs an empty call with one
    argument. Target: at most 3x. An unranked row beside it gives the average
    point under the default random policy on 1 CPU (decisions with nobody to
    switch to).
8b  a deterministic hand-off between two CPUs (Machine(cpus=2, boot=False,
    mean_run=1, preempt_prob=0): the random policy decides at every point;
    wall time per switch) vs a bare two-thread threading.Lock baton (per
    hand-off). Target: at most 1.5x.
8c  per-operation wall time at 64 CPUs vs 1 CPU under the default random policy,
    the same work per CPU: two tasks per CPU (so that 1 CPU switches too), each
    passing K scheduling points; per op = wall time of m.run / points. Target:
    at most 1.2x. An unranked row gives wall time per recorded decision.
9   runs/s of a two-task, ten-step spin_lock/spin_unlock scenario, each run on a
    freshly made Machine(cpus=2, seed=s) with the default 64M memory (machine
    construction and boot included). Target: at least 1,000. The same with
    boot=False beside it (unranked).
10  simulated operations per wall second of each deterministic policy (random,
    pct, virtual) over the free policy's on the same workload: Machine(cpus=4),
    four tasks, each doing K rounds of kmalloc(64, GFP_KERNEL), spin_lock +
    spin_unlock of a shared lock, kfree (one operation per round).
    Target: at least 1/3.
11  the optional greenlet engine (Machine(engine="greenlet"), when the greenlet
    package is installed) against the default thread engine: runs/s of a
    switch-heavy scenario (two tasks x 100 spin_lock/spin_unlock steps, mean_run=1:
    a decision at every point, fresh Machine(cpus=2, boot=False) per seed).
    Target (issue item 11, for adopting the engine): at least 3x. Beside it
    (unranked) the ten-step scenario of row 9'.

With the greenlet package installed, rows 8b-g, 8c-g and 10-g repeat 8b, 8c and 10
on the greenlet engine (same decisions, same traces; only the hand-off differs).

The table is plain text, or rich's if rich happens to be installed (it is not a
dependency). ``--json`` prints the rows and the machine as JSON instead.
``--quick`` runs fewer rounds and shorter 64-CPU runs (15-25 s on a 2-core machine);
the full run takes 70-80 s there.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from benchmarks._measure import (
    bare_baton,
    bare_list,
    empty_call,
    interleaved,
    kmalloc_pair,
    machine_info,
    spin_lock_runs,
)
from benchmarks.bench_runtime import bench_handoff, point_loop
from percpu_kmem import (
    GFP_KERNEL,
    Machine,
    __free_pages,
    alloc_pages,
    kfree,
    kmalloc,
    preempt_point,
    spin_lock,
    spin_lock_init,
    spin_unlock,
)
from percpu_kmem.runtime.greenlet_engine import greenlet_available


@dataclass
class Row:
    """One measurement. ``value`` and ``baseline`` are both seconds per operation (unit
    "s") or both rates (unit "/s"); ``ratio`` is value / baseline (row 10: the policy's
    rate over the free policy's). ``target``: (op, bound), op "<=" or ">=", applied to
    ``ratio``, or to ``value`` when there is no baseline; None for unranked rows."""

    key: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: tuple[str, float] | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.baseline is None else self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        op, bound = self.target
        x = self.ratio if self.ratio is not None else self.value
        return x <= bound if op == "<=" else x >= bound

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["ratio"] = self.ratio
        d["met"] = self.met
        return d


# -- sizes ---------------------------------------------------------------------------
@dataclass
class Sizes:
    """Loop sizes and rounds. Short loops in many rounds where the loop is cheap (rows 7,
    8a, 8b, 9, 10): the best round of each side then comes from a quiet moment of a shared
    machine, and the baseline's loop is scaled to last about as long as the measurement's."""

    slices: int      # rounds of the short loops (7, 8a)
    pair: int        # 7: alloc+free pairs per loop (the list baseline does 50x as many)
    point: int       # 8a: points per loop
    handoff_rounds: int
    handoff: int     # 8b: points per task (about half of them switch)
    rep: int         # rounds of the long runs (8c, 10)
    cpu_points: int  # 8c: points per task
    runs_rounds: int
    runs: int        # 9: runs per round (boot=False: 8x as many)
    ops_rounds: int
    ops: int         # 10: rounds per task


QUICK = Sizes(slices=60, pair=300, point=3000, handoff_rounds=20, handoff=500, rep=3, cpu_points=500,
              runs_rounds=10, runs=20, ops_rounds=6, ops=400)
FULL = Sizes(slices=300, pair=300, point=3000, handoff_rounds=60, handoff=1000, rep=7, cpu_points=1500,
             runs_rounds=30, runs=40, ops_rounds=20, ops=1000)


# -- 7: allocator fast paths -------------------------------------------------------
def page_pair(n: int) -> float:
    """Seconds per alloc_pages(GFP_KERNEL, 0) + __free_pages(page, 0); in a task."""
    for _ in range(64):  # warm: the hot list holds pages
        __free_pages(alloc_pages(GFP_KERNEL, 0), 0)
    t0 = time.perf_counter()
    for _ in range(n):
        __free_pages(alloc_pages(GFP_KERNEL, 0), 0)
    return (time.perf_counter() - t0) / n


def rows_7(s: Sizes) -> list[Row]:
    m = Machine(cpus=1, seed=0)
    n = s.pair
    base, km, pg = m.run(lambda: interleaved(
        [lambda: bare_list(50 * n), lambda: kmalloc_pair(n), lambda: page_pair(n)], s.slices))[0]
    assert not m.reports, m.reports
    lst = "list.pop + list.append"
    return [Row("7a", "kmalloc(64, GFP_KERNEL) + kfree, magazine fast path", km, "s", base, lst, ("<=", 25)),
            Row("7b", "alloc_pages(GFP_KERNEL, 0) + __free_pages, pcp list", pg, "s", base, lst, ("<=", 25))]


# -- 8: scheduling points, hand-offs, CPUs -------------------------------------------
def rows_8ab(s: Sizes) -> list[Row]:
    n = s.point
    fast = Machine(cpus=1, boot=False, mean_run=10**9)
    e, p = fast.run(lambda: interleaved([lambda: empty_call(n), lambda: point_loop(n)], s.slices))[0]
    dflt = Machine(cpus=1, boot=False)
    e2, p2 = dflt.run(lambda: interleaved([lambda: empty_call(n), lambda: point_loop(n)], s.slices))[0]
    hn = s.handoff
    fns = [lambda: bare_baton(hn), lambda: bench_handoff(hn)]
    if GREENLET:
        fns.append(lambda: bench_handoff(hn, "greenlet"))
    bare, (ho, _sw), *more = interleaved(fns, s.handoff_rounds)
    call = "empty call f(x)"
    rows = [Row("8a", "scheduling point, no switch (budget fast path)", p, "s", e, call, ("<=", 3)),
            Row("8a'", "average point, default random policy, 1 CPU", p2, "s", e2, call),
            Row("8b", "deterministic hand-off between two CPUs, per switch", ho, "s", bare,
                "bare 2-thread Lock baton", ("<=", 1.5))]
    if more:
        rows.append(Row("8b-g", "the same, engine='greenlet' (opt-in)", more[0][0], "s", bare,
                        "bare 2-thread Lock baton", ("<=", 1.5)))
    return rows


def cpus_run(cpus: int, k: int, engine: str = "thread") -> tuple[float, float]:
    """(seconds per point, seconds per recorded decision) of two tasks per CPU, each
    passing ``k`` scheduling points, default random policy. Machine built outside the timing."""
    m = Machine(cpus=cpus, boot=False, seed=cpus, timeout=None, engine=engine)

    def body() -> None:
        for _ in range(k):
            preempt_point("x")

    tasks = [body] * (2 * cpus)
    t0 = time.perf_counter()
    m.run(*tasks)
    dt = time.perf_counter() - t0
    return dt / (len(tasks) * k), dt / max(1, len(m.trace))


def rows_8c(s: Sizes) -> list[Row]:
    k = s.cpu_points
    # one 1-CPU run is short: its side keeps the best of several runs per round
    fns = [lambda: min(cpus_run(1, k) for _ in range(8)), lambda: cpus_run(64, k)]
    if GREENLET:
        fns += [lambda: min(cpus_run(1, k, "greenlet") for _ in range(8)), lambda: cpus_run(64, k, "greenlet")]
    one, many, *more = interleaved(fns, s.rep)
    rows = [Row("8c", "per-op wall time, 64 CPUs (2 tasks/CPU, random)", many[0], "s", one[0],
                "same at 1 CPU", ("<=", 1.2)),
            Row("8c'", "wall time per baton move (trace entry), 64 CPUs", many[1], "s", one[1], "same at 1 CPU")]
    if more:
        rows += [Row("8c-g", "per-op wall time, 64 CPUs, engine='greenlet'", more[1][0], "s", more[0][0],
                     "same at 1 CPU", ("<=", 1.2)),
                 Row("8c'-g", "wall time per baton move, 64 CPUs, engine='greenlet'", more[1][1], "s",
                     more[0][1], "same at 1 CPU")]
    return rows


# -- 9: runs per second -------------------------------------------------------------
def runs_per_run(n: int, boot: bool) -> float:
    """Seconds per run of the two-task, ten-step spin_lock scenario (see _measure)."""
    return spin_lock_runs(n, boot=boot)


def rows_9(s: Sizes) -> list[Row]:
    n = s.runs
    booted, bare = interleaved([lambda: runs_per_run(n, True), lambda: runs_per_run(8 * n, False)],
                               s.runs_rounds)
    return [Row("9", "runs/s, 2 tasks x 10 spin_lock steps, fresh Machine(cpus=2), 64M", 1 / booted, "/s",
                target=(">=", 1000)),
            Row("9'", "the same, Machine(cpus=2, boot=False)", 1 / bare, "/s")]


# -- 10: deterministic policies against the free one ---------------------------------
DETERMINISTIC = ("random", "pct", "virtual")
CPUS_10 = 4


def ops_run(policy: str, k: int, engine: str = "thread") -> float:
    """Wall seconds per simulated operation of the policy workload (see the module doc)."""
    m = Machine(cpus=CPUS_10, policy=policy, seed=1, timeout=None, engine=engine)
    lock = spin_lock_init()

    def body() -> None:
        for _ in range(k):
            p = kmalloc(64, GFP_KERNEL)
            spin_lock(lock)
            spin_unlock(lock)
            kfree(p)

    t0 = time.perf_counter()
    m.run(*[body] * CPUS_10)
    dt = time.perf_counter() - t0
    assert not m.reports, [r.text for r in m.reports]
    return dt / (CPUS_10 * k)


def rows_10(s: Sizes) -> list[Row]:
    k = s.ops
    runs: list[tuple[str, str]] = [("free", "thread"), *((p, "thread") for p in DETERMINISTIC)]
    if GREENLET:
        runs += [(p, "greenlet") for p in DETERMINISTIC]
    res = interleaved([lambda p=p, e=e: ops_run(p, k, e) for p, e in runs], s.ops_rounds)
    free = 1 / res[0]
    return [Row("10" if e == "thread" else "10-g",
                f"simulated ops per wall second, policy {p!r}" + ("" if e == "thread" else ", engine='greenlet'"),
                1 / t, "/s", free, "policy 'free'", (">=", 1 / 3)) for (p, e), t in zip(runs[1:], res[1:])]


# -- 11: the greenlet engine against the thread engine --------------------------------
def rows_11(s: Sizes) -> list[Row]:
    if not GREENLET:
        return []
    n = s.runs
    light = [lambda e=e: spin_lock_runs(8 * n, boot=False, engine=e) for e in ("thread", "greenlet")]
    heavy = [lambda e=e: spin_lock_runs(n, boot=False, engine=e, steps=SWITCHY_STEPS, mean_run=1)
             for e in ("thread", "greenlet")]
    th, gl, th_h, gl_h = interleaved(light + heavy, s.runs_rounds)
    return [Row("11", f"runs/s, 2 tasks x {SWITCHY_STEPS} spin_lock steps, mean_run=1 (switch-heavy), "
                      "engine='greenlet'", 1 / gl_h, "/s", 1 / th_h, "engine='thread'", (">=", 3)),
            Row("11'", "runs/s, 2 tasks x 10 spin_lock steps, boot=False, engine='greenlet'", 1 / gl, "/s",
                1 / th, "engine='thread'")]


#: the switch-heavy scenario of row 11: steps per task, a decision at every point
SWITCHY_STEPS = 100
GREENLET = greenlet_available()

SECTIONS: tuple[Callable[[Sizes], list[Row]], ...] = (rows_7, rows_8ab, rows_8c, rows_9, rows_10, rows_11)


# -- output --------------------------------------------------------------------------
def fmt_amount(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v * 1e9:,.0f} ns"
    return f"{v:,.0f}/s"


def fmt_target(t: tuple[str, float] | None, has_baseline: bool) -> str:
    if t is None:
        return "-"
    op, bound = t
    b = "1/3" if abs(bound - 1 / 3) < 1e-9 else f"{bound:g}"
    b = f"{b}x" if has_baseline else f"{bound:,.0f}/s"
    return f"{'<=' if op == '<=' else '>='} {b}"


def fmt_met(r: Row) -> str:
    if r.met is None:
        return "info"
    if r.met:
        return "met"
    op, bound = r.target  # type: ignore[misc]
    x = r.ratio if r.ratio is not None else r.value
    return f"missed ({x / bound:.2f}x the bound)" if op == "<=" else f"missed ({x / bound:.2f} of it)"


def cells(r: Row) -> list[str]:
    return [r.key, r.name, fmt_amount(r.value, r.unit),
            "-" if r.baseline is None else f"{fmt_amount(r.baseline, r.unit)} ({r.baseline_name})",
            "-" if r.ratio is None else f"{r.ratio:.2f}x", fmt_target(r.target, r.baseline is not None),
            fmt_met(r)]


HEADER = ["#", "measurement", "value", "baseline", "ratio", "target", "result"]


def print_table(rows: list[Row], title: str) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        table = [HEADER] + [cells(r) for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
        right = {2, 4}
        print(title)
        for j, line in enumerate(table):
            print("  ".join(c.rjust(w) if i in right else c.ljust(w)
                            for i, (c, w) in enumerate(zip(line, widths))).rstrip())
            if j == 0:
                print("  ".join("-" * w for w in widths))
        return
    from rich.markup import escape
    t = Table(title=escape(title))
    for i, h in enumerate(HEADER):
        t.add_column(h, justify="right" if i in (2, 4) else "left", no_wrap=i < 6)
    for r in rows:
        c = [escape(x) for x in cells(r)]
        style = {True: "green", False: "red"}.get(r.met, "dim")  # type: ignore[arg-type]
        c[-1] = f"[{style}]{c[-1]}[/{style}]"
        t.add_row(*c)
    # a pipe or a file gets the whole table, not one wrapped to 80 columns
    Console(width=None if sys.stdout.isatty() else 200).print(t)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    unknown = [a for a in args if a not in ("--quick", "--json")]
    if unknown:
        print(f"usage: python -m benchmarks [--quick] [--json]; unknown: {' '.join(unknown)}", file=sys.stderr)
        return 2
    sizes = QUICK if "--quick" in args else FULL
    t0 = time.perf_counter()
    rows: list[Row] = []
    for section in SECTIONS:
        rows.extend(section(sizes))
    elapsed = time.perf_counter() - t0
    info = machine_info()
    if "--json" in args:
        print(json.dumps({"machine": info, "quick": sizes is QUICK, "seconds": round(elapsed, 1),
                          "rows": [r.as_dict() for r in rows]}, indent=2))
        return 0
    title = (f"percpu_kmem speed targets ({'--quick' if sizes is QUICK else 'full'} run, "
             f"{elapsed:.1f} s) - {info['date']}; {info['cores']} cores, "
             f"{info['cpu']}, {info['python']}")
    print_table(rows, title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
