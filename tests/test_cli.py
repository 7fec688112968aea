"""The percpu-kmem command: stress, replay, explore, shrink, proc, list, run; JSON, exit codes,
usage errors; the stress/ scenarios; campaigns in worker processes and on Dask."""

from __future__ import annotations

import json
import shlex
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from percpu_kmem import campaign
from percpu_kmem.campaign import CampaignResult, run_campaign
from percpu_kmem.cli import main, seed_ranges
from percpu_kmem.parallel import chunks, run_parallel
from percpu_kmem.scenarios import DEFAULT_EXCLUDE, STRESS_DIR, default_scenarios, load_scenarios

pytestmark = pytest.mark.timeout(120)

DRIVER = textwrap.dedent('''
    """A driver that sleeps under its lock, its fixed twin, and one that runs twice."""
    from percpu_kmem.scenarios import stress
    from percpu_kmem.linux import spin_lock_init, spin_lock, spin_unlock, might_sleep, preempt_point

    @stress(cpus=2, seeds=4)
    def buggy(m):
        """might_sleep() under a spinlock."""
        lock = spin_lock_init("drv_lock")
        def worker():
            spin_lock(lock)
            preempt_point("locked")
            might_sleep()
            spin_unlock(lock)
        m.run(worker, worker)

    @stress(cpus=2, seeds=4)
    def fixed(m):
        """might_sleep() after the unlock."""
        lock = spin_lock_init("drv_lock")
        def worker():
            spin_lock(lock)
            spin_unlock(lock)
            might_sleep()
        m.run(worker, worker)
''')


@pytest.fixture
def driver(tmp_path: Path) -> Path:
    p = tmp_path / "driver.py"
    p.write_text(DRIVER)
    return p


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def as_json(res: Result) -> Any:
    return json.loads(res.stdout)


# -- stress ---------------------------------------------------------------------------------------

def test_stress_finds_the_bug_and_its_replay_reproduces_the_report(driver: Path) -> None:
    res = invoke("stress", str(driver), "--json")
    assert res.exit_code == 1, res.output
    doc = as_json(res)
    assert doc["exit_code"] == 1 and doc["runs"] == 8 and doc["failing"] == 4
    kind = doc["by_kind"]["sleep_in_atomic"]
    assert kind["seeds"] == [0, 1, 2, 3] and kind["scenarios"] == [f"{driver}::buggy"]
    first = kind["first"]
    assert first["reports"][0].startswith("BUG: sleeping function called from invalid context")
    assert doc["replay_command"] == first["replay_command"]
    for o in doc["outcomes"]:  # every failing run replays to the same first report
        argv = shlex.split(o["replay_command"])
        assert argv[:2] == ["percpu-kmem", "replay"]
        again = invoke(*argv[1:], "--json")
        assert again.exit_code == 1, again.output
        rep = as_json(again)
        assert rep["failure"] == o["failure"] and rep["reports"][0]["text"] == o["reports"][0]
        assert rep["reports"][0]["stack"] and rep["dmesg"]


def test_stress_text_output_lists_kinds_seeds_and_the_replay_command(driver: Path) -> None:
    res = invoke("stress", str(driver), "--seeds", "3", "--policy", "pct", "--policy", "random")
    assert res.exit_code == 1
    out = res.stdout
    assert "failures by kind" in out and "sleep_in_atomic" in out and "0-2" in out
    assert "replay it with:" in out and "percpu-kmem replay" in out and "--policy pct" in out
    assert "BUG: sleeping function called from invalid context" in out


def test_a_clean_campaign_exits_zero(driver: Path) -> None:
    res = invoke("stress", f"{driver}::fixed", "--seeds", "5", "--cpus", "1,3")
    assert res.exit_code == 0, res.output
    assert "nothing found: 10 runs" in res.stdout
    doc = as_json(invoke("stress", f"{driver}::fixed", "--seeds", "2", "--cpus", "1,3", "--json"))
    assert doc["exit_code"] == 0 and doc["scenarios"][0]["cpus"] == [1, 3] and doc["replay_command"] is None


