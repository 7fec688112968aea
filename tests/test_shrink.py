"""Shrinking a failing schedule keeps the failure and never grows the schedule."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import (
    get_cpu,
    might_sleep,
    preempt_point,
    put_cpu,
    raw_smp_processor_id,
    spin_lock,
    spin_lock_init,
    spin_unlock,
)
from percpu_kmem.shrink import shrink

pytestmark = pytest.mark.timeout(120)


def lost_update(m: Machine) -> None:
    """Four tasks on two CPUs: a per-CPU counter read and written without get_cpu()."""
    counters = [0] * m.nr_cpus

    def worker() -> None:
        for _ in range(8):
            cpu = raw_smp_processor_id()
            value = counters[cpu]
            preempt_point("percpu_read")
            counters[cpu] = value + 1  # the CPU it read on: another task may have used it meanwhile
            preempt_point("percpu_write")

    m.run(worker, worker, worker, worker)
    assert sum(counters) == 32, f"lost {32 - sum(counters)} updates"


def sleeps_under_lock(m: Machine) -> None:
    lock = spin_lock_init("L")

    def worker(i: int) -> None:
        for k in range(6):
            spin_lock(lock)
            preempt_point()
            spin_unlock(lock)
            if i == 1 and k == 4:
                get_cpu()
                might_sleep()  # the bug, needing no preemption at all
                put_cpu()

    m.run(lambda: worker(0), lambda: worker(1))


def _first_failing(scenario, policy: str, least: int) -> Machine:  # type: ignore[no-untyped-def]
    """The first seed whose run fails with at least ``least`` preemptions in its schedule."""
    for seed in range(300):
        m = Machine(cpus=2, policy=policy, seed=seed)
        try:
            scenario(m)
        except AssertionError:
            pass
        else:
            if not m.reports:
                continue
        if m.last_trace is not None and m.last_trace.preemptions >= least:
            return m
    pytest.fail(f"no failing seed with {least} preemptions or more")


@pytest.mark.parametrize("policy", ["random", "pct"])
def test_a_lost_update_shrinks_to_fewer_preemptions_and_still_fails(policy: str) -> None:
    failed = _first_failing(lost_update, policy, 3 if policy == "random" else 1)
    res = shrink(lost_update, failed)
    assert res.failure == ("exception", "AssertionError")
    assert res.preemptions <= failed.last_trace.preemptions  # type: ignore[union-attr]
    if policy == "random":  # a random walk's schedule carries preemptions the bug does not need
        assert res.preemptions < failed.last_trace.preemptions  # type: ignore[union-attr]
    again = Machine(cpus=2, policy=policy, seed=res.trace.seed, replay=res.trace)
    with pytest.raises(AssertionError, match="lost"):
        lost_update(again)
    assert again.diverged is None


def test_a_bug_that_needs_no_preemption_shrinks_to_none() -> None:
    failed = _first_failing(sleeps_under_lock, "random", 2)
    res = shrink(sleeps_under_lock, failed)
    assert res.failure == ("report", "sleep_in_atomic")
    assert res.preemptions == 0
    assert "replay with Machine(" in res.hint and "shrunk report 'sleep_in_atomic'" in str(res)


def test_shrinking_refuses_what_it_cannot_shrink() -> None:
    m = Machine(cpus=1, boot=False)
    with pytest.raises(KmemUsageError, match="has not run"):
        shrink(lambda mm: None, m)
    m.run(lambda: None)
    with pytest.raises(KmemUsageError, match="does not fail"):
        shrink(lambda mm: mm.run(lambda: None), m)
    free = Machine(cpus=1, policy="free", boot=False)
    free.run(lambda: None)
    with pytest.raises(KmemUsageError, match="free-running"):
        shrink(lambda mm: None, free)


def test_explore_offers_the_shrunk_schedule_of_a_failure() -> None:
    from percpu_kmem.testing import explore
    with pytest.raises(AssertionError, match="lost") as info:
        explore(lost_update, seeds=range(40), policies="random", cpus=2, shrink=True)
    notes = "\n".join(info.value.__notes__)
    assert "explore: failed under policy='random'" in notes
    assert "explore: shrunk to" in notes and notes.count("replay with Machine(") == 2


def test_the_default_campaign_rotates_policies_and_sizes_pct_to_the_scenario() -> None:
    from percpu_kmem.testing import CAMPAIGN, explore
    seen: list[tuple[str, dict[str, object]]] = []

    def scenario(m: Machine) -> None:
        seen.append((m.policy_name, dict(m.policy_options)))
        lock = spin_lock_init("L")

        def worker() -> None:
            for _ in range(10):
                spin_lock(lock)
                preempt_point()
                spin_unlock(lock)

        m.run(worker, worker)

    assert explore(scenario, seeds=range(2 * len(CAMPAIGN)), policies=None, cpus=2) == 2 * len(CAMPAIGN)
    assert {p for p, _ in seen} == {"random", "pct", "virtual"}
    pct_runs = [opts for p, opts in seen if p == "pct"]
    from percpu_kmem.testing import PCT_PROBE
    assert pct_runs[0] == PCT_PROBE  # the probe run that sizes PCT to the scenario
    steps = {o["steps"] for o in pct_runs[1:]}
    assert len(steps) == 1 and 10 <= steps.pop() < 1000  # sized to the run, the same for every PCT run
    assert {o["depth"] for o in pct_runs[1:]} == {2, 3}


def test_a_failing_run_is_remembered_and_rerun_first_next_time(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from percpu_kmem.testing import explore, forget_failures
    monkeypatch.setenv("PERCPU_KMEM_DIR", str(tmp_path))
    runs: list[int] = []

    def flaky(m: Machine) -> None:
        runs.append(m.seed)
        lost_update(m)

    with pytest.raises(AssertionError):
        explore(flaky, seeds=range(60), policies="random", cpus=2, shrink=False)
    failing = runs[-1]
    assert (tmp_path / "failures.json").exists()
    runs.clear()
    with pytest.raises(AssertionError):
        explore(flaky, seeds=range(1000, 1010), policies="random", cpus=2, shrink=False)
    assert runs[0] == failing  # the remembered failure ran first, before the new seeds
    forget_failures(flaky)
    runs.clear()
    explore(lambda m: runs.append(m.seed) or m.run(lambda: None), seeds=range(3), policies="random", cpus=2)
    assert runs == [0, 1, 2]
