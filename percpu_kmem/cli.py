"""The ``percpu-kmem`` command: stress campaigns, replay, systematic search, shrinking, /proc.

    percpu-kmem stress                          # the default scenarios of stress/, the default campaign
    percpu-kmem stress my_driver.py::probe --seeds 1000 --cpus 2,4 --jobs 4
    percpu-kmem replay my_driver.py::probe --seed 17 --policy pct --option depth=2 --cpus 2
    percpu-kmem explore my_driver.py::probe --depth 1-3 --seeds 200
    percpu-kmem shrink my_driver.py::probe --seed 17 --policy pct --option depth=2
    percpu-kmem proc stress/vmalloc_churn.py --file vmallocinfo
    percpu-kmem replay my_driver.py::probe --seed 17 --events     # with the event log
    percpu-kmem study --workload larson --cpus 1,2,4,8 --plot larson.png
    percpu-kmem zoo --seeds 200 --policy campaign --policy pct
    percpu-kmem list

Every subcommand takes ``--json`` (one JSON document on stdout). Exit codes: 0 nothing
found (a clean campaign, a clean replay), 1 something found (a failing run), 2 a usage
error (a bad option, a missing file, a bad trace: a message, never a traceback), 130
a campaign interrupted by Ctrl-C before it found anything (what it ran is printed).
``zoo``'s exit code judges the detectors instead (0: every available buggy driver found,
no twin reported), ``study``'s says whether a point recorded a kernel report.
docs/cli.md describes every subcommand and the JSON shapes.

The campaign logic lives in percpu_kmem/campaign.py and percpu_kmem/parallel.py; this
module parses, runs and prints.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .campaign import CampaignResult, Outcome, execute, jobs, replay_command
from .machine import Machine
from .parallel import run_parallel
from .runtime.errors import KmemUsageError
from .runtime.events import EVENT_KINDS
from .runtime.machine import MAX_CPUS, REPLAY_INLINE_MAX, save_trace
from .runtime.policies import POLICIES
from .runtime.trace import TRACE_MAGIC, Trace
from .scenarios import (
    DEFAULT_SCENARIO,
    SCENARIOS,
    STRESS_DIR,
    StressScenario,
    default_scenarios,
    explore_scenario,
    load_scenarios,
)
from .shrink import shrink as shrink_run
from .study import PRESETS, WORKLOADS, run_study
from .zoo import CAMPAIGN_COLUMN, ZOO_SEEDS, ZooDriver, ZooResult, load_zoo, run_zoo

#: Exit codes (documented in --help and docs/cli.md).
EXIT_CLEAN = 0
EXIT_FOUND = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
#: The /proc files ``proc`` prints, in this order (those the machine has).
PROC_FILES = ("slabinfo", "buddyinfo", "meminfo", "vmallocinfo", "zoneinfo", "vmstat", "lock_stat")

EXIT_CODES_HELP = ("Exit codes: 0 nothing found; 1 something found (a failing run); 2 usage error; "
                   "130 interrupted (Ctrl-C) before anything was found (1 if something was).")


class _Command(click.Command):
    """A command whose usage errors from the model (KmemUsageError) are usage messages (exit 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KmemUsageError as e:
            raise click.UsageError(str(e), ctx) from None


class _Group(click.Group):
    command_class = _Command


@click.group(cls=_Group, epilog=EXIT_CODES_HELP + " zoo and study give the codes their own meaning (see their "
                                                  "--help).")
@click.version_option(package_name="percpu_kmem")
def main() -> None:
    """percpu_kmem: the kernel's memory allocation on a simulated SMP machine.

    Stress campaigns over thousands of schedules, the replay of a failing run (with
    its event log), the systematic search, schedule shrinking, /proc views, the
    scalability study and the bug zoo. `percpu-kmem stress` runs
    the scenarios of the repository's stress/ folder under the default campaign.
    """


# -- helpers -------------------------------------------------------------------------------------

def _usage(msg: str) -> NoReturn:
    raise click.UsageError(msg)


def _load(paths: Sequence[str]) -> list[StressScenario]:
    """Scenarios from paths (default: the stress/ folder less the zoo); a file that does not
    import is a usage error naming the file and the exception."""
    try:
        if not paths:
            return default_scenarios()
        found: list[StressScenario] = []
        seen: set[str] = set()
        for p in paths:
            for sc in load_scenarios(p):
                if sc.name not in seen:
                    seen.add(sc.name)
                    found.append(sc)
        return found
    except KmemUsageError:
        raise
    except Exception as e:  # the user's file raised while importing
        _usage(f"cannot load scenarios from {', '.join(paths) or 'stress/'}: {type(e).__name__}: {e}")


def _one(spec: str) -> StressScenario:
    found = _load([spec])
    if len(found) != 1:
        names = ", ".join(sc.name for sc in found)
        _usage(f"{spec!r} holds {len(found)} scenarios ({names}): name one as file.py::name")
    return found[0]


def _parse_cpus(value: str | None) -> list[int] | None:
    if value is None:
        return None
    out = []
    for part in value.split(","):
        try:
            n = int(part.strip())
        except ValueError:
            _usage(f"--cpus takes CPU counts separated by commas (e.g. 2,4), got {value!r}")
        if not 1 <= n <= MAX_CPUS:
            _usage(f"--cpus: {n} CPUs is not within 1..{MAX_CPUS}")
        out.append(n)
    return out


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_options(pairs: Sequence[str], flag: str = "--option", example: str = "depth=2") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.isidentifier():
            _usage(f"{flag} takes name=value (e.g. {example}), got {pair!r}")
        out[key] = _parse_value(value)
    return out


def _parse_depths(text: str) -> list[int]:
    lo_s, dash, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if dash else lo
    except ValueError:
        _usage(f"--depth takes a depth or a range such as 1-3, got {text!r}")
    if not 1 <= lo <= hi <= 20:
        _usage(f"--depth {text!r}: depths must be within 1..20, low to high")
    return list(range(lo, hi + 1))


def _emit_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=1, sort_keys=False, default=str))


def _console() -> Console:
    probe = Console()
    return Console(soft_wrap=False, highlight=False, width=None if probe.is_terminal else 120)


def _progress(total: int, label: str, quiet: bool, counter: str = "runs  failing: {task.fields[failing]}"
              ) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    """A progress bar on stderr (only on a terminal, not with --quiet) and its
    ``advance(done, counted)``; ``counter`` is the text after the count."""
    err = Console(stderr=True)
    if quiet or not err.is_terminal:
        return None, None
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn(counter), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn(), console=err, transient=True)
    task = bar.add_task(label, total=total, failing=0)
    failing = [0]

    def advance(runs: int, bad: int) -> None:
        failing[0] += bad
        bar.update(task, advance=runs, failing=failing[0])
    return bar, advance


