"""do_exit()'s notes for a task that returns in atomic context, and the scheduling point
prepare_to_wait() has where the kernel takes the wait queue's lock (so a lost wake-up shows)."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import (
    TASK_UNINTERRUPTIBLE,
    finish_wait,
    get_cpu,
    init_waitqueue_head,
    local_irq_disable,
    msleep,
    prepare_to_wait,
    put_cpu,
    schedule,
    wake_up,
)

pytestmark = pytest.mark.timeout(60)


def test_a_task_that_exits_with_preemption_disabled_gets_do_exits_note() -> None:
    m = Machine(cpus=2, seed=1)

    def leaky() -> None:
        get_cpu()  # no put_cpu()

    m.run(leaky)
    (rep,) = m.reports_of("exit_atomic")
    assert rep.text.splitlines()[0] == f"note: leaky[{rep.pid}] exited with preempt_count 1"
    assert rep.extra == {"preempt_count": 1, "irqs_disabled": False}
    m.run(lambda: msleep(1))  # the count was reset, as do_exit() does: the next task may sleep
    assert [r.kind for r in m.reports] == ["exit_atomic"]
    m.check()


def test_a_task_that_exits_with_irqs_disabled_gets_the_irqs_note() -> None:
    m = Machine(cpus=1, seed=1)

    def irqs_off() -> None:
        local_irq_disable()

    m.run(irqs_off)
    (rep,) = m.reports_of("exit_atomic")
    assert rep.text.splitlines()[0] == f"note: irqs_off[{rep.pid}] exited with irqs disabled"


@pytest.mark.parametrize("seed", range(3))
def test_a_balanced_task_exits_without_a_note(seed: int) -> None:
    m = Machine(cpus=2, seed=seed)

    def balanced() -> None:
        get_cpu()
        put_cpu()

    m.run(balanced, balanced)
    assert m.reports == []


def _reader_writer(m: Machine, queue_first: bool) -> None:
    wq = init_waitqueue_head()
    ready = [0]

    def reader() -> None:
        if queue_first:
            while True:
                prepare_to_wait(wq, TASK_UNINTERRUPTIBLE)
                if ready[0]:
                    break
                schedule()
            finish_wait(wq)
            return
        while not ready[0]:
            prepare_to_wait(wq, TASK_UNINTERRUPTIBLE)  # after the test: a wake-up can pass
            schedule()
            finish_wait(wq)

    def writer() -> None:
        ready[0] = 1
        wake_up(wq)

    m.run(reader, writer)


def test_a_wake_up_between_the_test_and_prepare_to_wait_is_lost_under_some_seed() -> None:
    stuck = []
    for seed in range(40):
        m = Machine(cpus=2, policy="random", seed=seed, preempt_prob=0.5, mean_run=1)
        _reader_writer(m, queue_first=False)
        if m.reports_of("deadlock"):
            stuck.append(seed)
    assert stuck, "prepare_to_wait() gave no scheduling point before queueing the task"


@pytest.mark.parametrize("policy", ["random", "pct"])
def test_the_prepare_to_wait_idiom_never_loses_the_wake_up(policy: str) -> None:
    for seed in range(20):
        m = Machine(cpus=2, policy=policy, seed=seed)
        _reader_writer(m, queue_first=True)
        assert m.reports == [], (policy, seed)
