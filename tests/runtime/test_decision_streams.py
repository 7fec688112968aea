"""Seeds keep their schedules: the engine's speed work must not change a decision.

Saved replays and seed-based tests depend on a seed giving the same trace from one
version to the next. The hashes below are of traces recorded before decisions were
built once per placement (and before the random policy drew its numbers without
randrange's calls): a change to how choices are built or drawn that alters any
decision fails here. A deliberate change of decision streams updates them, and says
so loudly (docs/benchmarks.md, the release notes).

Also here: report sites name simulated code, never the thread pool's frames.
"""

from __future__ import annotations

import hashlib

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import msleep, preempt_point, spin_lock, spin_lock_init, spin_unlock
from percpu_kmem.scenarios import sleep_in_atomic

pytestmark = pytest.mark.timeout(60)

#: (policy, cpus) -> (decisions, sha1 of str(trace))[:16], seed 7, recorded before the speed work
GOLDEN = {
    ("random", 2): (48, "0eca136a1a26a3bc"),
    ("random", 8): (51, "d6d647e11be9955e"),
    ("pct", 2): (20, "50339c8bebedd688"),
    ("pct", 8): (23, "d8a6c591d0d2a68b"),
    ("virtual", 2): (171, "965279faf3be79c7"),
    ("virtual", 8): (191, "460d24067cb42eab"),
}


def _workload(m: Machine) -> None:
    """Five tasks contend for a spinlock, with points inside and sleeps between."""
    lock = spin_lock_init("golden")

    def body() -> None:
        for i in range(12):
            spin_lock(lock)
            preempt_point("inside")
            spin_unlock(lock)
            if i % 5 == 4:
                msleep(1)

    m.run(body, body, body, body, body)


@pytest.mark.parametrize(("policy", "cpus"), sorted(GOLDEN))
def test_a_seed_gives_the_trace_it_always_gave(policy: str, cpus: int) -> None:
    m = Machine(cpus=cpus, policy=policy, seed=7, boot=False)
    _workload(m)
    got = (len(m.trace), hashlib.sha1(str(m.trace).encode()).hexdigest()[:16])
    assert got == GOLDEN[(policy, cpus)]


def test_a_might_sleep_site_is_simulated_code_not_the_thread_pool() -> None:
    m = Machine(cpus=1, memory="16M", seed=0)
    sleep_in_atomic(m, tasks=1)
    (rep,) = m.reports_of("sleep_in_atomic")
    first = rep.lines[0]
    assert "threading.py" not in first and "threadpool.py" not in first, first
    assert " at percpu_kmem/" in first, first  # the scenario's line (or the allocator's)
