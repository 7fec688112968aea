"""The scalability study's own cost: a 1-64 CPU sweep of one workload over four configurations.

    python -m benchmarks.bench_study [--quick] [--docs]

Runs ``percpu_kmem.study.run_study("threadtest", cpus=[1, 2, 4, 8, 16, 32, 64],
configs=["default", "no-percpu", "mag-7", "mag-127"], ops=200)`` (each point warmed up with
200 operations per CPU, unmeasured, then 200 measured) and prints the study's table, the
wall time of the whole sweep, the simulated operations (warm-up included) and the wall
time per simulated operation. ``--quick`` sweeps 1-16 CPUs with 100 operations.

``--docs`` also regenerates the figures of docs/scalability.md (docs/img/study-*.png, with
matplotlib: the ``plot`` extra) and prints their tables: the sweep above, magazine pairs
with the lock-only slab (queued and ticket lock), page churn with and without pcp lists,
producer/consumer remote frees against local frees, and the magazine-size ladder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from percpu_kmem.study import StudyConfig, StudyResult, run_study

CPUS = [1, 2, 4, 8, 16, 32, 64]
CONFIGS = ["default", "no-percpu", "mag-7", "mag-127"]
IMG = Path(__file__).resolve().parent.parent / "docs" / "img"


def _progress(done: int, total: int) -> None:
    print(f"\r  {done}/{total} points", end="" if done < total else "\n", file=sys.stderr, flush=True)


def sweep(cpus: list[int], ops: int) -> tuple[StudyResult, float]:
    t0 = time.perf_counter()
    res = run_study("threadtest", cpus=cpus, configs=CONFIGS, ops=ops, progress=_progress)
    return res, time.perf_counter() - t0


def docs_figures(cpus: list[int]) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    studies = [
        ("study-magazine-pairs", "magazine-pairs", {}, ["default", "no-magazines",
         StudyConfig("no-magazines-ticket", magazine=0, lock="ticket")], 200),
        ("study-page-churn", "page-churn", {"depth": 64},
         [StudyConfig("pcp-16/96", pcp_batch=16, pcp_high=96), StudyConfig("pcp-8/48", pcp_batch=8, pcp_high=48),
          StudyConfig("pcp-4/24", pcp_batch=4, pcp_high=24), "no-pcp"], 256),
        ("study-producer-consumer", "producer-consumer", {}, ["default", "no-depot", "no-magazines"], 256),
        ("study-magazine-ladder", "threadtest", {"batch": 100},
         ["mag-1", "mag-7", "mag-15", "mag-31", "mag-63", "mag-127"], 400),
    ]
    for fname, wl, params, configs, ops in studies:
        res = run_study(wl, cpus=cpus, configs=configs, ops=ops, params=params, progress=_progress)
        print(res.table())
        res.plot(IMG / f"{fname}.png")
    local = run_study("producer-consumer", cpus=cpus, configs=["default"], ops=256, params={"local": 1})
    print("producer-consumer, local frees (control):")
    print(local.table())


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    cpus = CPUS[:5] if quick else CPUS
    ops = 100 if quick else 200
    res, wall = sweep(cpus, ops)
    print(res.table())
    simulated = sum(2 * r["ops"] for r in res.rows)  # the warm-up does as many operations
    print(f"sweep: {len(res.rows)} points, CPUs {cpus[0]}-{cpus[-1]}, {len(CONFIGS)} configurations; "
          f"wall {wall:.1f} s; {simulated} simulated operations; "
          f"{wall / simulated * 1e6:.1f} us of wall time per simulated operation")
    if "--docs" in argv:
        IMG.mkdir(parents=True, exist_ok=True)
        res.plot(IMG / "study-threadtest.png")
        docs_figures(cpus)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
