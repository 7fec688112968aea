"""Virtual time across the runs of one machine."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import jiffies, msleep, schedule, time_before

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("policy", ["random", "pct", "virtual", "free"])
def test_a_later_run_goes_on_from_the_time_the_machine_reached(policy: str) -> None:
    """A sleep at the start of a second run is timed from where the first run left the
    clock, not from 0 (which would end it at once, letting no time pass)."""
    m = Machine(cpus=2, policy=policy, seed=0)
    m.run(lambda: msleep(10_000))
    j0 = m.run(jiffies)[0]
    assert j0 >= 10_000

    def sleep_and_read() -> int:
        msleep(3)
        return jiffies()
    assert m.run(sleep_and_read)[0] >= j0 + 3


@pytest.mark.parametrize("policy", ["random", "pct", "virtual", "free"])
def test_a_schedule_loop_polling_jiffies_lets_time_pass(policy: str) -> None:
    """LDD3's jitsched: "while (time_before(jiffies, j1)) schedule();" ends, as jitbusy's
    cpu_relax() loop does (the timer tick moves jiffies while the task yields)."""
    m = Machine(cpus=2, policy=policy, seed=1, timeout=30)

    def jitsched() -> int:
        j0 = jiffies()
        j1 = j0 + 20
        while time_before(jiffies(), j1):
            schedule()
        return jiffies() - j0

    assert m.run(jitsched)[0] >= 20
    assert not m.reports


def test_a_schedule_loop_waiting_for_nothing_is_a_livelock() -> None:
    """A schedule() loop for a flag nobody sets is a busy-wait that never ends: reported."""
    m = Machine(cpus=2, policy="random", seed=0, timeout=30)
    flag: list[int] = []

    def waiter() -> None:
        while not flag:
            schedule()

    m.run(waiter)
    assert [r.kind for r in m.reports] == ["livelock"]
