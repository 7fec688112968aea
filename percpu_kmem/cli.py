"""The ``percpu-kmem`` command: stress campaigns, replay, systematic search, shrinking, /proc.

    percpu-kmem stress                          # the default scenarios of stress/, the default campaign
    percpu-kmem stress my_driver.py::probe --seeds 1000 --cpus 2,4 --jobs 4
    percpu-kmem replay my_driver.py::probe --seed 17 --policy pct --option depth=2 --cpus 2
    percpu-kmem explore my_driver.py::probe --depth 1-3 --seeds 200
    percpu-kmem shrink my_driver.py::probe --seed 17 --policy pct --option depth=2
    percpu-kmem proc stress/vmalloc_churn.py --file vmallocinfo
    percpu-kmem list

Every subcommand takes ``--json`` (one JSON document on stdout). Exit codes: 0 nothing
found (a clean campaign, a clean replay), 1 something found (a failing run), 2 a usage
error (a bad option, a missing file, a bad trace: a message, never a traceback), 130
a campaign interrupted by Ctrl-C before it found anything (what it ran is printed).
docs/cli.md describes every subcommand and the JSON shapes.

The campaign logic lives in percpu_kmem/campaign.py and percpu_kmem/parallel.py; this
module parses, runs and prints.
"""

from __future__ import annotations

import ast
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
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


@click.group(cls=_Group, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="percpu_kmem")
def main() -> None:
    """percpu_kmem: the kernel's memory allocation on a simulated SMP machine.

    Stress campaigns over thousands of schedules, the replay of a failing run, the
    systematic search, schedule shrinking and /proc views. `percpu-kmem stress` runs
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


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.isidentifier():
            _usage(f"--option takes name=value (e.g. depth=2), got {pair!r}")
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


def _progress(total: int, label: str, quiet: bool) -> tuple[Progress | None, Callable[[int, int], None] | None]:
    err = Console(stderr=True)
    if quiet or not err.is_terminal:
        return None, None
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("runs  failing: {task.fields[failing]}"), TimeElapsedColumn(),
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
    if bar is None:
        return run_parallel(scenarios, jobs_n=jobs_n, dask=dask, **plan)
    with bar:
        return run_parallel(scenarios, jobs_n=jobs_n, dask=dask, progress=advance, **plan)


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
                if res.failures and res.failures[0].trace is not None:
                    cmd = _trace_replay_command(sc.name, res.failures[0].trace, c)
                rows.append({"scenario": sc.name, "cpus": c, **res.as_dict(), "replay_command": cmd})
                if not as_json:
                    click.echo(f"{sc.name} (cpus={c}): {res}")
                    if cmd:
                        click.echo("replay it with:\n  " + cmd)
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


@main.command("replay", epilog=EXIT_CODES_HELP)
@click.argument("scenario")
@_run_options
def replay_cmd(scenario: str, seed: int | None, policy: str | None, options: tuple[str, ...], cpus: int | None,
               trace: str | None, as_json: bool) -> None:
    """Rerun one run of SCENARIO and print its dmesg and reports with their stacks.

    Give the run as `stress` printed it (--seed, --policy, --option, --cpus): the
    scenario runs again on a fresh machine with the same arguments, so the same
    reports come back. Or give --trace, a trace text or a saved trace file (long
    traces are saved under .percpu_kmem/): the machine follows its decisions (a
    scenario that runs its machine several times replays the first run from the
    trace). Exit code 1 when the run fails, 0 when it is clean.
    """
    sc = _one(scenario)
    pol, opts, s, over = _machine_args(seed, policy, options, cpus, trace)
    m, out = execute(sc, pol, opts, s, **over)
    cmd = replay_command(sc.name, pol, opts, s, m.nr_cpus)
    if as_json:
        _emit_json({"command": "replay", "scenario": sc.name, "policy": pol, "options": opts, "seed": s,
                    "cpus": m.nr_cpus, "failed": out.failed, "failure": out.failure, "error": out.error,
                    "dmesg": list(m.dmesg), "reports": [_report_json(r) for r in m.reports],
                    "trace": str(m.last_trace) if m.last_trace is not None else None,
                    "replay_command": cmd, "exit_code": EXIT_FOUND if out.failed else EXIT_CLEAN})
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
           "stress_cmd", "explore_cmd", "replay_cmd", "shrink_cmd", "proc_cmd", "list_scenarios", "run"]
