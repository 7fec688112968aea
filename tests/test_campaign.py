"""Stress scenarios loaded from files, and campaigns that collect every run's verdict."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from percpu_kmem.campaign import CampaignResult, plan, run_campaign, run_one
from percpu_kmem.runtime.errors import KmemUsageError
from percpu_kmem.scenarios import load_scenarios, stress
from percpu_kmem.testing import CAMPAIGN

DRIVER = textwrap.dedent('''
    """A driver that sleeps under its lock, and its fixed twin."""
    from percpu_kmem.scenarios import stress
    from percpu_kmem.linux import spin_lock_init, spin_lock, spin_unlock, might_sleep

    @stress(cpus=2, seeds=6)
    def buggy(m):
        """might_sleep() under a spinlock."""
        lock = spin_lock_init("drv_lock")
        def worker():
            spin_lock(lock)
            might_sleep()
            spin_unlock(lock)
        m.run(worker, worker)

    @stress(cpus=2, seeds=6)
    def fixed(m):
        """might_sleep() after the unlock."""
        lock = spin_lock_init("drv_lock")
        def worker():
            spin_lock(lock)
            spin_unlock(lock)
            might_sleep()
        m.run(worker, worker)

    @stress(cpus=2, seeds=3, expect="sleep_in_atomic")
    def expected(m):
        buggy(m)

    def helper(m):
        """Not marked: only reachable as file.py::helper."""
        assert m.nr_cpus == 3, "three CPUs wanted"
''')


@pytest.fixture
def driver(tmp_path: Path) -> Path:
    p = tmp_path / "driver.py"
    p.write_text(DRIVER)
    return p


def test_load_a_file_finds_every_marked_scenario_in_order(driver: Path) -> None:
    scs = load_scenarios(driver)
    assert [s.name.rsplit("::", 1)[1] for s in scs] == ["buggy", "fixed", "expected"]
    assert scs[0].doc == "might_sleep() under a spinlock."
    assert scs[0].machine == {"cpus": 2} and scs[0].seeds == 6
    assert scs[2].expect == frozenset({"sleep_in_atomic"})


def test_load_one_function_and_a_folder(driver: Path) -> None:
    (one,) = load_scenarios(f"{driver}::fixed")
    assert one.name.endswith("::fixed")
    (plain,) = load_scenarios(f"{driver}::helper")
    assert plain.machine == {} and plain.seeds > 0
    (driver.parent / "_private.py").write_text("raise SystemExit('never imported')\n")
    assert len(load_scenarios(driver.parent)) == 3


@pytest.mark.parametrize("spec, words", [
    ("/nonexistent/x.py", "no scenario file or folder"),
    ("{d}::nothing", "has no 'nothing'"),
    ("{dir}::buggy", "follows a file, not a folder"),
])
def test_bad_specs_are_usage_errors(driver: Path, spec: str, words: str) -> None:
    with pytest.raises(KmemUsageError, match=words):
        load_scenarios(spec.format(d=driver, dir=driver.parent))


def test_a_file_without_marked_scenarios_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(KmemUsageError, match="no @stress scenario"):
        load_scenarios(tmp_path / "empty.py")


@pytest.mark.parametrize("kw, words", [({"seeds": 0}, "seeds"), ({"policy": "pct"}, "chooses the policy"),
                                       ({"expect": [""]}, "report kinds")])
def test_stress_marker_validates(kw: dict, words: str) -> None:
    with pytest.raises(KmemUsageError, match=words):
        stress(**kw)


def test_campaign_finds_the_bug_and_clears_the_twin(driver: Path) -> None:
    buggy, fixed, expected = load_scenarios(driver)
    res = run_campaign([buggy, fixed, expected])
    assert res.runs == 6 + 6 + 3
    kinds = res.by_kind()
    assert set(kinds) == {"sleep_in_atomic"}
    assert {o.scenario for o in kinds["sleep_in_atomic"]} == {buggy.name}
    first = kinds["sleep_in_atomic"][0]
    assert first.seed == 0 and "replay" in first.replay and first.reports[0].startswith("BUG: sleeping function")
    assert "sleep_in_atomic: 6 runs, first" in res.summary()
    assert res.to_json()["failing"] == 6


def test_outcome_replays(driver: Path) -> None:
    from percpu_kmem import Machine
    buggy = load_scenarios(f"{driver}::buggy")[0]
    out = run_one(buggy, "pct", {"depth": 2}, 5)
    assert out.failed and out.failure == "sleep_in_atomic"
    m = Machine(cpus=2, policy="pct", seed=5, depth=2)
    buggy.run(m)
    assert [r.text for r in m.reports][:1] == list(out.reports[:1])


def test_exceptions_and_assertions_are_verdicts(driver: Path) -> None:
    (helper,) = load_scenarios(f"{driver}::helper")
    out = run_one(helper, "random", {}, 0, cpus=2)
    assert out.failure == "exception:AssertionError" and "three CPUs wanted" in out.error


def test_plan_rotates_the_default_campaign() -> None:
    p = plan(range(len(CAMPAIGN) + 1), None)
    assert [(pol, opts) for pol, opts, _ in p[:len(CAMPAIGN)]] == [(pol, dict(o)) for pol, o in CAMPAIGN]
    assert p[-1][:2] == (CAMPAIGN[0][0], dict(CAMPAIGN[0][1]))
    assert plan([len(CAMPAIGN) + 1], None) == [(CAMPAIGN[1][0], dict(CAMPAIGN[1][1]), len(CAMPAIGN) + 1)]
    assert plan([1, 2], ["random", "pct"]) == [("random", {}, 1), ("random", {}, 2), ("pct", {}, 1), ("pct", {}, 2)]
    with pytest.raises(KmemUsageError, match="policy 'nope'"):
        plan([1], ["nope"])
    with pytest.raises(KmemUsageError, match="non-negative"):
        plan([-1], None)


def test_merge_is_order_independent(driver: Path) -> None:
    buggy, fixed, _ = load_scenarios(driver)
    a = run_campaign([buggy], seeds=range(0, 3))
    b = run_campaign([buggy], seeds=range(3, 6))
    whole = run_campaign([buggy], seeds=range(6))
    strip = lambda r: [o.to_json() | {"seconds": 0} for o in r.outcomes]  # noqa: E731
    assert strip(a.merge(b)) == strip(b.merge(a)) == strip(whole.merge(CampaignResult()))


def test_a_scenario_file_imports_the_driver_beside_it(tmp_path: Path) -> None:
    (tmp_path / "my_drv_beside.py").write_text("def probe():\n    return 42\n")
    (tmp_path / "stress_it.py").write_text(textwrap.dedent('''
        from my_drv_beside import probe
        from percpu_kmem.scenarios import stress

        @stress(cpus=1, seeds=1)
        def uses_the_driver(m):
            assert probe() == 42
            m.run(lambda: None)
    '''))
    (sc,) = load_scenarios(tmp_path / "stress_it.py")
    assert not run_one(sc, "random", {}, 0).failed


def test_pct_runs_of_a_campaign_are_sized_to_the_scenario_and_carry_the_size(driver: Path) -> None:
    from percpu_kmem.testing import PCT_MIN_STEPS, pct_steps_of
    buggy = load_scenarios(f"{driver}::buggy")[0]
    steps = pct_steps_of(buggy.run, **buggy.machine)
    assert steps >= PCT_MIN_STEPS
    out = run_one(buggy, "pct", {"depth": 2}, 3)
    assert dict(out.options) == {"depth": 2, "steps": steps}
    assert f"--option steps={steps}" in out.replay_command()
    assert dict(run_one(buggy, "pct", {"depth": 2, "steps": 77}, 3).options)["steps"] == 77  # given: kept