def _exit_code(result: CampaignResult) -> int:
    if result.failures:
        return EXIT_FOUND
    return EXIT_INTERRUPTED if result.interrupted else EXIT_CLEAN


def _run_campaign(scenarios: list[StressScenario], *, label: str, quiet: bool, jobs_n: int, dask: str | None,
                  **plan: Any) -> CampaignResult:
    total = len(jobs(scenarios, **plan))  # also checks the plan before anything runs
    bar, advance = _progress(total, label, quiet)
    try:
        if bar is None:
            return run_parallel(scenarios, jobs_n=jobs_n, dask=dask, **plan)
        with bar:
            return run_parallel(scenarios, jobs_n=jobs_n, dask=dask, progress=advance, **plan)
    except BrokenProcessPool:
        # a worker died, most often at its start (its traceback is above, on stderr): e.g. a
        # scenario file named like a standard module (random.py), which the spawned worker
        # imports in the standard module's place
        pass
    _usage(f"--jobs {jobs_n}: a worker process died (its own traceback is above); a scenario folder holding "
           f"a file named like a standard module (random.py, queue.py) breaks the workers' imports: rename it, "
           f"or run with --jobs 1")


def _per_scenario(result: CampaignResult) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for o in result.outcomes:
        r = rows.setdefault(o.scenario, {"scenario": o.scenario, "runs": 0, "failing": 0, "cpus": set(),
                                         "schedules": set()})
        r["runs"] += 1
        r["failing"] += int(o.failed)
        r["cpus"].add(o.cpus)
        if o.schedule:
            r["schedules"].add(o.schedule)
    return [{"scenario": r["scenario"], "runs": r["runs"], "failing": r["failing"], "cpus": sorted(r["cpus"]),
             "distinct_schedules": len(r["schedules"])} for r in rows.values()]


def _campaign_json(result: CampaignResult, command: str, plan: dict[str, Any]) -> dict[str, Any]:
    doc = result.to_json()
    first = _first_failure(result)
    doc.update({"command": command, "exit_code": _exit_code(result), "plan": plan,
                "scenarios": _per_scenario(result),
                "replay_command": first.replay_command() if first else None})
    return doc


def _first_failure(result: CampaignResult) -> Outcome | None:
    groups = result.by_kind()
    if not groups:
        return None
    return min((outs[0] for outs in groups.values()), key=lambda o: (o.seed, o.scenario, o.policy))


def _print_campaign(result: CampaignResult, what: str) -> None:
    con = _console()
    table = Table(title=f"{what}: {result.runs} runs in {result.seconds:.1f} s"
                  + (" (interrupted by Ctrl-C)" if result.interrupted else ""), title_justify="left")
    for col, just in (("scenario", "left"), ("cpus", "right"), ("runs", "right"), ("schedules", "right"),
                      ("failing", "right")):
        table.add_column(col, justify=just, overflow="fold")  # type: ignore[arg-type]
    for row in _per_scenario(result):
        table.add_row(row["scenario"], ",".join(map(str, row["cpus"])), str(row["runs"]),
                      str(row["distinct_schedules"]), str(row["failing"]) if row["failing"] else "-")
    con.print(table)
    groups = result.by_kind()
    if not groups:
        click.echo(f"nothing found: {result.runs} runs, {result.distinct_schedules()} distinct schedules, "
                   f"no report, no failed check" + (" (interrupted)" if result.interrupted else ""))
        return
    kinds = Table(title="failures by kind", title_justify="left")
    for col in ("kind", "runs", "first (scenario, seed, policy)", "failing seeds"):
        kinds.add_column(col, overflow="fold")
    for kind, outs in groups.items():
        f = outs[0]
        opts = ",".join(f"{k}={v}" for k, v in f.options)
        kinds.add_row(kind, str(len(outs)), f"{f.scenario} seed={f.seed} {f.policy}" + (f"({opts})" if opts else ""),
                      seed_ranges(sorted({o.seed for o in outs})))
    con.print(kinds)
    first = _first_failure(result)
    assert first is not None
    click.echo(f"\nfirst failure: {first.scenario} seed={first.seed} policy={first.policy} ({first.failure})")
    if first.reports:
        click.echo(first.reports[0])
    elif first.error:
        click.echo(first.error.splitlines()[0])
    click.echo("\nreplay it with:\n  " + first.replay_command())


def seed_ranges(seeds: Sequence[int]) -> str:
    """Sorted seeds as ranges: ``0-3 7 9-10``."""
    parts: list[str] = []
    i = 0
    while i < len(seeds):
        j = i
        while j + 1 < len(seeds) and seeds[j + 1] == seeds[j] + 1:
            j += 1
        parts.append(str(seeds[i]) if i == j else f"{seeds[i]}-{seeds[j]}")
        i = j + 1
    return " ".join(parts)


def _scenario_json(sc: StressScenario) -> dict[str, Any]:
    return {"name": sc.name, "doc": sc.doc, "machine": {k: v for k, v in sc.machine.items()},
            "expect": sorted(sc.expect), "seeds": sc.seeds}


# -- stress --------------------------------------------------------------------------------------

def _campaign_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--seeds", type=click.IntRange(min=1), default=None,
                     help="Seeds per scenario (default: each scenario's own budget, @stress(seeds=...))."),
        click.option("--first-seed", type=click.IntRange(min=0), default=0, show_default=True,
                     help="The first seed."),
        click.option("--cpus", default=None, metavar="N[,N...]",
                     help="CPU counts to run every scenario at (default: the scenario's own)."),
        click.option("--jobs", "jobs_n", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Worker processes on this machine."),
        click.option("--dask", default=None, metavar="ADDRESS",
                     help="Run on a Dask cluster: a scheduler address (tcp://host:8786) or 'local' "
                          "(a LocalCluster of --jobs workers). Needs the [dask] extra."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout."),
    ]):
        fn = opt(fn)
    return fn


