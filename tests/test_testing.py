"""percpu_kmem.testing: explore() and find_seed() fail on kernel reports unless expected."""

from __future__ import annotations

import json
import os

import pytest

import percpu_kmem
from percpu_kmem import (
    BUG,
    WARN_ON,
    KmemUsageError,
    Machine,
    UnexpectedReport,
    explore,
    find_seed,
    might_sleep,
    preempt_disable,
    preempt_enable,
)
from percpu_kmem.testing import DEFAULT_SEEDS, SEEDS_ENV, seeds_from_env

pytestmark = pytest.mark.timeout(60)

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _no_seed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outer session may run with --kmem-seeds: these tests set the variable themselves."""
    monkeypatch.delenv(SEEDS_ENV, raising=False)


def sleeps_in_atomic() -> None:
    preempt_disable()
    might_sleep()
    preempt_enable()


def quiet() -> None:
    pass


def test_an_unrequested_report_fails_the_run_with_its_text_seed_and_replay() -> None:
    seen: list[Machine] = []

    def scenario(m: Machine) -> None:
        seen.append(m)
        m.run(quiet, sleeps_in_atomic)  # passes: the report is only recorded

    with pytest.raises(UnexpectedReport) as ei:
        explore(scenario, seeds=range(5), policies=("random",), cpus=2)
    m = seen[-1]
    assert len(seen) == 1, "the first run already failed"
    rep = m.reports[0]
    assert rep.kind == "sleep_in_atomic"
    msg = str(ei.value)
    assert msg.startswith(rep.text)
    assert msg.splitlines()[0].startswith("BUG: sleeping function called from invalid context")
    assert "policy='random' seed=0" in msg and "(expected kinds: none)" in msg
    assert m.replay_hint() in msg
    assert ei.value.report is rep and ei.value.reports == (rep,)
    assert (ei.value.seed, ei.value.policy) == (0, "random")
    assert isinstance(ei.value, percpu_kmem.KmemError)


def test_an_oops_in_a_task_fails_the_run_although_run_returned() -> None:
    def scenario(m: Machine) -> None:
        m.run(lambda: BUG("bad state"), quiet)

    with pytest.raises(UnexpectedReport, match=r"^kernel BUG at .*test_testing.py:\d+!\nbad state"):
        explore(scenario, seeds=range(2), policies=("pct",), cpus=2)


def test_expected_kinds_pass_and_any_other_kind_still_fails() -> None:
    def scenario(m: Machine) -> None:
        m.run(sleeps_in_atomic, lambda: WARN_ON(True))
        assert m.reports_of("sleep_in_atomic") and m.reports_of("warning")

    assert explore(scenario, seeds=range(3), policies=("random", "pct"), cpus=2,
                   expect=("sleep_in_atomic", "warning")) == 6
    assert explore(scenario, seeds=range(2), policies="virtual", cpus=2,
                   expect=["warning", "sleep_in_atomic"]) == 2
    with pytest.raises(UnexpectedReport) as ei:
        explore(scenario, seeds=range(3), cpus=2, expect="sleep_in_atomic")
    assert ei.value.report.kind == "warning"
    assert "(expected kinds: 'sleep_in_atomic')" in str(ei.value)


def test_the_message_counts_further_unexpected_reports_by_kind() -> None:
    def scenario(m: Machine) -> None:
        m.run(sleeps_in_atomic, lambda: [WARN_ON(True) for _ in range(1)], lambda: BUG())

    with pytest.raises(UnexpectedReport) as ei:
        explore(scenario, seeds=range(1), policies="random", cpus=3)
    assert len(ei.value.reports) == 3
    assert "explore: 2 more unexpected: " in str(ei.value)


def test_a_failing_scenario_keeps_its_own_error_and_names_the_report_in_a_note() -> None:
    def scenario(m: Machine) -> None:
        m.run(sleeps_in_atomic)
        assert False, "the scenario's own verdict"

    with pytest.raises(AssertionError, match="the scenario's own verdict") as ei:
        explore(scenario, seeds=range(3), policies="random")
    notes = "\n".join(ei.value.__notes__)
    assert "explore: failed under policy='random' seed=0" in notes
    assert "explore: the run also recorded an unexpected 'sleep_in_atomic' report:\n" \
           "BUG: sleeping function called from invalid context" in notes


def test_free_policy_failure_says_it_cannot_be_replayed() -> None:
    with pytest.raises(UnexpectedReport, match=r"policy=free \(free-running runs do not replay\)"):
        explore(lambda m: m.run(sleeps_in_atomic), seeds=range(2), policies="free", cpus=2)


def test_default_seed_range_honours_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[tuple[str, int]] = []

    def scenario(m: Machine) -> None:
        ran.append((m.policy_name, m.seed))
        m.run(quiet)

    assert explore(scenario, policies="random") == DEFAULT_SEEDS
    assert ran == [("random", s) for s in range(DEFAULT_SEEDS)]
    ran.clear()
    monkeypatch.setenv(SEEDS_ENV, "3")
    assert explore(scenario) == 6
    # ("pct", 0) twice: the probe run that sizes PCT to the scenario, then seed 0's run
    assert ran == [("random", 0), ("random", 1), ("random", 2), ("pct", 0), ("pct", 0), ("pct", 1), ("pct", 2)]
    ran.clear()
    assert explore(scenario, seeds=[7], policies="random") == 1  # explicit seeds are kept
    assert ran == [("random", 7)]


@pytest.mark.parametrize("value", ["0", "-2", "many"])
def test_a_bad_seed_count_in_the_environment_is_refused_before_any_run(
        monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SEEDS_ENV, value)
    ran: list[int] = []
    with pytest.raises(KmemUsageError, match=rf"PERCPU_KMEM_SEEDS\(={value!r}\) must be a positive number"):
        explore(lambda m: ran.append(m.seed))
    assert ran == []
    with pytest.raises(KmemUsageError):
        seeds_from_env(5)


@pytest.mark.parametrize("kw, message", [
    (dict(seeds=5), r"takes an iterable of ints, e.g. range\(50\)"),
    (dict(seeds=[]), r"is empty: a run over no seeds cannot fail"),
    (dict(seeds=[1, "2"]), r"takes ints, got '2'"),
    (dict(policies=("random", "nope")), r"'nope' is not a policy"),
    (dict(policies=()), r"is empty"),
    (dict(expect=3), r"takes a report kind or a collection of them"),
    (dict(expect=("warning", "")), r"takes report kinds"),
    (dict(policy="free"), r"chooses each run's policy itself: pass policies=\.\.\., not policy="),
    (dict(seed=3), r"chooses each run's seed itself"),
])
def test_misuse_is_refused_before_any_run(kw: dict, message: str) -> None:
    ran: list[int] = []
    with pytest.raises(KmemUsageError, match=message):
        explore(lambda m: ran.append(m.seed), **kw)
    assert ran == []


def test_a_generator_of_seeds_serves_every_policy() -> None:
    ran: list[tuple[str, int]] = []
    explore(lambda m: ran.append((m.policy_name, m.seed)), seeds=(s for s in (4, 5)), check=False)
    assert ran == [("random", 4), ("random", 5), ("pct", 0), ("pct", 4), ("pct", 5)]  # ("pct", 0): PCT's probe


# -- find_seed ---------------------------------------------------------------------------------
def test_find_seed_returns_the_first_seed_whose_verdict_is_true() -> None:
    found = find_seed(lambda m: m.seed >= 3 and m.run(quiet) is not None, seeds=range(10))
    assert found is not None and found[0] == 3 and found[1].seed == 3
    assert find_seed(lambda m: False, seeds=range(3)) is None


def test_find_seed_fails_on_a_report_it_was_not_told_to_expect() -> None:
    def scenario(m: Machine) -> bool:
        m.run(lambda: WARN_ON(m.seed == 2))
        return False

    with pytest.raises(UnexpectedReport, match=r"find_seed: unexpected 'warning' report under "
                                               r"policy='random' seed=2"):
        find_seed(scenario, seeds=range(5))
    assert find_seed(scenario, seeds=range(5), expect="warning") is None  # the verdict says no


def test_find_seed_lets_expected_reports_decide_when_the_scenario_returns_none() -> None:
    found = find_seed(lambda m: m.run(lambda: WARN_ON(m.seed == 4)) and None, seeds=range(9),
                      expect="warning")
    assert found is not None and found[0] == 4
    assert found[1].reports_of("warning")
    with pytest.raises(KmemUsageError, match="returned None and expect= names no report kind"):
        find_seed(lambda m: None, seeds=range(3))


def test_find_seed_refuses_bad_arguments_before_any_run() -> None:
    ran: list[int] = []
    for kw in (dict(seeds=[]), dict(policy="fifo"), dict(expect=1), dict(seed=1)):
        with pytest.raises(KmemUsageError):
            find_seed(lambda m: bool(ran.append(m.seed)), **kw)
    assert ran == []


# -- the pytest option ---------------------------------------------------------------------------
INNER = """
from percpu_kmem.testing import explore

