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
import threading
import time

from percpu_kmem import Machine, preempt_point, spin_lock, spin_lock_init, spin_unlock


def empty(ev: str) -> None:
    pass


def bench_empty(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        empty("x")
    return (time.perf_counter() - t0) / n


def bench_point(n: int, **kw: object) -> float:
    def body() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            preempt_point("x")
        return (time.perf_counter() - t0) / n
    return Machine(cpus=1, boot=False, **kw).run(body)[0]  # type: ignore[arg-type, no-any-return]


def bench_handoff(n: int) -> tuple[float, int]:
    m = Machine(cpus=2, boot=False, mean_run=1, preempt_prob=0.0)

    def body() -> None:
        for _ in range(n):
            preempt_point("x")

    t0 = time.perf_counter()
    m.run(body, body)
    dt = time.perf_counter() - t0
    switches = sum(1 for d in m.trace if d.action == "S")
    return dt / max(1, switches), switches


def bench_bare_baton(n: int) -> float:
    a, b = threading.Lock(), threading.Lock()
    a.acquire()
    b.acquire()

    def other() -> None:
        for _ in range(n):
            b.acquire()
            a.release()

    th = threading.Thread(target=other)
    th.start()
    t0 = time.perf_counter()
    for _ in range(n):
        b.release()
        a.acquire()
    dt = time.perf_counter() - t0
    th.join()
    return dt / (2 * n)


def bench_runs(n: int, policy: str) -> float:
    lock = spin_lock_init()

    def body() -> None:
        for _ in range(10):
            spin_lock(lock)
            spin_unlock(lock)

    t0 = time.perf_counter()
    for seed in range(n):
        Machine(cpus=2, policy=policy, seed=seed, boot=False).run(body, body)
    return n / (time.perf_counter() - t0)


def main() -> None:
    quick = "--quick" in sys.argv
    n = 20000 if quick else 200000
    rep = 3 if quick else 5
    e = min(bench_empty(n) for _ in range(rep))
    fast = min(bench_point(n, mean_run=10**9) for _ in range(rep))
    avg = min(bench_point(n) for _ in range(rep))
    print(f"{'scheduling point':52} {'ns':>8} {'x empty call':>13}")
    print(f"{'empty function call (baseline)':52} {e * 1e9:8.0f} {1.0:13.2f}")
    print(f"{'point, budget fast path (no decision)':52} {fast * 1e9:8.0f} {fast / e:13.2f}")
    print(f"{'point, default random policy, 1 CPU':52} {avg * 1e9:8.0f} {avg / e:13.2f}")
    hn = 2000 if quick else 20000
    bare = min(bench_bare_baton(hn) for _ in range(rep))
    ho, sw = min(bench_handoff(hn) for _ in range(rep))
    print(f"\n{'handoff between two CPUs':52} {'ns':>8} {'x bare baton':>13}")
    print(f"{'bare two-thread Lock baton (baseline)':52} {bare * 1e9:8.0f} {1.0:13.2f}")
    print(f"{'deterministic handoff (random policy, every point)':52} {ho * 1e9:8.0f} {ho / bare:13.2f}")
    rn = 200 if quick else 2000
    print(f"\n{'two tasks x ten steps, new Machine per seed':52} {'runs/s':>8}")
    for policy in ("random", "pct"):
        print(f"{policy:52} {bench_runs(rn, policy):8.0f}")


if __name__ == "__main__":
    main()