def _finish(result: CampaignResult, command: str, plan: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        _emit_json(_campaign_json(result, command, plan))
    else:
        _print_campaign(result, what)
    sys.exit(_exit_code(result))


@main.command("stress", epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1)
@click.option("--policy", "policies", multiple=True, type=click.Choice(POLICIES),
              help="A policy to run every seed under (repeatable; default: the default campaign, "
                   "which rotates random walks, PCT at depths 1-3 and virtual time by seed).")
@_campaign_options
def stress_cmd(paths: tuple[str, ...], policies: tuple[str, ...], seeds: int | None, first_seed: int,
               cpus: str | None, jobs_n: int, dask: str | None, quiet: bool, as_json: bool) -> None:
    """Run stress scenarios over many schedules and report what they found.

    PATHS are scenario files, file.py::name or folders (default: the repository's
    stress/ folder, without stress/zoo/). Each run gets a fresh machine; a run fails
    when the scenario raises, when m.check() finds an inconsistency, or when the
    machine recorded a kernel report the scenario did not expect. Prints a table per
    scenario, the failures by kind with every failing seed, and the command that
    replays the first failure.
    """
    scenarios = _load(paths)
    cpu_list = _parse_cpus(cpus)
    seed_range = None if seeds is None else range(first_seed, first_seed + seeds)
    plan = {"seeds": seed_range, "policies": list(policies) or None, "cpus": cpu_list, "first_seed": first_seed}
    result = _run_campaign(scenarios, label="stress", quiet=quiet, jobs_n=jobs_n, dask=dask, **plan)
    plan_doc = {"scenarios": [sc.name for sc in scenarios],
                "seeds": [seed_range.start, seed_range.stop] if seed_range else "per scenario",
                "policies": list(policies) or "default campaign", "cpus": cpu_list or "per scenario",
                "jobs": jobs_n, "dask": dask}
    if not paths and not as_json and not result.failures and (STRESS_DIR / "zoo").is_dir():
        _print_campaign(result, "stress")
        zoo_driver = STRESS_DIR / "zoo" / "double_kfree.py"
        try:
            shown = str(zoo_driver.relative_to(Path.cwd().resolve()))
        except ValueError:
            shown = str(zoo_driver)
        click.echo(f"(these scenarios are correct; to see what a find looks like: "
                   f"percpu-kmem stress {shlex.quote(shown)})")
        sys.exit(_exit_code(result))
    _finish(result, "stress", plan_doc, as_json, "stress")


# -- explore -------------------------------------------------------------------------------------

@main.command("explore", epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1)
@click.option("--depth", default="1-3", show_default=True, help="PCT depths: a depth or a range (1-3).")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="PCT's estimate of the run's length in contended steps (default: the policy's).")
@click.option("--exhaustive", "bound", type=click.IntRange(min=0), default=None, metavar="K",
              help="Instead of PCT: bounded exhaustive search, every schedule with at most K preemptions "
                   "(percpu_kmem/exhaustive.py).")
@click.option("--max-schedules", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="With --exhaustive: schedules to run at most per scenario.")
@click.option("--no-reduction", is_flag=True, help="With --exhaustive: no partial-order reduction.")
@_campaign_options
def explore_cmd(paths: tuple[str, ...], depth: str, steps: int | None, bound: int | None, max_schedules: int,
                no_reduction: bool, seeds: int | None, first_seed: int, cpus: str | None, jobs_n: int,
                dask: str | None, quiet: bool, as_json: bool) -> None:
    """Systematic search: PCT at every depth of a range, each over the seeds; or, with
    --exhaustive K, every schedule with at most K preemptions.

    PCT at depth d finds a bug that needs d-1 ordering constraints with a probability
    bounded below per run (Burckhardt et al.); a range of depths covers the shallow
    bugs cheaply and the deeper ones too. Seeds default to 100 per depth. The
    exhaustive search (CHESS-style iterative context bounding with sleep sets) runs in
    this process, scenario by scenario; it says whether it was complete.
    """
    scenarios = _load(paths)
    cpu_list = _parse_cpus(cpus)
    if bound is not None:
        _explore_exhaustive(scenarios, bound, max_schedules, not no_reduction, cpu_list, as_json)
    depths = _parse_depths(depth)
    n = seeds if seeds is not None else 100
    opts: dict[str, Any] = {} if steps is None else {"steps": steps}
    runs = [("pct", {"depth": d, **opts}, s) for d in depths for s in range(first_seed, first_seed + n)]
    result = _run_campaign(scenarios, label="explore", quiet=quiet, jobs_n=jobs_n, dask=dask, runs=runs,
                           cpus=cpu_list)
    plan_doc = {"scenarios": [sc.name for sc in scenarios], "policy": "pct", "depths": depths,
                "steps": steps, "seeds": [first_seed, first_seed + n], "cpus": cpu_list or "per scenario",
                "jobs": jobs_n, "dask": dask}
    _finish(result, "explore", plan_doc, as_json, f"explore (PCT depths {depths[0]}-{depths[-1]})")


def _trace_replay_command(name: str, trace: Trace, cpus: int, options: dict[str, Any] | None = None) -> str:
    """``percpu-kmem replay NAME --trace TRACE --cpus N``: the trace inline, or its saved file if long."""
    arg = str(trace) if len(trace) <= REPLAY_INLINE_MAX else str(save_trace(trace))
    cmd = f"percpu-kmem replay {shlex.quote(name)} --trace {shlex.quote(arg)} --cpus {cpus}"
    for k, v in sorted((options or {}).items()):
        cmd += f" --option {shlex.quote(f'{k}={v}')}"
    return cmd


def _explore_exhaustive(scenarios: list[StressScenario], bound: int, max_schedules: int, reduction: bool,
                        cpu_list: list[int] | None, as_json: bool) -> NoReturn:
    from .exhaustive import explore_exhaustive
    rows: list[dict[str, Any]] = []
    failing = 0
    interrupted = False
    try:
        for sc in scenarios:
            for c in cpu_list or [sc.machine.get("cpus", 1)]:
                machine = {k: v for k, v in sc.machine.items() if k != "cpus"}
                res = explore_exhaustive(sc.run, cpus=c, preemptions=bound, max_schedules=max_schedules,
                                         reduction=reduction, expect=sc.expect, **machine)
                failing += len(res.failures)
                cmd = None
                first = res.failures[0] if res.failures else None
                if first is not None and first.trace is not None and first.single_run:
                    cmd = _trace_replay_command(sc.name, first.trace, c)
                rows.append({"scenario": sc.name, "cpus": c, **res.as_dict(), "replay_command": cmd})
                if not as_json:
                    click.echo(f"{sc.name} (cpus={c}): {res}")
                    if cmd:
                        click.echo("replay it with:\n  " + cmd)
                    elif first is not None and not first.single_run:
                        # a trace replays one run of a machine: no `replay --trace` would repeat it
                        click.echo(f"({sc.name} runs its machine several times: a trace replays one run, so "
                                   f"no `percpu-kmem replay` command repeats this failure; its schedule does, "
                                   f"with percpu_kmem.exhaustive.replay_schedule above)")
    except KeyboardInterrupt:
        interrupted = True
    code = EXIT_FOUND if failing else EXIT_INTERRUPTED if interrupted else EXIT_CLEAN
    if as_json:
        _emit_json({"command": "explore", "mode": "exhaustive", "preemptions": bound, "reduction": reduction,
                    "interrupted": interrupted, "results": rows, "failing": failing, "exit_code": code})
    else:
        click.echo(("interrupted; " if interrupted else "")
                   + (f"{failing} failing schedule(s)" if failing else "nothing found")
                   + f" in {sum(r['schedules'] for r in rows)} schedules")
    sys.exit(code)


