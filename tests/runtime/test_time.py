"""Virtual time across the runs of one machine."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import jiffies, msleep

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
