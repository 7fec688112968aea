"""Runtime benchmarks: ratios against bare Python measured in the same run.

    python -m benchmarks.bench_runtime [--quick]

1. a scheduling point that does not switch, against an empty function call
   (a) on the budget fast path, (b) averaged with the default random policy on 1 CPU;
2. a deterministic handoff between two CPUs, against a bare two-thread baton
   (threading.Lock release/acquire ping-pong);
3. runs per second of a two-task, ten-step scenario, a new Machine per seed.
"""

from __future__ import annotations

import sys
import time

from benchmarks._measure import bare_baton, empty_call, interleaved, spin_lock_runs
from percpu_kmem import Machine, preempt_point
from percpu_kmem.runtime.greenlet_engine import greenlet_available

__all__ = ["point_loop", "bench_point", "bench_handoff", "bench_bare_baton", "bench_runs", "main"]

#: the bare two-thread Lock baton (benchmarks/_measure.py)
bench_bare_baton = bare_baton


def point_loop(n: int) -> float:
    """Seconds per ``preempt_point("x")``, in a loop of ``n``; in a task."""
    t0 = time.perf_counter()
    for _ in range(n):
        preempt_point("x")
    return (time.perf_counter() - t0) / n


def bench_point(n: int, rep: int = 1, **kw: object) -> tuple[float, float]:
    """(empty call, scheduling point), interleaved in one task of a bare 1-CPU machine
    (``kw``: the random policy's options)."""
    m = Machine(cpus=1, boot=False, **kw)  # type: ignore[arg-type]
    e, p = m.run(lambda: interleaved([lambda: empty_call(n), lambda: point_loop(n)], rep))[0]
    return e, p


def bench_handoff(n: int, engine: str = "thread") -> tuple[float, int]:
    """(seconds per switch, switches) of two tasks passing ``n`` points each on 2 CPUs, the
    random policy deciding at every point."""
    m = Machine(cpus=2, boot=False, mean_run=1, preempt_prob=0.0, engine=engine)

    def body() -> None:
        for _ in range(n):
            preempt_point("x")

    t0 = time.perf_counter()
    m.run(body, body)
    dt = time.perf_counter() - t0
    switches = sum(1 for d in m.trace if d.action == "S")
    return dt / max(1, switches), switches


def bench_runs(n: int, policy: str, engine: str = "thread") -> float:
    return 1 / spin_lock_runs(n, boot=False, policy=policy, engine=engine)


def main() -> None:
    quick = "--quick" in sys.argv
    n = 20000 if quick else 200000
    rep = 3 if quick else 5
    e, fast = bench_point(n, rep, mean_run=10**9)
    e2, avg = bench_point(n, rep)
    print(f"{'scheduling point':52} {'ns':>8} {'x empty call':>13}")
    print(f"{'empty function call (baseline)':52} {e * 1e9:8.0f} {1.0:13.2f}")
    print(f"{'point, budget fast path (no decision)':52} {fast * 1e9:8.0f} {fast / e:13.2f}")
    print(f"{'point, default random policy, 1 CPU':52} {avg * 1e9:8.0f} {avg / e2:13.2f}")
    hn = 2000 if quick else 20000
    bare, (ho, _sw) = interleaved([lambda: bare_baton(hn), lambda: bench_handoff(hn)], rep)
    print(f"\n{'handoff between two CPUs':52} {'ns':>8} {'x bare baton':>13}")
    print(f"{'bare two-thread Lock baton (baseline)':52} {bare * 1e9:8.0f} {1.0:13.2f}")
    print(f"{'deterministic handoff (random policy, every point)':52} {ho * 1e9:8.0f} {ho / bare:13.2f}")
    rn = 200 if quick else 2000
    print(f"\n{'two tasks x ten steps, new Machine per seed':52} {'runs/s':>8}")
    engines = ("thread", "greenlet") if greenlet_available() else ("thread",)
    for policy in ("random", "pct", "virtual"):
        for engine in engines:
            print(f"{policy + ', engine ' + engine:52} {bench_runs(rn, policy, engine):8.0f}")


if __name__ == "__main__":
    main()