# -- replay --------------------------------------------------------------------------------------

def _run_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--seed", type=click.IntRange(min=0), default=None, help="The run's seed."),
        click.option("--policy", type=click.Choice(POLICIES), default=None,
                     help="The run's policy (default: random, or the trace's)."),
        click.option("--option", "options", multiple=True, metavar="NAME=VALUE",
                     help="A policy option (depth=2, mean_run=16, tick=20000, ...); repeatable."),
        click.option("--cpus", type=int, default=None, help="CPUs (default: the scenario's own)."),
        click.option("--trace", default=None, metavar="TRACE|FILE",
                     help="Replay a trace: its text ('pkt1 random seed=7 | ...') or a saved trace file."),
        click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout."),
    ]):
        fn = opt(fn)
    return fn


def _machine_args(seed: int | None, policy: str | None, options: Sequence[str], cpus: int | None,
                  trace: str | None) -> tuple[str, dict[str, Any], int, dict[str, Any]]:
    """(policy, options, seed, machine overrides) of the run to repeat."""
    opts = _parse_options(options)
    over: dict[str, Any] = {}
    if cpus is not None:
        if not 1 <= cpus <= MAX_CPUS:
            _usage(f"--cpus: {cpus} CPUs is not within 1..{MAX_CPUS}")
        over["cpus"] = cpus
    if trace is not None:
        tr = _read_trace(trace)
        if seed is not None and seed != tr.seed:
            _usage(f"--seed {seed} contradicts the trace's seed={tr.seed}")
        if policy is not None and policy != tr.policy:
            _usage(f"--policy {policy} contradicts the trace's policy {tr.policy}")
        over["replay"] = tr
        return tr.policy, opts, tr.seed, over
    if seed is None:
        _usage("give the run to repeat: --seed N (with --policy and --option as printed), or --trace")
    return policy or "random", opts, seed, over


def _read_trace(text: str) -> Trace:
    """A trace from its text or from a trace file (KmemUsageError for anything else)."""
    if text.lstrip().startswith(TRACE_MAGIC):
        return Trace.parse(text.strip())
    try:
        body = Path(text).read_text()
    except OSError as e:
        _usage(f"--trace {text!r} is neither a trace ('{TRACE_MAGIC} <policy> seed=<n> | ...') nor a readable "
               f"trace file: {e.strerror or e}")
    if not body.lstrip().startswith(TRACE_MAGIC):
        _usage(f"--trace file {text!r} does not hold a percpu_kmem trace (it starts with '{TRACE_MAGIC}')")
    return Trace.parse(body.strip())


def _report_json(r: Any) -> dict[str, Any]:
    return {"kind": r.kind, "text": r.text, "cpu": r.cpu, "task": r.task, "pid": r.pid,
            "preempt_count": r.preempt_count, "irqs_disabled": r.irqs_disabled, "step": r.step, "count": r.count,
            "stack": [{"function": f.function, "file": f.file, "line": f.line} for f in r.stack]}


def _multi_run(m: Machine) -> bool:
    tr = m.last_trace
    return tr is not None and tr.seed != m.seed


#: How many events ``replay --events`` shows by default (those leading to the first report).
EVENTS_LAST = 40


def _event_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--events", "events", is_flag=True,
                     help=f"Also print the run's event log (locks, allocations, frees, interrupts, sleeps, "
                          f"wake-ups, decisions, with the simulated line): the last {EVENTS_LAST} events up to "
                          f"the first report (the end of the run when there is none), without the model's own "
                          f"locks."),
        click.option("--events-all", is_flag=True, help="With the event log: every event of the run."),
        click.option("--events-last", type=click.IntRange(min=1), default=None, metavar="N",
                     help=f"With the event log: the last N events (default {EVENTS_LAST}; implies --events)."),
        click.option("--events-task", default=None, metavar="TASK",
                     help="With the event log: one task's events ('comm/pid', a comm or a pid; implies --events)."),
        click.option("--events-kind", multiple=True, type=click.Choice(EVENT_KINDS),
                     help="With the event log: only events of this kind (repeatable; implies --events)."),
        click.option("--events-model", is_flag=True,
                     help="With the event log: keep the model's own locks (zone->lock, the caches' locks)."),
    ]):
        fn = opt(fn)
    return fn


def _event_view(m: Machine, events_all: bool, last: int | None, task: str | None, kinds: tuple[str, ...],
                model: bool) -> tuple[Any, dict[str, Any]]:
    """The filtered event log of the replayed run and the filter that made it. Without
    --events-all: up to the first report of the logged run (the log holds the machine's last
    run), the last ``last`` (default EVENTS_LAST) of them."""
    task_arg: Any = int(task) if task is not None and task.isdigit() else task
    if task_arg is not None and not len(m.event_log(task=task_arg)):
        seen = sorted({ev.task for ev in m.event_log() if ev.task != "-"})
        _usage(f"--events-task {task!r}: no such task in the run (its tasks: {', '.join(seen) or 'none'})")
    first = None
    if not events_all:
        reports = m.event_log(kind="report")
        first = reports[0].ref if len(reports) else None
    n = None if events_all and last is None else (last or EVENTS_LAST)
    view = m.event_log(task=task_arg, kind=list(kinds) or None, model=model, last=n, before=first)
    shown = {"up_to": (f"the first report ({first.kind}, step {first.step})" if first is not None
                       else "the end of the run"), "last": n, "task": task, "kinds": list(kinds) or None,
             "model_locks": model, "total": len(m.event_log())}
    return view, shown