@pytest.mark.parametrize("args, words", [
    (["stress", "--cpus", "300"], "300 CPUs is not within 1..256"),
    (["stress", "--cpus", "two"], "--cpus takes CPU counts"),
    (["stress", "/nonexistent/driver.py"], "no scenario file or folder"),
    (["stress", "{d}::nothing"], "has no 'nothing'"),
    (["stress", "--policy", "nope"], "Invalid value for '--policy'"),
    (["replay", "{d}::buggy", "--trace", "pkt1 zz"], "not a percpu_kmem trace"),
    (["replay", "{d}::buggy", "--trace", "no such file"], "neither a trace"),
    (["replay", "{d}::buggy"], "give the run to repeat"),
    (["replay", "{d}", "--seed", "1"], "holds 2 scenarios"),
    (["replay", "{d}::buggy", "--seed", "1", "--policy", "pct", "--option", "depth=x"], "depth(='x')"),
    (["replay", "{d}::buggy", "--seed", "1", "--option", "depth"], "--option takes name=value"),
    (["explore", "{d}::buggy", "--depth", "3-1"], "--depth"),
    (["shrink", "{d}::fixed", "--seed", "0"], "does not fail"),
    (["proc", "--seed", "3"], "name the scenario"),
])
def test_usage_errors_are_messages_with_exit_2(driver: Path, args: list[str], words: str) -> None:
    res = CliRunner().invoke(main, [a.format(d=driver) for a in args])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Error:" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "Traceback" not in res.output


def test_a_scenario_file_that_does_not_import_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import no_such_module_anywhere\n")
    res = CliRunner().invoke(main, ["stress", str(bad)])
    assert res.exit_code == 2 and "ModuleNotFoundError" in res.output