def test_inner():
    seen = []
    explore(lambda m: seen.append((m.policy_name, m.seed)), check=False)
    print("SEEN", seen)
"""


def test_kmem_seeds_option_changes_the_default_range_and_is_undone_after(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    res = pytester.runpytest("-s", "--kmem-seeds", "3", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1)
    assert "SEEN [('random', 0), ('random', 1), ('random', 2), ('pct', 0), ('pct', 0), ('pct', 1), ('pct', 2)]" \
        in res.stdout.str()  # the first ('pct', 0) is the probe that sizes PCT
    assert SEEDS_ENV not in os.environ
    res = pytester.runpytest("-s", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1)
    default = [("random", s) for s in range(DEFAULT_SEEDS)] + [("pct", 0)] + [("pct", s) for s in range(DEFAULT_SEEDS)]
    assert f"SEEN {default}" in res.stdout.str()


def test_kmem_seeds_option_restores_a_variable_set_before(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SEEDS_ENV, "2")
    pytester.makepyfile(test_inner=INNER)
    res = pytester.runpytest("-s", "--kmem-seeds", "1", "-p", "no:cacheprovider")
    assert "SEEN [('random', 0), ('pct', 0), ('pct', 0)]" in res.stdout.str()
    assert os.environ[SEEDS_ENV] == "2"


def test_kmem_seeds_option_refuses_a_non_positive_count(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    res = pytester.runpytest("--kmem-seeds", "0", "-p", "no:cacheprovider")
    assert res.ret != 0
    res.stderr.fnmatch_lines(["*--kmem-seeds takes a positive number of seeds, got '0'*"])


def test_explore_stats_count_runs_schedules_policies_and_reports_with_their_first_seed() -> None:
    def scenario(m: Machine) -> None:
        m.run(quiet, sleeps_in_atomic)

    st = explore(scenario, seeds=range(14), policies=None, cpus=2, expect="sleep_in_atomic", stats=True)
    assert st.runs == 14 and st.elapsed > 0 and st.runs_per_second > 0
    assert 1 <= st.distinct_schedules <= 14 and st.unrecorded == 0
    assert sum(st.policies.values()) == 14
    assert any(label.startswith("pct depth=3 steps=") for label in st.policies), st.policies
    assert any(label == "random mean_run=1 preempt_prob=0.1" for label in st.policies), st.policies
    rep = st.reports["sleep_in_atomic"]
    assert rep["runs"] == 14 and rep["first"] == {"policy": "random", "options": {}, "seed": 0}
    text = str(st)
    assert "14 runs" in text and "distinct schedules" in text and "report 'sleep_in_atomic': 14 runs" in text
    assert "no failure" in text
    d = st.as_dict()
    assert json.loads(json.dumps(d)) == d and d["runs"] == 14 and d["failure"] is None
    assert explore(scenario, seeds=range(3), cpus=2, expect="sleep_in_atomic") == 6  # without stats: the count


def test_explore_stats_name_the_failing_run_and_ride_on_its_exception() -> None:
    def scenario(m: Machine) -> None:
        m.run(quiet, sleeps_in_atomic)

    with pytest.raises(UnexpectedReport) as ei:
        explore(scenario, seeds=range(3), policies="pct", cpus=2, stats=True, shrink=False)
    st = ei.value.explore_stats  # type: ignore[attr-defined]
    assert st.runs == 1
    assert st.failure == {"kind": "sleep_in_atomic", "policy": "pct", "options": {"steps": 10}, "seed": 0}
    assert "FAILED: sleep_in_atomic under policy=pct seed=0" in str(st)
    assert st.policies == {"pct depth=2 steps=10": 1}  # PCT sized to the scenario (at least PCT_MIN_STEPS)
    with pytest.raises(KmemUsageError, match="stats"):
        explore(scenario, seeds=range(1), stats="yes")  # type: ignore[call-overload]


def test_a_report_is_the_verdict_over_the_inconsistency_it_left() -> None:
    """The same lock taken twice: the spinlock Oops kills the task with the lock held, so
    m.check() finds a lock held by a task that is gone. explore() fails with the report
    (UnexpectedReport, the Oops's kind), the inconsistency chained to it; so does a
    campaign's outcome."""
    from percpu_kmem import InconsistentState
    from percpu_kmem.campaign import run_one
    from percpu_kmem.linux import spin_lock, spin_lock_init
    from percpu_kmem.scenarios import StressScenario

    def twice(m: percpu_kmem.Machine) -> None:
        lock = spin_lock_init("twice")

        def body() -> None:
            spin_lock(lock)
            spin_lock(lock)

        m.run(body)

    with pytest.raises(UnexpectedReport) as info:
        explore(twice, seeds=range(1), policies="random", shrink=False, cpus=1)
    assert info.value.reports[0].kind == "spinlock_recursion"
    assert isinstance(info.value.__context__, InconsistentState)
    out = run_one(StressScenario("twice", twice, machine={"cpus": 1}), "random", {}, 0)
    assert out.failure == "spinlock_recursion" and "InconsistentState" in out.error