@main.command("replay", epilog=EXIT_CODES_HELP)
@click.argument("scenario")
@_run_options
@_event_options
def replay_cmd(scenario: str, seed: int | None, policy: str | None, options: tuple[str, ...], cpus: int | None,
               trace: str | None, as_json: bool, events: bool, events_all: bool, events_last: int | None,
               events_task: str | None, events_kind: tuple[str, ...], events_model: bool) -> None:
    """Rerun one run of SCENARIO and print its dmesg and reports with their stacks.

    Give the run as `stress` printed it (--seed, --policy, --option, --cpus): the
    scenario runs again on a fresh machine with the same arguments, so the same
    reports come back. Or give --trace, a trace text or a saved trace file (long
    traces are saved under .percpu_kmem/): the machine follows its decisions (a
    scenario that runs its machine several times replays the first run from the
    trace). Exit code 1 when the run fails, 0 when it is clean.

    --events adds the readable trace of the run (the machine records its event log,
    which changes nothing of the run): by default the last 40 events leading to the
    first report; --events-all, --events-last, --events-task, --events-kind and
    --events-model choose others. A scenario that runs its machine several times
    logs its last run only.
    """
    want_events = events or events_all or events_last is not None or events_task is not None \
        or bool(events_kind) or events_model
    sc = _one(scenario)
    pol, opts, s, over = _machine_args(seed, policy, options, cpus, trace)
    if want_events:
        over["events"] = True
    m, out = execute(sc, pol, opts, s, **over)
    # the command that repeats this very run: from a trace, the trace (the seed alone runs
    # the policy's own schedule, e.g. the unshrunk one of a shrunk trace)
    cmd = (_trace_replay_command(sc.name, over["replay"], m.nr_cpus, opts) if trace is not None
           else replay_command(sc.name, pol, opts, s, m.nr_cpus))
    view, shown = _event_view(m, events_all, events_last, events_task, events_kind, events_model) \
        if want_events and m.events is not None else (None, None)
    if as_json:
        doc = {"command": "replay", "scenario": sc.name, "policy": pol, "options": opts, "seed": s,
               "cpus": m.nr_cpus, "failed": out.failed, "failure": out.failure, "error": out.error,
               "dmesg": list(m.dmesg), "reports": [_report_json(r) for r in m.reports],
               "trace": str(m.last_trace) if m.last_trace is not None else None,
               "replay_command": cmd, "exit_code": EXIT_FOUND if out.failed else EXIT_CLEAN}
        if want_events:
            doc["events"] = view.as_dicts() if view is not None else []
            doc["events_shown"] = shown
        _emit_json(doc)
        sys.exit(EXIT_FOUND if out.failed else EXIT_CLEAN)
    opts_s = " ".join(f"{k}={v}" for k, v in opts.items())
    click.echo(f"replay {sc.name}: policy={pol}{' ' + opts_s if opts_s else ''} seed={s} cpus={m.nr_cpus}"
               + (" (from a trace)" if trace is not None else ""))
    click.echo("\n-- dmesg --")
    for line in m.dmesg:
        click.echo(line)
    if m.reports:
        click.echo(f"\n-- {len(m.reports)} report(s) --")
        for r in m.reports:
            click.echo(f"\n[{r.kind}] CPU {r.cpu} {r.task} step {r.step}" + (f" (x{r.count})" if r.count > 1 else ""))
            click.echo(r.text)
            if r.stack and "Call Trace" not in r.text:
                click.echo("Call Trace:")
                for f in r.stack:
                    click.echo(str(f))
    if want_events:
        if view is None or shown is None:
            click.echo("\n-- events: none (the scenario ran no m.run()) --")
        else:
            click.echo(f"\n-- events: {len(view)} of {shown['total']}, up to {shown['up_to']}"
                       + ("" if shown["model_locks"] else ", without the model's own locks") + " --")
            if len(view):
                click.echo(str(view))
    if out.error:
        click.echo("\n-- the scenario failed --\n" + out.error)
    click.echo(f"\nverdict: {out.failure or 'clean'}")
    sys.exit(EXIT_FOUND if out.failed else EXIT_CLEAN)


# -- shrink --------------------------------------------------------------------------------------

@main.command("shrink", epilog=EXIT_CODES_HELP)
@click.argument("scenario")
@_run_options
@click.option("--max-runs", type=click.IntRange(min=1), default=300, show_default=True,
              help="Scenario runs the shrinker may spend.")
def shrink_cmd(scenario: str, seed: int | None, policy: str | None, options: tuple[str, ...], cpus: int | None,
               trace: str | None, as_json: bool, max_runs: int) -> None:
    """Shrink a failing run's schedule: fewer preemptions, interrupts and steps, the same failure.

    The run is given as for `replay`. Prints the original and the shrunk trace and the
    command that replays the shrunk run. Exit code 1 (the failure is there, smaller);
    2 when the run does not fail or cannot be shrunk (free-running, several runs).
    """
    sc = _one(scenario)
    pol, opts, s, over = _machine_args(seed, policy, options, cpus, trace)
    if pol == "free":
        _usage("shrink: free-running runs record no schedule; give a deterministic policy")
    m, out = execute(sc, pol, opts, s, **over)
    if not out.failed:
        _usage(f"shrink: {sc.name} does not fail under policy={pol} seed={s}: nothing to shrink")
    if m.last_trace is None:
        _usage(f"shrink: {sc.name} fails before its machine runs ({out.failure}): there is no schedule to "
               f"shrink (`percpu-kmem replay` shows the failure)")
    if _multi_run(m):
        _usage(f"shrink: {sc.name} runs its machine several times; the shrinker replays one run "
               f"(make the scenario one m.run(...))")
    res = shrink_run(sc.run, m, max_runs=max_runs)
    shrunk = str(res.trace)
    cmd = _trace_replay_command(sc.name, res.trace, m.nr_cpus, opts)
    if as_json:
        _emit_json({"command": "shrink", "scenario": sc.name, "failure": list(res.failure),
                    "original": {"trace": str(res.original), "decisions": len(res.original),
                                 "preemptions": res.original.preemptions},
                    "shrunk": {"trace": shrunk, "decisions": len(res.trace), "preemptions": res.preemptions,
                               "steps": res.steps},
                    "runs": res.runs, "replay_command": cmd, "hint": res.hint, "exit_code": EXIT_FOUND})
        sys.exit(EXIT_FOUND)
    click.echo(f"failure: {res.failure[0]} {res.failure[1]}")
    click.echo(f"\noriginal: {res.original.preemptions} preemptions, {len(res.original)} decisions\n"
               f"  {res.original}")
    click.echo(f"\nshrunk in {res.runs} runs: {res.preemptions} preemptions, {len(res.trace)} decisions\n  {shrunk}")
    click.echo("\nreplay the shrunk run with:\n  " + cmd)
    sys.exit(EXIT_FOUND)


# -- proc ----------------------------------------------------------------------------------------

