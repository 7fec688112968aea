"""percpu_kmem.strategies: Hypothesis draws the schedule, shrinks it and replays it from its database."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.runtime.trace import Trace
from percpu_kmem.strategies import Schedule, hypothesis_schedule, schedules
from tests.test_exhaustive import _init, counter

pytestmark = pytest.mark.timeout(120)


def _switches(trace: Trace) -> int:
    """Choices away from a task that could go on (the two-task counter never blocks: every
    switch that is not at a task's start or exit, nor kswapd's, is one)."""
    daemons = {pid for pid, comm in trace.comms.items() if comm.startswith("kswapd")}
    return sum(1 for d in trace.decisions if d.action in "SPID" and d.event not in ("start", "exit")
               and d.pid not in daemons and not (d.action in "SD" and d.arg in daemons))


def test_a_hypothesis_driven_test_of_the_buggy_counter_fails_shrinks_and_replays_from_the_database(
        tmp_path: Path) -> None:
    db = DirectoryBasedExampleDatabase(str(tmp_path / "examples"))
    tried: list[tuple[Schedule, Trace | None, bool]] = []

    @settings(database=db, max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(schedule=schedules())
    def prop(schedule: Schedule) -> None:
        m = schedule.machine(cpus=2, init=[_init], daemons=False)  # kswapd takes no part
        try:
            counter(False)(m)
        except AssertionError:
            tried.append((schedule, m.last_trace, True))
            raise
        tried.append((schedule, m.last_trace, False))

    with pytest.raises(AssertionError, match="lost update"):
        prop()
    shrunk, trace, failed = tried[-1]  # Hypothesis reruns the shrunk example last
    assert failed and trace is not None
    assert shrunk.preemptions == 1 == _switches(trace)
    assert len(shrunk.picks) <= 5, shrunk

    # a typical random run that shows the bug takes more switches than the shrunk schedule
    random_switches = []
    for seed in range(60):
        m = Machine(cpus=2, policy="random", seed=seed, init=[_init])
        try:
            counter(False)(m)
        except AssertionError:
            assert m.last_trace is not None
            random_switches.append(_switches(m.last_trace))
    assert random_switches
    assert shrunk.preemptions <= statistics.median(random_switches)

    # the database replays the failure first
    tried.clear()
    with pytest.raises(AssertionError, match="lost update"):
        prop()
    assert tried[0][2] and tried[0][0].picks == shrunk.picks


def test_a_workload_drawn_beside_the_schedule_and_st_data_helper() -> None:
    @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data(), n=st.integers(1, 3))
    def prop(data: st.DataObject, n: int) -> None:
        schedule = hypothesis_schedule(data)
        m = schedule.machine(cpus=2, boot=False)
        out: list[int] = []
        m.run(*[lambda: out.append(1)] * n)
        assert len(out) == n
        assert len(schedule.choices) >= 1 and schedule.preemptions >= 0

    prop()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(KmemUsageError):
        Schedule([1, -1])
    with pytest.raises(KmemUsageError):
        schedules(0)
    with pytest.raises(KmemUsageError, match="no seed="):
        Schedule([]).machine(seed=3)
    with pytest.raises(KmemUsageError, match="st.data"):
        hypothesis_schedule(object())


def test_import_percpu_kmem_does_not_import_hypothesis() -> None:
    code = "import sys, percpu_kmem, percpu_kmem.testing, percpu_kmem.exhaustive; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
