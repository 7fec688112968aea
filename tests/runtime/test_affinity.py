"""runtime/affinity.py: the task threads of a deterministic run share one core; the free
policy's run where the host puts them; turning it off; the same runs either way."""

from __future__ import annotations

import os
from typing import Any

import pytest

from percpu_kmem import Machine, preempt_point
from percpu_kmem.runtime import affinity

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                       reason="needs sched_setaffinity and a process allowed on two cores or more"),
]


@pytest.fixture
def pinning():  # type: ignore[no-untyped-def]
    """Pinning on for the test (the default), restored after it."""
    affinity.set_pinning(True)
    yield
    affinity.set_pinning(os.environ.get("PERCPU_KMEM_PIN", "1") != "0")


def _where(m: Machine, n: int = 3) -> list[frozenset[int]]:
    def body() -> frozenset[int]:
        preempt_point()
        return frozenset(os.sched_getaffinity(0))
    return m.run(*[body] * n)


@pytest.mark.parametrize("policy", ["random", "pct", "virtual"])
def test_a_deterministic_runs_threads_are_on_one_core(pinning: None, policy: str) -> None:
    core = affinity.pinned_core()
    assert core is not None and core in os.sched_getaffinity(0)
    assert _where(Machine(cpus=2, policy=policy, boot=False)) == [frozenset({core})] * 3


def test_the_free_policys_threads_get_their_affinity_back(pinning: None) -> None:
    mine = frozenset(os.sched_getaffinity(0))
    _where(Machine(cpus=2, boot=False), n=8)  # pool threads pinned by a deterministic run ...
    assert _where(Machine(cpus=2, policy="free", boot=False), n=8) == [mine] * 8  # ... and given back


def test_the_callers_thread_is_never_moved(pinning: None) -> None:
    before = os.sched_getaffinity(0)
    _where(Machine(cpus=2, boot=False))
    assert os.sched_getaffinity(0) == before


def test_off_runs_where_the_host_puts_them_and_the_runs_are_the_same(pinning: None) -> None:
    def run() -> tuple[list[object], list[object]]:
        m = Machine(cpus=2, policy="random", seed=5, boot=False, mean_run=1)
        res = m.run(*[lambda: [preempt_point() for _ in range(30)] and 1] * 3)
        return res, list(m.trace)
    pinned = run()
    affinity.set_pinning(False)
    assert affinity.pinned_core() is None
    assert run() == pinned
    # the pool threads a pinned run left run where the host puts them again
    mine = frozenset(os.sched_getaffinity(0))
    assert _where(Machine(cpus=2, boot=False), n=8) == [mine] * 8


def test_set_pinning_takes_a_bool() -> None:
    from percpu_kmem import KmemUsageError
    with pytest.raises(KmemUsageError, match=r"set_pinning\(on=1\) takes True or False"):
        affinity.set_pinning(1)  # type: ignore[arg-type]


def _child_core(q: Any) -> None:
    m = Machine(cpus=2, boot=False)
    q.put((os.getpid(), _where(m, n=2)))


def test_a_forked_child_chooses_its_own_core(pinning: None) -> None:
    """A child made by fork after the parent chose a core chooses again by its own pid,
    so forked workers spread over the cores as spawned ones do."""
    import multiprocessing
    _where(Machine(cpus=2, boot=False))  # the parent has chosen
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_core, args=(q,))
    p.start()
    pid, where = q.get(timeout=30)
    p.join(30)
    allowed = sorted(os.sched_getaffinity(0))
    assert where == [frozenset({allowed[pid % len(allowed)]})] * 2