@main.command("proc", epilog=EXIT_CODES_HELP)
@click.argument("scenario", required=False)
@_run_options
@click.option("--file", "files", multiple=True, type=click.Choice(PROC_FILES),
              help="A /proc file to print (repeatable; default: all of them).")
@click.option("--memory", default=None, help="Memory of a fresh machine (64M, 1G; default the Machine's).")
def proc_cmd(scenario: str | None, seed: int | None, policy: str | None, options: tuple[str, ...],
             cpus: int | None, trace: str | None, as_json: bool, files: tuple[str, ...], memory: str | None) -> None:
    """Print /proc views (slabinfo, buddyinfo, meminfo, vmallocinfo, zoneinfo, vmstat, lock_stat).

    After a run of SCENARIO (given as for `replay`; --seed defaults to 0), or of a
    freshly booted machine when no scenario is given (--cpus, --memory).
    """
    out: Outcome | None = None
    if scenario is not None:
        sc = _one(scenario)
        pol, opts, s, over = _machine_args(0 if seed is None and trace is None else seed, policy, options, cpus, trace)
        if memory is not None:
            over["memory"] = memory
        m, out = execute(sc, pol, opts, s, **over)
    else:
        if trace is not None or seed is not None or options:
            _usage("proc: --seed, --option and --trace describe a run of a scenario: name the scenario")
        kw: dict[str, Any] = {"cpus": cpus if cpus is not None else 2}
        if memory is not None:
            kw["memory"] = memory
        m = Machine(**kw)
    views: dict[str, str] = {}
    for name in files or PROC_FILES:
        try:
            views[name] = m.proc(name)
        except KmemUsageError:
            continue
    code = EXIT_FOUND if out is not None and out.failed else EXIT_CLEAN
    if as_json:
        _emit_json({"command": "proc", "scenario": scenario, "failure": out.failure if out else None,
                    "proc": views, "exit_code": code})
        sys.exit(code)
    for name, text in views.items():
        click.echo(f"==> /proc/{name} <==")
        click.echo(text.rstrip("\n"))
        click.echo("")
    if out is not None and out.failed:
        click.echo(f"(the run failed: {out.failure}; `percpu-kmem replay` shows it)", err=True)
    sys.exit(code)


# -- study ---------------------------------------------------------------------------------------

#: The configurations ``study`` compares when no --config is given.
STUDY_CONFIGS = ("default", "no-percpu")
#: The largest CPU count run_study takes (its own check; the Machine takes up to MAX_CPUS).
STUDY_MAX_CPUS = 64


def _study_list(as_json: bool) -> NoReturn:
    if as_json:
        _emit_json({"command": "study", "workloads": [{"name": w.name, "doc": w.doc, "params": dict(w.params)}
                                                      for w in WORKLOADS.values()],
                    "configs": [c.describe() for c in PRESETS.values()], "default_configs": list(STUDY_CONFIGS)})
        sys.exit(EXIT_CLEAN)
    con = _console()
    wl = Table(title="workloads (percpu-kmem study --workload NAME --param KEY=VALUE)", title_justify="left")
    for col in ("workload", "params (defaults)", "what"):
        wl.add_column(col, overflow="fold")
    for w in WORKLOADS.values():
        wl.add_row(w.name, ", ".join(f"{k}={v}" for k, v in w.params.items()) or "-", w.doc.replace("``", ""))
    con.print(wl)
    cf = Table(title=f"configurations (--config NAME, repeatable; default {' and '.join(STUDY_CONFIGS)})",
               title_justify="left")
    cf.add_column("config")
    cf.add_column("knobs (the kernel's default otherwise)", overflow="fold")
    for c in PRESETS.values():
        knobs = {k: v for k, v in c.describe().items() if k != "name"}
        cf.add_row(c.name, ", ".join(f"{k}={v}" for k, v in knobs.items()) or "-")
    con.print(cf)
    sys.exit(EXIT_CLEAN)


def _writable(path: str, flag: str) -> None:
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        _usage(f"{flag} {path!r}: the folder {str(parent)!r} does not exist")


@main.command("study", epilog="Exit codes: 0 the study ran; 1 a point recorded a kernel report (its numbers "
                               "measure a buggy run); 2 usage error; 130 interrupted (Ctrl-C).")
@click.option("--workload", type=click.Choice(list(WORKLOADS)), default="threadtest", show_default=True,
              help="The workload to sweep (--list shows them).")
@click.option("--cpus", default="1,2,4,8", show_default=True, metavar="N[,N...]", help="CPU counts.")
@click.option("--config", "configs", multiple=True, type=click.Choice(list(PRESETS)),
              help=f"A configuration to compare (repeatable; default: {', '.join(STUDY_CONFIGS)}).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Seeds per point (seeds 0..N-1; the table shows their means).")