def test_ctrl_c_ends_the_campaign_with_what_it_found(driver: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = campaign.run_one
    calls = []

    def interrupted_after_three(*a: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(campaign, "run_one", interrupted_after_three)
    res = invoke("stress", f"{driver}::fixed", "--seeds", "50", "--json")
    assert res.exit_code == 130
    doc = as_json(res)
    assert doc["interrupted"] and doc["runs"] == 3
    calls.clear()
    res = invoke("stress", f"{driver}::buggy", "--seeds", "50")
    assert res.exit_code == 1 and "interrupted by Ctrl-C" in res.stdout and "replay it with" in res.stdout


def test_seed_ranges() -> None:
    assert seed_ranges([0, 1, 2, 5, 7, 8]) == "0-2 5 7-8"
    assert seed_ranges([]) == ""


# -- replay, explore, shrink, proc, list, run --------------------------------------------------------

def test_replay_text_prints_dmesg_reports_and_stacks(driver: Path) -> None:
    res = invoke("replay", f"{driver}::buggy", "--seed", "0", "--cpus", "2")
    assert res.exit_code == 1
    assert "-- dmesg --" in res.stdout and "[sleep_in_atomic]" in res.stdout and "Call Trace:" in res.stdout
    assert "verdict: sleep_in_atomic" in res.stdout
    clean = invoke("replay", f"{driver}::fixed", "--seed", "0")
    assert clean.exit_code == 0 and "verdict: clean" in clean.stdout


def test_replay_a_trace_string_and_a_trace_file(driver: Path, tmp_path: Path) -> None:
    doc = as_json(invoke("replay", f"{driver}::buggy", "--seed", "2", "--policy", "pct", "--option", "depth=2",
                         "--json"))
    trace = doc["trace"]
    again = as_json(invoke("replay", f"{driver}::buggy", "--trace", trace, "--json"))
    assert again["reports"][0]["text"] == doc["reports"][0]["text"] and again["seed"] == 2
    f = tmp_path / "t.pkt"
    f.write_text(trace + "\n")
    from_file = as_json(invoke("replay", f"{driver}::buggy", "--trace", str(f), "--json"))
    assert from_file["trace"] == trace


def test_explore_runs_pct_over_a_depth_range(driver: Path) -> None:
    res = invoke("explore", f"{driver}::buggy", "--depth", "1-3", "--seeds", "2", "--json")
    assert res.exit_code == 1
    doc = as_json(res)
    assert doc["runs"] == 6 and doc["plan"]["depths"] == [1, 2, 3]
    assert {o["policy"] for o in doc["outcomes"]} == {"pct"}
    assert sorted({o["options"]["depth"] for o in doc["outcomes"]}) == [1, 2, 3]


def test_replay_of_a_trace_names_the_trace_in_its_replay_command(driver: Path) -> None:
    """`replay --trace T --json` gave `replay --seed S` as its replay_command: the policy's
    own schedule for that seed, not the trace's (for a shrunk trace, the unshrunk run)."""
    trace = as_json(invoke("replay", f"{driver}::buggy", "--seed", "1", "--json"))["trace"]
    doc = as_json(invoke("replay", f"{driver}::buggy", "--trace", trace, "--cpus", "2", "--json"))
    assert doc["replay_command"] == f"percpu-kmem replay {driver}::buggy --trace {shlex.quote(trace)} --cpus 2"
    again = as_json(invoke(*shlex.split(doc["replay_command"])[1:], "--json"))
    assert again["trace"] == trace and again["failure"] == doc["failure"] == "sleep_in_atomic"


def test_shrink_prints_a_smaller_trace_that_still_fails(driver: Path) -> None:
    res = invoke("shrink", f"{driver}::buggy", "--seed", "3", "--policy", "random", "--json")
    assert res.exit_code == 1, res.output
    doc = as_json(res)
    assert doc["failure"] == ["report", "sleep_in_atomic"]
    assert doc["shrunk"]["preemptions"] <= doc["original"]["preemptions"]
    argv = shlex.split(doc["replay_command"])
    again = invoke(*argv[1:], "--json")
    assert again.exit_code == 1 and as_json(again)["failure"] == "sleep_in_atomic"
    text = invoke("shrink", f"{driver}::buggy", "--seed", "3")
    assert "original:" in text.stdout and "shrunk in" in text.stdout and "replay the shrunk run" in text.stdout


def test_proc_after_a_scenario_and_on_a_fresh_machine(driver: Path) -> None:
    fresh = as_json(invoke("proc", "--json"))
    assert {"slabinfo", "buddyinfo", "meminfo", "vmallocinfo", "zoneinfo", "vmstat", "lock_stat"} <= set(fresh["proc"])
    assert fresh["proc"]["slabinfo"].startswith("slabinfo - version: 2.1")
    after = invoke("proc", f"{driver}::buggy", "--file", "lock_stat", "--file", "meminfo")
    assert after.exit_code == 1  # the run failed: said on stderr, the views are printed anyway
    assert "==> /proc/lock_stat <==" in after.stdout and "drv_lock" in after.stdout
    assert "==> /proc/slabinfo <==" not in after.stdout


def test_list_and_the_demonstrations(driver: Path) -> None:
    doc = as_json(invoke("list", str(driver), "--json"))
    assert [s["name"].rsplit("::", 1)[1] for s in doc["scenarios"]] == ["buggy", "fixed"]
    assert doc["scenarios"][0]["machine"] == {"cpus": 2} and "percpu-counter" in {d["name"] for d in doc["demos"]}
    buggy = invoke("run", "sleep-in-atomic", "--seeds", "3", "--json")
    assert buggy.exit_code == 1 and as_json(buggy)["buggy_seeds"] == [0, 1, 2]
    assert invoke("run", "sleep-in-atomic", "--seeds", "3", "--fixed").exit_code == 0


# -- the stress/ scenarios ----------------------------------------------------------------------------

def test_the_default_set_is_stress_without_the_zoo(tmp_path: Path) -> None:
    names = [sc.name for sc in default_scenarios()]
    assert len(names) >= 7 and not any("/zoo/" in n for n in names)
    assert all(Path(n.split("::")[0]).exists() for n in names)
    (tmp_path / "zoo").mkdir()
    (tmp_path / "zoo" / "bad.py").write_text(DRIVER)
    (tmp_path / "good.py").write_text(DRIVER)
    assert DEFAULT_EXCLUDE == ("zoo",)
    assert [n.name.rsplit("::")[-1] for n in default_scenarios(tmp_path)] == ["buggy", "fixed"]


def test_every_stress_scenario_is_clean_under_the_default_campaign() -> None:
    scs = default_scenarios()
    light = [sc for sc in scs if "memory" not in sc.machine]
    heavy = [sc for sc in scs if "memory" in sc.machine]  # the small-memory ones: ~0.4 s a run
    assert len(light) >= 5 and len(heavy) >= 2
    res = run_campaign(light, seeds=range(7)).merge(run_campaign(heavy, seeds=[1, 3, 4]))
    assert res.runs == 7 * len(light) + 3 * len(heavy)  # one seed per entry of the default campaign
    assert not res.failures, res.summary() + "\n" + "\n".join(o.error or o.reports[0] for o in res.failures)


LEAKY = textwrap.dedent('''
    from percpu_kmem.scenarios import stress, leak_snapshot, assert_no_leaks
    from percpu_kmem.linux import kmalloc, vmalloc, GFP_KERNEL

    @stress(cpus=1, seeds=1)
    def leaks_a_buffer(m):
        before = leak_snapshot(m)
        m.run(lambda: kmalloc(300, GFP_KERNEL))
        assert_no_leaks(m, before)

    @stress(cpus=1, seeds=1)
    def leaks_an_area(m):
        before = leak_snapshot(m)
        m.run(lambda: vmalloc(8192))
        assert_no_leaks(m, before)
''')


def test_the_leak_check_names_what_was_not_freed(tmp_path: Path) -> None:
    (tmp_path / "leaky.py").write_text(LEAKY)
    res = run_campaign(load_scenarios(tmp_path / "leaky.py"))
    errors = [o.error for o in res.outcomes]
    assert all(o.failure == "exception:AssertionError" for o in res.outcomes)
    assert "slab:size-512: 0 -> 1" in errors[0]
    assert "vmalloc areas: 0 -> 1" in errors[1] and "pages" not in errors[1].split("vmalloc areas")[0]


# -- parallel campaigns -------------------------------------------------------------------------------

def _strip(r: CampaignResult) -> list[dict[str, Any]]:
    return [o.to_json() | {"seconds": 0} for o in r.outcomes]


def test_chunks_cover_every_job_in_order(driver: Path) -> None:
    from percpu_kmem.campaign import jobs
    js = jobs(load_scenarios(driver), seeds=range(30))
    parts = chunks(js, 2)
    assert [j for c in parts for j in c] == js and len(parts) >= 8


def test_two_worker_processes_give_the_result_of_one(driver: Path) -> None:
    scs = load_scenarios(driver)
    one = run_parallel(scs, seeds=range(6), cpus=[2, 3], jobs_n=1)
    seen = []
    two = run_parallel(scs, seeds=range(6), cpus=[2, 3], jobs_n=2, progress=lambda n, bad: seen.append((n, bad)))
    assert one.runs == two.runs == 24 and _strip(one.merge(CampaignResult())) == _strip(two)
    assert sum(n for n, _ in seen) == 24 and sum(b for _, b in seen) == len(two.failures) == 12


def test_dask_gives_the_same_merged_result(driver: Path) -> None:
    distributed = pytest.importorskip("distributed")
    scs = load_scenarios(driver)
    one = run_parallel(scs, seeds=range(6), jobs_n=1)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        on_dask = run_parallel(scs, seeds=range(6), dask=cluster.scheduler_address)
    assert _strip(one.merge(CampaignResult())) == _strip(on_dask)


def test_a_worker_that_dies_is_a_message_not_a_traceback(driver: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scenario file named random.py shadows the standard module in the spawned workers,
    which die at import: the campaign ended in a BrokenProcessPool traceback."""
    from concurrent.futures.process import BrokenProcessPool

    from percpu_kmem import cli

    def dies(*args: Any, **kw: Any) -> CampaignResult:
        raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(cli, "run_parallel", dies)
    res = CliRunner().invoke(main, ["stress", str(driver), "--jobs", "2", "-q"])
    assert res.exit_code == 2 and "Traceback" not in res.output and res.stdout == ""
    assert "--jobs 2: a worker process died" in res.output and "random.py" in res.output


def test_parallel_needs_scenarios_from_files() -> None:
    from percpu_kmem.runtime.errors import KmemUsageError
    from percpu_kmem.scenarios import StressScenario
    sc = StressScenario("inline", lambda m: None)
    with pytest.raises(KmemUsageError, match="no path spec"):
        run_parallel([sc], seeds=range(2), jobs_n=2)
    assert STRESS_DIR.name == "stress"


def test_a_worker_loads_relative_specs_from_the_submitters_directory(driver: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from percpu_kmem.campaign import jobs
    from percpu_kmem.parallel import run_chunk
    monkeypatch.chdir(tmp_path)
    scs = load_scenarios("driver.py::buggy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a worker started in another directory
    part = run_chunk(jobs(scs, seeds=range(2)), str(tmp_path))
    assert [o.scenario for o in part.outcomes] == ["driver.py::buggy"] * 2 and len(part.failures) == 2


def test_a_zoo_driver_is_found_and_its_replay_gives_the_same_report() -> None:
    spec = f"{STRESS_DIR / 'zoo' / 'double_kfree.py'}::buggy"
    assert (STRESS_DIR / "zoo" / "double_kfree.py").exists(), "the zoo is part of the repository"
    res = invoke("stress", spec, "--seeds", "3", "--json")
    assert res.exit_code == 1
    doc = as_json(res)
    first = doc["by_kind"]["slab_double_free"]["first"]
    again = invoke(*shlex.split(doc["replay_command"])[1:], "--json")
    assert again.exit_code == 1 and as_json(again)["reports"][0]["text"] == first["reports"][0]


def test_a_machine_the_model_refuses_is_a_usage_error_naming_the_scenario(tmp_path: Path) -> None:
    (tmp_path / "future.py").write_text(textwrap.dedent('''
        from percpu_kmem.scenarios import stress

        @stress(cpus=2, some_detector=True)
        def needs_a_detector(m):
            m.run(lambda: None)
    '''))
    res = CliRunner().invoke(main, ["stress", str(tmp_path / "future.py"), "--seeds", "2"])
    assert res.exit_code == 2 and "needs_a_detector: its machine is refused" in res.output


def test_explore_exhaustive_bounds_preemptions_and_its_replay_fails_the_same_way(driver: Path) -> None:
    res = invoke("explore", str(driver), "--exhaustive", "1", "--json")
    assert res.exit_code == 1
    doc = as_json(res)
    assert doc["mode"] == "exhaustive" and doc["preemptions"] == 1
    buggy, fixed = doc["results"]
    assert buggy["failures"][0]["kind"] == "sleep_in_atomic" and fixed["complete"] and not fixed["failures"]
    again = invoke(*shlex.split(buggy["replay_command"])[1:], "--json")
    assert again.exit_code == 1 and as_json(again)["failure"] == "sleep_in_atomic"
    clean = invoke("explore", f"{driver}::fixed", "--exhaustive", "1")
    assert clean.exit_code == 0 and "nothing found" in clean.stdout and "complete" in clean.stdout


TWO_RUNS = textwrap.dedent('''
    """A buffer kmalloc'ed in one run, freed by two racing closers in the next."""
    from percpu_kmem.scenarios import stress
    from percpu_kmem.linux import GFP_KERNEL, kfree, kmalloc

    @stress(cpus=2, slab_debug=True)
    def two_closers(m):
        dev = {}
        dev["buf"], = m.run(lambda: kmalloc(64, GFP_KERNEL))
        def close():
            buf = dev["buf"]
            if buf is not None:
                kfree(buf)             # both closers can see the buffer
                dev["buf"] = None
        m.run(close, close)
''')


def test_explore_exhaustive_of_a_multi_run_scenario_prints_no_replay_that_diverges(tmp_path: Path) -> None:
    """A trace replays one run of a machine: for a scenario that runs its machine twice, the
    failure's trace (of its second run) given to `replay --trace` diverged at step 1; the
    search's schedule is what repeats it, and the hint no longer offers the machine's seed."""
    from percpu_kmem.exhaustive import replay_schedule
    from percpu_kmem.scenarios import load_scenarios

    path = tmp_path / "two_runs.py"
    path.write_text(TWO_RUNS)
    res = invoke("explore", str(path), "--exhaustive", "1", "--json")
    assert res.exit_code == 1, res.output
    row = as_json(res)["results"][0]
    assert row["failures"][0]["kind"] == "slab_double_free" and row["replay_command"] is None
    hint = row["failures"][0]["replay"]
    assert "replay_schedule(" in hint and "seed=0" not in hint
    schedule = hint.split("replay_schedule(scenario, ", 1)[1].split("'")[1]
    sc, = load_scenarios(path)
    m = replay_schedule(sc.run, schedule, cpus=2, slab_debug=True)
    assert [r.kind for r in m.reports] == ["slab_double_free"]
    # nor does the failure's message offer the machine's seed (the search decided its runs)
    from percpu_kmem.exhaustive import explore_exhaustive
    err = str(explore_exhaustive(sc.run, cpus=2, preemptions=1, slab_debug=True).failures[0].error)
    assert "replay_schedule(scenario, " in err and "policy='random'" not in err and "seed=0," not in err
    text = invoke("explore", str(path), "--exhaustive", "1")
    assert "runs its machine several times" in text.stdout and "percpu-kmem replay two_runs" not in text.stdout
    assert "replay it with" not in text.stdout


def test_shrink_of_a_scenario_that_fails_before_its_machine_runs_is_a_clear_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "early.py"
    path.write_text("from percpu_kmem.scenarios import stress\n\n@stress(cpus=2)\ndef f(m):\n"
                    "    raise ValueError('setup failed')\n")
    res = CliRunner().invoke(main, ["shrink", f"{path}::f", "--seed", "0"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "fails before its machine runs (exception:ValueError): there is no schedule to shrink" in res.output


def test_first_seed_shifts_the_seeds(driver: Path) -> None:
    doc = as_json(invoke("stress", f"{driver}::buggy", "--seeds", "2", "--first-seed", "5", "--json"))
    assert doc["by_kind"]["sleep_in_atomic"]["seeds"] == [5, 6] and doc["plan"]["seeds"] == [5, 7]
    per_scenario = as_json(invoke("stress", f"{driver}::buggy", "--first-seed", "10", "--json"))
    assert per_scenario["by_kind"]["sleep_in_atomic"]["seeds"] == [10, 11, 12, 13]  # the scenario's 4 seeds


# -- replay --events -------------------------------------------------------------------------------

def test_replay_events_show_the_run_up_to_the_first_report(driver: Path) -> None:
    res = invoke("replay", f"{driver}::buggy", "--seed", "1", "--events")
    assert res.exit_code == 1
    head, _, events = res.stdout.partition("\n-- events: ")
    assert "-- dmesg --" in head and "] BUG: sleeping function called" in head  # dmesg, stamped
    assert events.startswith("3 of ") and "up to the first report (sleep_in_atomic, step 3)" in events
    lines = events.split("verdict:")[0].strip().splitlines()[1:]
    assert "spin_lock(drv_lock)" in lines[-2] and "BUG: sleeping function called" in lines[-1]
    assert "-> switch to worker/1" in lines[0]
    plain = invoke("replay", f"{driver}::buggy", "--seed", "1")
    assert "-- events" not in plain.stdout  # off unless asked


def test_replay_events_json_filters_and_bad_task(driver: Path) -> None:
    base = ["replay", f"{driver}::buggy", "--seed", "1", "--json"]
    doc = as_json(invoke(*base, "--events"))
    assert doc["events"][-1]["kind"] == "report" and doc["events"][-1]["what"].startswith("BUG: sleeping")
    assert doc["events_shown"]["last"] == 40 and doc["events_shown"]["model_locks"] is False
    assert "events" not in as_json(invoke(*base))
    every = as_json(invoke(*base, "--events-all", "--events-model"))
    assert every["events_shown"]["up_to"] == "the end of the run" and len(every["events"]) == every["events_shown"]["total"]
    assert len(every["events"]) > len(doc["events"])
    sched = as_json(invoke(*base, "--events-all", "--events-kind", "sched"))
    assert sched["events"] and {e["kind"] for e in sched["events"]} == {"sched"}
    one = as_json(invoke(*base, "--events-task", "worker/2", "--events-last", "2"))
    assert len(one["events"]) <= 2 and all(e["task"] == "worker/2" or e["kind"] == "sched" for e in one["events"])
    bad = CliRunner().invoke(main, [*base, "--events-task", "nosuch"])
    assert bad.exit_code == 2 and "no such task in the run" in bad.output and "worker/1" in bad.output
    assert bad.stdout == "" or "{" not in bad.stdout


# -- study -----------------------------------------------------------------------------------------

def test_study_prints_the_table_and_the_usl_fits() -> None:
    res = invoke("study", "--cpus", "1,2", "--ops", "10", "-q")
    assert res.exit_code == 0, res.output
    assert "workload threadtest: 10 ops per CPU" in res.stdout and "USL fit" in res.stdout
    rows = [ln.split()[:2] for ln in res.stdout.splitlines() if ln.startswith(("default ", "no-percpu "))]
    assert ["default", "1"] in rows and ["no-percpu", "2"] in rows  # the default pair, both CPU counts


def test_study_json_csv_configs_params_and_seeds(tmp_path: Path) -> None:
    out = tmp_path / "points.csv"
    res = invoke("study", "--workload", "magazine-pairs", "--cpus", "1,2", "--ops", "8", "--config", "default",
                 "--config", "mag-7", "--param", "size=128", "--seeds", "2", "--csv", str(out), "--json")
    assert res.exit_code == 0, res.output
    doc = as_json(res)
    assert doc["workload"] == "magazine-pairs" and doc["params"] == {"size": 128} and doc["exit_code"] == 0
    assert [c["name"] for c in doc["configs"]] == ["default", "mag-7"] and doc["seeds"] == [0, 1]
    assert len(doc["points"]) == 8 and len(doc["summary"]) == 4 and set(doc["usl"]) == {"default", "mag-7"}
    assert len(out.read_text().splitlines()) == 1 + 8


def test_study_list_names_every_workload_and_configuration() -> None:
    from percpu_kmem.study import PRESETS, WORKLOADS
    doc = as_json(invoke("study", "--list", "--json"))
    assert [w["name"] for w in doc["workloads"]] == list(WORKLOADS)
    assert [c["name"] for c in doc["configs"]] == list(PRESETS)
    text = invoke("study", "--list")
    assert text.exit_code == 0 and "threadtest" in text.stdout and "no-percpu" in text.stdout


@pytest.mark.parametrize("args, words", [
    (["--param", "nope=1"], "--param nope: workload 'threadtest' takes batch (default 100)"),
    (["--param", "size"], "--param takes name=value"),
    (["--cpus", "1,1"], "names a CPU count twice"),
    (["--cpus", "65"], "at most 64 CPUs"),
    (["--cpus", "0"], "not within 1..256"),
    (["--config", "bogus"], "Invalid value for '--config'"),
    (["--config", "default", "--config", "default"], "names a configuration twice"),
    (["--workload", "bogus"], "Invalid value for '--workload'"),
    (["--csv", "/nonexistent/dir/x.csv"], "does not exist"),
    (["--ops", "0"], "Invalid value for '--ops'"),
    # a value of another kind than the default's was a TypeError traceback from inside the sweep
    (["--param", "batch=x"], "--param batch='x': workload 'threadtest' takes int values for batch (default 100)"),
    (["--param", "batch=1.5"], "takes int values for batch"),
    (["--param", "size=True"], "takes int values for size"),
    (["--workload", "memory-pressure", "--param", "fill='a'"], "takes float values for fill (default 0.9)"),
])
def test_study_usage_errors(args: list[str], words: str) -> None:
    res = CliRunner().invoke(main, ["study", "--cpus", "1", "--ops", "2", *args])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output and res.stdout.count("\n") <= 3


def test_study_plot_without_matplotlib_is_a_usage_error_before_the_sweep(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path) -> None:
    import percpu_kmem.cli as cli
    find_spec = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else find_spec(name, *a))
    monkeypatch.setattr(cli, "run_study", lambda *a, **k: pytest.fail("the sweep ran"))
    res = CliRunner().invoke(main, ["study", "--plot", str(tmp_path / "s.png")])
    assert res.exit_code == 2 and "[plot]" in res.output and "matplotlib" in res.output


def test_study_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import percpu_kmem.cli as cli

    def interrupted(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(cli, "run_study", interrupted)
    res = CliRunner().invoke(main, ["study", "--cpus", "1"])
    assert res.exit_code == 130 and "interrupted" in res.output


# -- zoo -------------------------------------------------------------------------------------------

ZOO_DRIVER = textwrap.dedent('''
    """{bug}

    A test driver for the zoo command.
    """
    from percpu_kmem.scenarios import stress
    from percpu_kmem.linux import spin_lock_init, spin_lock, spin_unlock, might_sleep

    DETECTOR = "might_sleep"
    REPORTS = ("sleep_in_atomic",)

    def _run(m, under):
        lock = spin_lock_init("z_lock")
        def worker():
            spin_lock(lock)
            if under:
                might_sleep()
            spin_unlock(lock)
        m.run(worker)

    @stress(cpus=1)
    def buggy(m):
        _run(m, {buggy})

    @stress(cpus=1)
    def fixed(m):
        _run(m, {fixed})
''')


def _zoo(tmp_path: Path, buggy: bool, fixed: bool) -> str:
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "drv.py").write_text(ZOO_DRIVER.format(bug="might_sleep() under a spinlock.", buggy=buggy,
                                                     fixed=fixed))
    return str(folder)


def test_zoo_finds_the_drivers_and_exits_zero() -> None:
    res = invoke("zoo", "--driver", "double_kfree", "--driver", "irq_gfp_kernel.py", "--seeds", "5",
                 "--policy", "campaign", "--policy", "random", "-q")
    assert res.exit_code == 0, res.output
    assert "| driver | detector | found within 5 | seeds to find: campaign | seeds to find: random |" in res.stdout
    assert "| double_kfree | hardening | yes |" in res.stdout
    assert "zoo: 2 of 2 buggy drivers found within 5 seeds, 0 false positives" in res.stdout
    doc = as_json(invoke("zoo", "--driver", "double_kfree", "--seeds", "3", "--json"))
    assert doc["exit_code"] == 0 and doc["detections"] == 1 and doc["false_positives"] == 0 and doc["twins"]
    col = doc["drivers"][0]["columns"]["campaign"]
    assert col["seeds_to_first_find"] == 1 and col["twin_runs"] == 3


@pytest.mark.parametrize("buggy, fixed, twins, code, words", [
    (True, False, True, 0, "1 of 1 buggy drivers found within 4 seeds, 0 false positives"),
    (False, False, True, 1, "not found: drv"),                   # a missed driver
    (True, True, True, 1, "4 false positives"),                    # a twin reported, every seed
    (True, True, False, 0, "(twins not run)"),                     # without twins: no false positive
])
def test_zoo_exit_code_judges_the_detectors(tmp_path: Path, buggy: bool, fixed: bool, twins: bool, code: int,
                                           words: str) -> None:
    args = ["zoo", "--zoo-dir", _zoo(tmp_path, buggy, fixed), "--seeds", "4"] + ([] if twins else ["--no-twins"])
    res = invoke(*args)
    assert res.exit_code == code, res.output
    assert words in res.stdout
    if buggy and fixed and twins:
        assert "false positive: drv's fixed twin failed (sleep_in_atomic)" in res.stdout
        assert "percpu-kmem replay" in res.stdout
    assert as_json(invoke(*args, "--json"))["exit_code"] == code


@pytest.mark.parametrize("args, words", [
    (["--driver", "nope"], "no such zoo driver (the zoo has abba_two_drivers"),
    (["--policy", "free"], "Invalid value for '--policy'"),
    (["--policy", "pct", "--policy", "pct"], "names a column twice"),
    (["--seeds", "0"], "Invalid value for '--seeds'"),
    (["--zoo-dir", "/nonexistent/zoo"], "--zoo-dir '/nonexistent/zoo' is not a folder"),
])
def test_zoo_usage_errors(args: list[str], words: str) -> None:
    res = CliRunner().invoke(main, ["zoo", *args])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output


def test_zoo_list_and_ctrl_c(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = as_json(invoke("zoo", "--list", "--json", "--driver", "lost_wakeup"))
    assert [d["driver"] for d in doc["drivers"]] == ["lost_wakeup"] and doc["drivers"][0]["detector"] == "hung_task"
    import percpu_kmem.zoo as zoo

    def interrupted(*a: Any, **k: Any) -> None:
        raise KeyboardInterrupt
    monkeypatch.setattr(zoo, "run_one", interrupted)
    res = invoke("zoo", "--driver", "double_kfree", "--seeds", "2")
    assert res.exit_code == 130 and "(interrupted)" in res.stdout


def test_zoo_progress_counts_every_planned_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import percpu_kmem.cli as cli
    seen: dict[str, int] = {"total": 0, "done": 0, "found": 0}

    def fake_progress(total: int, label: str, quiet: bool, counter: str = "") -> Any:
        seen["total"] = total

        def advance(runs: int, counted: int) -> None:
            seen["done"] += runs
            seen["found"] += counted
        return contextlib.nullcontext(), advance
    monkeypatch.setattr(cli, "_progress", fake_progress)
    res = invoke("zoo", "--driver", "double_kfree", "--driver", "lost_wakeup", "--seeds", "12",
                 "--policy", "campaign", "--policy", "pct", "--json")
    assert res.exit_code == 0, res.output
    found = sum(c["found"] for d in as_json(res)["drivers"] for c in d["columns"].values())
    assert found >= 2 and seen["found"] == found  # double_kfree is found at its first seed: 11 runs skipped
    assert seen["total"] == 2 * 2 * 12 * 2 and seen["done"] == seen["total"]


def test_study_exits_one_when_a_point_recorded_a_report(monkeypatch: pytest.MonkeyPatch) -> None:
    import percpu_kmem.cli as cli
    real = cli.run_study

    def with_a_report(*a: Any, **k: Any) -> Any:
        res = real(*a, **k)
        res.rows[0]["reports"] = ["sleep_in_atomic"]
        return res
    monkeypatch.setattr(cli, "run_study", with_a_report)
    res = invoke("study", "--cpus", "1", "--ops", "2", "--config", "default")
    assert res.exit_code == 1 and "kernel reports during the study (sleep_in_atomic)" in res.stdout


def test_study_progress_counts_every_point(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import percpu_kmem.cli as cli
    seen = {"total": 0, "done": 0}

    def fake_progress(total: int, label: str, quiet: bool, counter: str = "") -> Any:
        seen["total"] = total

        def advance(runs: int, counted: int) -> None:
            seen["done"] += runs
        return contextlib.nullcontext(), advance
    monkeypatch.setattr(cli, "_progress", fake_progress)
    assert invoke("study", "--cpus", "1,2", "--ops", "2", "--seeds", "2").exit_code == 0
    assert seen["total"] == 2 * 2 * 2 == seen["done"]