@click.option("--ops", type=click.IntRange(min=1), default=200, show_default=True, help="Operations per CPU.")
@click.option("--memory", default="128M", show_default=True, help="Each machine's memory.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="A workload parameter (repeatable; values are Python literals: size=256).")
@click.option("--csv", "csv_path", default=None, metavar="PATH", help="Write every point to a CSV file.")
@click.option("--plot", "plot_path", default=None, metavar="PATH",
              help="Write a PNG of throughput and efficiency (needs the [plot] extra: matplotlib).")
@click.option("--list", "list_only", is_flag=True, help="List the workloads and configurations, run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def study_cmd(workload: str, cpus: str, configs: tuple[str, ...], seeds: int, ops: int, memory: str,
              params: tuple[str, ...], csv_path: str | None, plot_path: str | None, list_only: bool, quiet: bool,
              as_json: bool) -> None:
    """The scalability study: a workload swept over CPU counts and configurations, in
    virtual time (docs/scalability.md).

    Prints one row per (configuration, CPUs): throughput in operations per million
    virtual cycles, speedup, efficiency, the share of time spent spinning and the
    lock traffic per operation; then the Universal Scalability Law fit of each
    configuration (alpha: contention, beta: coherency, N*: the CPU count of peak
    throughput). --list shows the workloads, their parameters and the configurations.
    """
    if list_only:
        _study_list(as_json)
    cpu_list = _parse_cpus(cpus) or []
    if len(set(cpu_list)) != len(cpu_list):
        _usage(f"--cpus {cpus!r} names a CPU count twice")
    if max(cpu_list) > STUDY_MAX_CPUS:
        _usage(f"--cpus: the study runs at most {STUDY_MAX_CPUS} CPUs, got {max(cpu_list)}")
    kw = _parse_options(params, "--param", "size=256")
    known = WORKLOADS[workload].params
    unknown = sorted(set(kw) - set(known))
    if unknown:
        _usage(f"--param {', '.join(unknown)}: workload {workload!r} takes "
               + (", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "no parameter"))
    for k, v in kw.items():  # a value of the default's kind (batch=x was a TypeError deep in the sweep)
        default = known[k]
        want = (int, float) if isinstance(default, float) else type(default)
        if isinstance(v, bool) is not isinstance(default, bool) or not isinstance(v, want):
            _usage(f"--param {k}={v!r}: workload {workload!r} takes {type(default).__name__} values for {k} "
                   f"(default {default!r})")
    cfgs = list(configs) or list(STUDY_CONFIGS)
    if len(set(cfgs)) != len(cfgs):
        _usage("--config names a configuration twice")
    if csv_path is not None:
        _writable(csv_path, "--csv")
    if plot_path is not None:
        _writable(plot_path, "--plot")
        if importlib.util.find_spec("matplotlib") is None:
            _usage("--plot needs matplotlib: install the 'plot' extra (pip install 'percpu-kmem[plot]'); "
                   "the table, --csv and --json work without it")
    total = len(cpu_list) * len(cfgs) * seeds
    bar, advance = _progress(total, f"study {workload}", quiet, counter="points")
    step = None if advance is None else (lambda done, tot: advance(1, 0))
    try:
        if bar is None:
            res = run_study(workload, cpus=cpu_list, configs=cfgs, seeds=list(range(seeds)), ops=ops, memory=memory,
                            params=kw or None)
        else:
            with bar:
                res = run_study(workload, cpus=cpu_list, configs=cfgs, seeds=list(range(seeds)), ops=ops,
                                memory=memory, params=kw or None, progress=step)
    except KeyboardInterrupt:
        click.echo("study interrupted (Ctrl-C): no result (a study's table needs every point)", err=True)
        sys.exit(EXIT_INTERRUPTED)
    buggy = sorted({k for r in res.rows for k in r["reports"]})
    code = EXIT_FOUND if buggy else EXIT_CLEAN
    if csv_path is not None:
        res.to_csv(csv_path)
    if plot_path is not None:
        res.plot(plot_path)
    if as_json:
        _emit_json({"command": "study", **res.to_json(), "params": kw, "memory": memory, "csv": csv_path,
                    "plot": plot_path, "reports": buggy, "exit_code": code})
        sys.exit(code)
    click.echo(res.table().rstrip("\n"))
    for path, what in ((csv_path, "points"), (plot_path, "plot")):
        if path is not None:
            click.echo(f"{what} written to {path}")
    if buggy:
        click.echo(f"kernel reports during the study ({', '.join(buggy)}): its numbers measure a buggy run")
    sys.exit(code)


# -- zoo -----------------------------------------------------------------------------------------

#: The zoo's columns: the default campaign, or one deterministic policy.
ZOO_COLUMNS = (CAMPAIGN_COLUMN, *(p for p in POLICIES if p != "free"))

ZOO_EXIT_HELP = ("Exit codes (about the detectors, not about bugs found): 0 every available buggy driver was "
                 "found by its detector and no fixed twin was reported; 1 a driver was missed or a twin was "
                 "reported (a false positive); 2 usage error; 130 interrupted (Ctrl-C) before either.")


def _zoo_exit_code(res: ZooResult) -> int:
    if res.false_positives:
        return EXIT_FOUND
    if res.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FOUND if res.missed else EXIT_CLEAN


def _zoo_progress(drivers: list[ZooDriver], n_cols: int, n_seeds: int, twins: bool, quiet: bool
                  ) -> tuple[Progress | None, Callable[[Outcome], None] | None]:
    """A bar over the zoo's planned runs: a buggy column that finds its bug early counts its
    remaining seeds as done; unavailable drivers make no run and are left out."""
    ran = [d for d in drivers if not d.unavailable()]
    total = len(ran) * n_cols * n_seeds * (2 if twins else 1)
    bar, advance = _progress(total, "zoo", quiet, counter="runs  found: {task.fields[failing]}")
    if advance is None:
        return bar, None
    buggy = {d.buggy.name: d for d in ran}
    streak = [0]

    def on_run(out: Outcome) -> None:
        d = buggy.get(out.scenario)
        if d is None:  # a twin's run
            streak[0] = 0
            advance(1, 0)
            return
        streak[0] += 1
        if d.found_by(out):
            advance(1 + n_seeds - streak[0], 1)
            streak[0] = 0
        else:
            advance(1, 0)
            if streak[0] == n_seeds:
                streak[0] = 0
    return bar, on_run


def _select_drivers(all_drivers: list[ZooDriver], names: Sequence[str]) -> list[ZooDriver]:
    if not names:
        return all_drivers
    by_name = {d.name: d for d in all_drivers}
    unknown = [n for n in names if n.removesuffix(".py") not in by_name]
    if unknown:
        _usage(f"--driver {', '.join(unknown)}: no such zoo driver (the zoo has {', '.join(by_name)})")
    wanted = {n.removesuffix(".py") for n in names}
    return [d for d in all_drivers if d.name in wanted]


@main.command("zoo", epilog=ZOO_EXIT_HELP)
@click.option("--seeds", type=click.IntRange(min=1), default=ZOO_SEEDS, show_default=True,
              help="Seeds per column (a buggy driver runs until its first find).")
@click.option("--policy", "policies", multiple=True, type=click.Choice(ZOO_COLUMNS),
              help="A column: the default campaign or one policy with its default options "
                   "(repeatable; default: campaign). Found/missed is judged on the first.")
@click.option("--driver", "drivers", multiple=True, metavar="NAME",
              help="Only this driver (a file name of stress/zoo/, .py optional; repeatable).")
@click.option("--zoo-dir", default=None, metavar="FOLDER", help="Another folder of zoo drivers (default stress/zoo/).")
@click.option("--no-twins", is_flag=True, help="Do not run the fixed twins (no false-positive count).")
@click.option("--bugs", is_flag=True, help="Add each driver's bug (its docstring's first line) to the table.")
@click.option("--list", "list_only", is_flag=True, help="List the drivers, run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def zoo_cmd(seeds: int, policies: tuple[str, ...], drivers: tuple[str, ...], zoo_dir: str | None, no_twins: bool,
            bugs: bool, list_only: bool, quiet: bool, as_json: bool) -> None:
    """The bug zoo: every detector against the driver it is meant to catch (docs/zoo.md).

    Each buggy driver of stress/zoo/ runs until its detector reports it (at most
    --seeds runs per column); its fixed twin runs over every seed, and any failure
    of a twin is a false positive. Prints the detection table (found or not, seeds
    to the first find per column, the first failing seed, the twin's false
    positives) and the counts. The exit code judges the detectors: 0 means every
    available driver was found and no twin was reported.
    """
    if zoo_dir is not None and not Path(zoo_dir).is_dir():
        _usage(f"--zoo-dir {zoo_dir!r} is not a folder")
    all_drivers = load_zoo(zoo_dir)
    chosen = _select_drivers(all_drivers, drivers)
    if list_only:
        if as_json:
            _emit_json({"command": "zoo", "drivers": [{"driver": d.name, "bug": d.bug, "detector": d.detector,
                                                        "reports": list(d.reports), "unavailable": d.unavailable()}
                                                       for d in chosen]})
            sys.exit(EXIT_CLEAN)
        table = Table(title="zoo drivers (percpu-kmem zoo --driver NAME)", title_justify="left")
        for col in ("driver", "detector", "bug"):
            table.add_column(col, overflow="fold")
        for d in chosen:
            table.add_row(d.name, d.detector, d.bug + (f" ({d.unavailable()})" if d.unavailable() else ""))
        _console().print(table)
        sys.exit(EXIT_CLEAN)
    cols = list(policies) or [CAMPAIGN_COLUMN]
    if len(set(cols)) != len(cols):
        _usage("--policy names a column twice")
    bar, on_run = _zoo_progress(chosen, len(cols), seeds, not no_twins, quiet)
    if bar is None:
        res = run_zoo(chosen, seeds=seeds, policies=cols, twins=not no_twins)
    else:
        with bar:
            res = run_zoo(chosen, seeds=seeds, policies=cols, progress=on_run, twins=not no_twins)
    code = _zoo_exit_code(res)
    if as_json:
        _emit_json({"command": "zoo", **res.to_json(), "twins": not no_twins, "exit_code": code})
        sys.exit(code)
    click.echo(res.table(bugs=bugs))
    click.echo("")
    for dr in res.drivers:
        for c in dr.columns:
            for o in c.twin_failures[:1]:
                click.echo(f"false positive: {dr.driver.name}'s fixed twin failed ({o.failure}) under {c.column}; "
                           f"replay it with:\n  {o.replay_command()}")
        if not dr.unavailable and not dr.found and dr.columns and dr.columns[0].other is not None:
            o = dr.columns[0].other
            click.echo(f"{dr.driver.name}: not found by {dr.driver.detector}, but it failed otherwise ({o.failure}):"
                       f"\n  {o.replay_command()}")
    click.echo(res.summary() + ("" if not no_twins else " (twins not run)") + f" in {res.seconds:.1f} s")
    sys.exit(code)


# -- list and the built-in demonstrations ------------------------------------------------------------

@main.command("list")
@click.argument("paths", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def list_scenarios(paths: tuple[str, ...], as_json: bool) -> None:
    """List the stress scenarios (of PATHS, default stress/) and the built-in demonstrations."""
    scenarios = _load(paths)
    if as_json:
        _emit_json({"command": "list", "scenarios": [_scenario_json(sc) for sc in scenarios],
                    "demos": [{"name": d.name, "doc": d.doc} for d in SCENARIOS.values()]})
        return
    con = _console()
    table = Table(title="stress scenarios (percpu-kmem stress PATH)", title_justify="left")
    for col in ("scenario", "machine", "seeds", "what"):
        table.add_column(col, overflow="fold")
    for sc in scenarios:
        machine = ", ".join(f"{k}={v}" for k, v in sc.machine.items() if k != "fault_inject")
        if "fault_inject" in sc.machine:
            machine += ", fault_inject"
        table.add_row(sc.name, machine, str(sc.seeds), sc.doc)
    con.print(table)
    if not paths:
        demos = Table(title="built-in demonstrations (percpu-kmem run NAME [--fixed])", title_justify="left")
        demos.add_column("name")
        demos.add_column("what", overflow="fold")
        for d in SCENARIOS.values():
            demos.add_row(d.name, d.doc)
        con.print(demos)


@main.command("run", epilog=EXIT_CODES_HELP)
@click.argument("name", default=DEFAULT_SCENARIO, type=click.Choice(sorted(SCENARIOS)))
@click.option("--seeds", type=click.IntRange(min=1), default=200, show_default=True,
              help="How many seeds to explore.")
@click.option("--first-seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cpus", type=click.IntRange(1, MAX_CPUS), default=2, show_default=True)
@click.option("--tasks", type=click.IntRange(min=1), default=None, help="Kernel threads (default: the demo's).")
@click.option("--iterations", type=click.IntRange(min=1), default=None)
@click.option("--policy", default="random", show_default=True, type=click.Choice(POLICIES))
@click.option("--fixed", is_flag=True, help="Run the corrected version of the demonstration.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def run(name: str, seeds: int, first_seed: int, cpus: int, tasks: int | None, iterations: int | None,
        policy: str, fixed: bool, as_json: bool) -> None:
    """Run built-in demonstration NAME over seeds (each has a bug; --fixed runs its fix)."""
    t0 = time.perf_counter()
    res = explore_scenario(name, seeds=range(first_seed, first_seed + seeds), cpus=cpus, policy=policy,
                           tasks=tasks, iterations=iterations, fixed=fixed)
    dt = time.perf_counter() - t0
    code = EXIT_FOUND if res["buggy_seeds"] else EXIT_CLEAN
    if as_json:
        _emit_json({"command": "run", "fixed": fixed, "seconds": dt, "exit_code": code, **res})
        sys.exit(code)
    click.echo(f"demonstration {name} ({'fixed' if fixed else 'buggy'}): {res['runs']} runs, policy={policy}, "
               f"cpus={cpus}, {res['runs'] / dt:.0f} runs/s")
    click.echo(f"runs showing a bug: {len(res['buggy_seeds'])}/{res['runs']}")
    for kind, n in sorted(res["report_kinds"].items()):
        click.echo(f"  {kind}: {n} reports")
    first = res["first"]
    if first:
        click.echo(f"\nfirst failing seed: {first['seed']}  result: {first['result']}")
        for text in first["reports"][:3]:
            click.echo("\n" + text)
        if first["replay"]:
            click.echo("\n" + first["replay"])
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = ["EXIT_CLEAN", "EXIT_FOUND", "EXIT_USAGE", "EXIT_INTERRUPTED", "PROC_FILES", "seed_ranges", "main",
           "stress_cmd", "explore_cmd", "replay_cmd", "shrink_cmd", "proc_cmd", "study_cmd", "zoo_cmd",
           "list_scenarios", "run"]
