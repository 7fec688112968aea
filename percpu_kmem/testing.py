"""Helpers for testing simulated kernel code under many schedules.

    from percpu_kmem.testing import explore
    def scenario(m):
        m.run(producer, consumer)
        assert ...
    explore(scenario, seeds=range(50), policies=("random", "pct"), cpus=2)

Verdicts you can trust: a run fails when the scenario raises, when ``m.check()``
finds an inconsistency, *and* when the machine recorded a kernel report (BUG,
WARNING, Oops, deadlock, ...) the scenario did not declare with ``expect=``.
A machine records reports by default (``on_bug="record"``), so without this a
sleep-in-atomic splat in a passing scenario would go unseen. Every failure
carries the policy, the seed and the replay string (``m.replay_hint()``).

What is kept and what is simplified: ``expect`` names report *kinds*
(``Report.kind``), not texts or counts; expected kinds are allowed, not
required (a scenario that must show a report asserts on ``m.reports_of``).
``find_seed`` runs no ``m.check()``: a bug-finding run may leave the simulated
kernel's own data wrong on purpose.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, overload

from .machine import Machine
from .runtime.errors import InconsistentState, KmemError, KmemUsageError
from .runtime.machine import state_dir
from .runtime.policies import POLICIES
from .runtime.report import Report

DEFAULT_POLICIES = ("random", "pct")
#: The default campaign: the policies and options ``explore(policies=None)`` rotates over,
#: one entry per seed, swarm-testing style. Random walks find atomicity violations in short
#: bursts and deeper orderings in long runs; PCT at depths 1 to 3 finds ordering bugs of
#: that depth; the virtual-time policy with a short tick preempts where tasks outnumber CPUs.
#: Every run replays from its seed: the hint carries the policy and its options.
#: Half the entries are PCT at depths 2 and 3, sized to the scenario (:func:`pct_steps_of`):
#: an ordering of three events across three tasks is found about once in 70 such runs
#: (docs/zoo.md), while the random walks find the zoo's other bugs within a few seeds.
CAMPAIGN: tuple[tuple[str, dict[str, Any]], ...] = (
    ("random", {}),
    ("pct", {"depth": 2}),
    ("random", {"mean_run": 1, "preempt_prob": 0.1}),
    ("pct", {"depth": 3}),
    ("random", {"mean_run": 16, "preempt_prob": 0.3}),
    ("pct", {"depth": 2}),
    ("pct", {"depth": 3}),
    ("virtual", {"tick": 20_000}),
)
#: The probe run that sizes PCT to a scenario: seed 0, no change point, room for any run.
PCT_PROBE: dict[str, Any] = {"depth": 1, "steps": 1_000_000}
#: PCT's smallest sized step count.
PCT_MIN_STEPS = 10
#: Scenario runs a failure's schedule shrinking may take (0: do not shrink).
SHRINK_RUNS = 60
#: Where explore() keeps the runs that failed, to rerun them first next time (under
#: ``$PERCPU_KMEM_DIR`` or ``.percpu_kmem/`` of the working directory).
FAILURES_FILE = "failures.json"
#: How many failures are kept per scenario.
FAILURES_KEPT = 8
#: Seeds ``explore`` runs per policy when called with ``seeds=None``.
DEFAULT_SEEDS = 20
#: The environment variable ``--kmem-seeds`` sets; it replaces ``DEFAULT_SEEDS``.
SEEDS_ENV = "PERCPU_KMEM_SEEDS"


class UnexpectedReport(KmemError):
    """A run recorded a kernel report of a kind the scenario did not ``expect``.

    ``str()`` starts with the first unexpected report's text (the splat a kernel
    developer reads), then names the policy, the seed and the replay.

    Attributes:
        report: the first unexpected report.
        reports: every unexpected report of the run, in order.
        policy, seed: the run that recorded them.
        expect: the kinds the scenario declared.
        replay: ``m.replay_hint()`` of the run.
    """

    def __init__(self, reports: list[Report], *, policy: str, seed: int, expect: frozenset[str],
                 replay: str, where: str) -> None:
        self.reports = tuple(reports)
        self.report = reports[0]
        self.policy = policy
        self.seed = seed
        self.expect = expect
        self.replay = replay
        first = self.report
        said = ", ".join(repr(k) for k in sorted(expect)) if expect else "none"
        lines = [first.text,
                 f"{where}: unexpected {first.kind!r} report under policy={policy!r} seed={seed} "
                 f"(expected kinds: {said})"]
        if len(reports) > 1:
            lines.append(f"{where}: {len(reports) - 1} more unexpected: {_kinds_summary(reports[1:])}")
        lines.append(replay)
        super().__init__("\n".join(lines))


@dataclass
class ExploreStats:
    """What one ``explore(..., stats=True)`` campaign did: ``str()`` for people, ``as_dict()`` for JSON.

    Attributes:
        runs: scenario runs made (remembered failures rerun first included).
        elapsed: wall seconds of the campaign.
        schedules: hashes of the distinct schedules run (a trace's decisions; free-running
            runs record none and are counted in ``unrecorded``).
        policies: per policy and options (``"pct depth=2 steps=41"``), the runs made.
        reports: per report kind, how many runs recorded one and the first such run
            (policy, options, seed); the failing run's reports included.
        failure: the failing run (kind, policy, options, seed), None if every run passed.
    """

    runs: int = 0
    elapsed: float = 0.0
    schedules: set[int] = field(default_factory=set)
    unrecorded: int = 0
    policies: dict[str, int] = field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    failure: dict[str, Any] | None = None

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def distinct_schedules(self) -> int:
        return len(self.schedules)

    def _record(self, m: Machine, policy: str, options: dict[str, Any], seed: int) -> None:
        self.runs += 1
        pol = getattr(m.engine, "policy", None)
        if policy == "pct" and pol is not None:  # the parameters PCT ran with, defaults included
            options = {**options, "depth": getattr(pol, "depth", "?"), "steps": getattr(pol, "steps", "?")}
        label = " ".join([policy, *(f"{k}={v}" for k, v in sorted(options.items()))])
        self.policies[label] = self.policies.get(label, 0) + 1
        trace = m.last_trace
        if trace is None or m.policy_name == "free":
            self.unrecorded += 1
        else:
            self.schedules.add(hash(tuple(trace.decisions)))
        for kind in dict.fromkeys(r.kind for r in m.reports):
            entry = self.reports.get(kind)
            if entry is None:
                self.reports[kind] = {"runs": 1, "first": {"policy": policy, "options": dict(options), "seed": seed}}
            else:
                entry["runs"] += 1

    def as_dict(self) -> dict[str, Any]:
        """The numbers for JSON (the command line prints them)."""
        return {"mode": "explore", "runs": self.runs, "elapsed": round(self.elapsed, 3),
                "runs_per_second": round(self.runs_per_second, 1),
                "distinct_schedules": self.distinct_schedules, "unrecorded_schedules": self.unrecorded,
                "policies": dict(self.policies),
                "reports": {k: {"runs": v["runs"], "first": dict(v["first"])} for k, v in self.reports.items()},
                "failure": dict(self.failure) if self.failure is not None else None}

    def __str__(self) -> str:
        lines = [f"explore: {self.runs} runs in {self.elapsed:.2f} s ({self.runs_per_second:.1f} runs/s), "
                 f"{self.distinct_schedules} distinct schedules"
                 + (f" (+{self.unrecorded} free-running, unrecorded)" if self.unrecorded else "")]
        for label, n in self.policies.items():
            lines.append(f"  {label}: {n} runs")
        for kind, v in self.reports.items():
            f = v["first"]
            opts = "".join(f" {k}={x}" for k, x in sorted(f["options"].items()))
            lines.append(f"  report {kind!r}: {v['runs']} runs, first under policy={f['policy']}{opts} "
                         f"seed={f['seed']}")
        if self.failure is not None:
            f = self.failure
            lines.append(f"  FAILED: {f['kind']} under policy={f['policy']} seed={f['seed']}")
        else:
            lines.append("  no failure")
        return "\n".join(lines)


def _kinds_summary(reports: Iterable[Report]) -> str:
    """Each kind once, in first-seen order, with its number of reports: ``'a' x3, 'b'``."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r.kind] = counts.get(r.kind, 0) + 1
    return ", ".join(f"{k!r} x{n}" if n > 1 else repr(k) for k, n in counts.items())


def seeds_from_env(default: int = DEFAULT_SEEDS) -> range:
    """The seed range to explore: ``range(N)``, N from ``PERCPU_KMEM_SEEDS`` (``--kmem-seeds``), else ``default``."""
    raw = os.environ.get(SEEDS_ENV)
    if raw is None or raw.strip() == "":
        return range(default)
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise KmemUsageError(f"{SEEDS_ENV}(={raw!r}) must be a positive number of seeds")
    return range(n)


def _seed_list(seeds: Iterable[int] | None, name: str) -> tuple[int, ...]:
    if seeds is None:
        return tuple(seeds_from_env(DEFAULT_SEEDS))
    if isinstance(seeds, (int, str, bytes)) or not isinstance(seeds, Iterable):
        raise KmemUsageError(f"{name}(seeds={seeds!r}) takes an iterable of ints, e.g. range(50)")
    out = tuple(seeds)
    for s in out:
        if not isinstance(s, int) or isinstance(s, bool):
            raise KmemUsageError(f"{name}(seeds=...) takes ints, got {s!r}")
    if not out:
        raise KmemUsageError(f"{name}(seeds=...) is empty: a run over no seeds cannot fail")
    return out


def _policy_list(policies: Iterable[str] | str) -> tuple[str, ...]:
    out = (policies,) if isinstance(policies, str) else tuple(policies)
    if not out:
        raise KmemUsageError("explore(policies=...) is empty: a run under no policy cannot fail")
    for p in out:
        if p not in POLICIES:
            raise KmemUsageError(f"explore(policies=...): {p!r} is not a policy ({', '.join(POLICIES)})")
    return out


def _expect_kinds(expect: str | Collection[str], name: str) -> frozenset[str]:
    kinds = (expect,) if isinstance(expect, str) else expect
    if not isinstance(kinds, Iterable):
        raise KmemUsageError(f"{name}(expect={expect!r}) takes a report kind or a collection of them")
    out = frozenset(kinds)
    for k in out:
        if not isinstance(k, str) or not k:
            raise KmemUsageError(f"{name}(expect=...) takes report kinds (Report.kind strings), got {k!r}")
    return out


def _check_machine_kw(machine_kw: dict[str, Any], name: str) -> None:
    for k, instead in (("policy", "policies"), ("seed", "seeds")):
        if k in machine_kw:
            raise KmemUsageError(f"{name}() chooses each run's {k} itself: pass {instead}=..., not {k}=")


def _unexpected(m: Machine, expected: frozenset[str]) -> list[Report]:
    return [r for r in m.reports if r.kind not in expected]


def _hint(m: Machine, policy: str, seed: int) -> str:
    if m.last_trace is not None:
        return m.replay_hint()
    return f"percpu_kmem: seed={seed} policy={policy}"


def _annotate(e: BaseException, m: Machine, policy: str, seed: int, expected: frozenset[str],
              where: str) -> None:
    """Add the run's identity, its replay and any unexpected report to a failure."""
    if isinstance(e, UnexpectedReport):
        return  # its message already names the run and the replay
    hint = _hint(m, policy, seed)
    notes = getattr(e, "__notes__", [])
    if hint not in notes:
        e.add_note(f"{where}: failed under policy={policy!r} seed={seed}")
        e.add_note(hint)
    unexpected = _unexpected(m, expected)
    if unexpected:
        first = unexpected[0]
        more = f" (and {len(unexpected) - 1} more: {_kinds_summary(unexpected[1:])})" if len(unexpected) > 1 else ""
        e.add_note(f"{where}: the run also recorded an unexpected {first.kind!r} report{more}:\n"
                   + first.text)


def _raise_unexpected(m: Machine, expected: frozenset[str], policy: str, seed: int, where: str) -> None:
    unexpected = _unexpected(m, expected)
    if unexpected:
        raise UnexpectedReport(unexpected, policy=policy, seed=seed, expect=expected,
                               replay=_hint(m, policy, seed), where=where)


@overload
def explore(scenario: Callable[[Machine], Any], *, seeds: Iterable[int] | None = ...,
            policies: Iterable[str] | str | None = ..., check: bool = ...,
            expect: str | Collection[str] = ..., shrink: bool = ..., stats: Literal[False] = ...,
            **machine_kw: Any) -> int: ...
@overload
def explore(scenario: Callable[[Machine], Any], *, seeds: Iterable[int] | None = ...,
            policies: Iterable[str] | str | None = ..., check: bool = ...,
            expect: str | Collection[str] = ..., shrink: bool = ..., stats: Literal[True],
            **machine_kw: Any) -> ExploreStats: ...
def explore(scenario: Callable[[Machine], Any], *, seeds: Iterable[int] | None = None,
            policies: Iterable[str] | str | None = DEFAULT_POLICIES, check: bool = True,
            expect: str | Collection[str] = (), shrink: bool = True, stats: bool = False,
            **machine_kw: Any) -> int | ExploreStats:
    """Run ``scenario(machine)`` on a fresh machine for every (policy, seed).

    ``scenario`` calls ``m.run(...)`` and asserts what must hold; ``m.check()``
    runs after it unless ``check=False``. Then every report in ``m.reports``
    whose kind is not in ``expect`` (a kind, or a collection of kinds) fails the
    run with :class:`UnexpectedReport`.

    ``seeds=None`` is the default range: ``range(DEFAULT_SEEDS)``, or
    ``range(N)`` under ``--kmem-seeds N`` / ``PERCPU_KMEM_SEEDS=N``. An explicit
    ``seeds`` is used as given. ``policies`` is a policy name or several, each run
    over every seed; ``policies=None`` is the default campaign (:data:`CAMPAIGN`):
    seed ``s`` runs under entry ``s % len(CAMPAIGN)`` (as on the command line). A PCT
    run without ``steps`` gets the count sized to the scenario (:func:`pct_steps_of`,
    one probe run).

    On a failure of a deterministic run (the scenario raised, or an unexpected
    report), the schedule is shrunk first (``shrink=True``, at most SHRINK_RUNS more
    runs, see percpu_kmem/shrink.py) and the note offers the shrunk replay.

    Returns the number of runs, or with ``stats=True`` an :class:`ExploreStats` (runs,
    runs per second, distinct schedules, runs per policy and options, reports by kind
    with the first seed of each). Raises the first failure, with notes carrying the
    policy, the seed and the replay; with ``stats=True`` the exception carries the
    campaign's statistics as ``e.explore_stats`` too.
    """
    if not callable(scenario):
        raise KmemUsageError(f"explore() takes a scenario callable, got {scenario!r}")
    seed_list = _seed_list(seeds, "explore")
    expected = _expect_kinds(expect, "explore")
    _check_machine_kw(machine_kw, "explore")
    if policies is None:
        plan = [(CAMPAIGN[seed % len(CAMPAIGN)], seed) for seed in seed_list]
    else:
        plan = [((policy, {}), seed) for policy in _policy_list(policies) for seed in seed_list]
    key = _scenario_key(scenario)
    planned = {(pp, json.dumps(oo, sort_keys=True), ss) for (pp, oo), ss in plan}
    remembered = [((p, o), s) for p, o, s in _failures_of(key) if (p, o, s) not in planned]
    plan = [((p, json.loads(o)), s) for (p, o), s in remembered] + plan  # earlier failures first
    if not isinstance(stats, bool):
        raise KmemUsageError(f"explore(stats={stats!r}) must be True or False")
    st = ExploreStats() if stats else None
    t0 = time.perf_counter()
    n = 0
    pct_steps = 0  # PCT's step count sized to the scenario (probed at the first PCT run)
    for (policy, options), seed in plan:
        opts = dict(options)
        if policy == "pct" and "steps" not in opts:
            if not pct_steps:
                pct_steps = pct_steps_of(scenario, **machine_kw)
            opts["steps"] = pct_steps
        m = Machine(policy=policy, seed=seed, **opts, **machine_kw)
        try:
            scenario(m)
            if check:
                try:
                    m.check()
                except InconsistentState:
                    # what a report left behind (an Oops killed a task holding a lock): the
                    # report is the verdict, the inconsistency its consequence (chained)
                    _raise_unexpected(m, expected, policy, seed, "explore")
                    raise
            _raise_unexpected(m, expected, policy, seed, "explore")
        except BaseException as e:
            if st is not None:
                st._record(m, policy, opts, seed)
                st.elapsed = time.perf_counter() - t0
                first = _unexpected(m, expected)
                st.failure = {"kind": first[0].kind if first and isinstance(e, UnexpectedReport)
                              else type(e).__name__, "policy": policy, "options": opts, "seed": seed}
                try:
                    e.explore_stats = st  # type: ignore[attr-defined]
                except AttributeError:
                    pass
            _annotate(e, m, policy, seed, expected, "explore")
            if isinstance(e, Exception):
                _remember_failure(key, policy, options, seed)
                if shrink:
                    _offer_shrunk(e, scenario, m)
            raise
        if st is not None:
            st._record(m, policy, opts, seed)
        n += 1
    if st is not None:
        st.elapsed = time.perf_counter() - t0
        return st
    return n


def pct_steps_of(scenario: Callable[[Machine], Any], **machine_kw: Any) -> int:
    """PCT's step count sized to ``scenario``: the contended steps (where more than one task
    could run) of one probe run under PCT with seed 0 and no change point, at least
    PCT_MIN_STEPS. PCT draws its change points in ``[1, steps]``, so a count much larger
    than the run puts most of them after its end (the paper's ``k``).

    Deterministic: every campaign run of the scenario gets the same count, however the
    runs are split between processes. A probe that fails still counted its steps.
    """
    m = Machine(policy="pct", seed=0, **PCT_PROBE, **machine_kw)
    try:
        scenario(m)
    except Exception:  # the probe only counts; the campaign's own runs give the verdicts
        pass
    return max(PCT_MIN_STEPS, getattr(getattr(m.engine, "policy", None), "pct_step", 0))


def _scenario_key(scenario: Callable[..., Any]) -> str:
    """A scenario's name across processes: its module and qualified name."""
    return f"{getattr(scenario, '__module__', '?')}:{getattr(scenario, '__qualname__', repr(scenario))}"


def _failures_path() -> Path:
    return state_dir() / FAILURES_FILE


def _load_failures() -> dict[str, list[list[Any]]]:
    try:
        data = json.loads(_failures_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _failures_of(key: str) -> list[tuple[str, str, int]]:
    """The remembered failing runs of a scenario: (policy, options as JSON, seed)."""
    out = []
    for item in _load_failures().get(key, []):
        if (isinstance(item, list) and len(item) == 3 and item[0] in POLICIES and isinstance(item[1], str)
                and isinstance(item[2], int)):
            out.append((item[0], item[1], item[2]))
    return out


def _remember_failure(key: str, policy: str, options: dict[str, Any], seed: int) -> None:
    """Keep a failing run so that the next explore() of the scenario reruns it first
    (as shuttle's failure persistence and Hypothesis's example database do)."""
    data = _load_failures()
    entry = [policy, json.dumps(options, sort_keys=True), seed]
    runs = [e for e in data.get(key, []) if e != entry]
    data[key] = [entry, *runs][:FAILURES_KEPT]
    try:
        path = _failures_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only checkout: the failure is still raised, only not remembered


def forget_failures(scenario: Callable[..., Any] | None = None) -> None:
    """Forget the remembered failures of ``scenario`` (of every scenario with None)."""
    data = _load_failures()
    if scenario is None:
        data = {}
    else:
        data.pop(_scenario_key(scenario), None)
    try:
        _failures_path().write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass


def _offer_shrunk(e: Exception, scenario: Callable[[Machine], Any], m: Machine) -> None:
    """Shrink the failing schedule and add its replay to the failure's notes."""
    trace = m.last_trace
    if m.policy_name == "free" or trace is None or SHRINK_RUNS <= 0:
        return
    if not any(d.action in "PI" for d in trace.decisions):
        return  # no preemption or interrupt to take out: the schedule is as small as it gets
    from .shrink import shrink
    try:
        res = shrink(scenario, m, max_runs=SHRINK_RUNS)
    except KmemUsageError:
        return  # it does not fail again on a replay (it depends on something outside the machine)
    e.add_note(f"explore: shrunk to {res.preemptions} preemption(s) and {len(res.trace)} decisions "
               f"(from {res.original.preemptions} and {len(res.original)}); replay the shrunk run with:")
    e.add_note(res.hint)


def find_seed(scenario: Callable[[Machine], bool | None], *, seeds: Iterable[int] = range(200),
              policy: str = "random", expect: str | Collection[str] = (),
              **machine_kw: Any) -> tuple[int, Machine] | None:
    """The first seed under which the bug shows, with its machine; None if no seed shows it.

    The bug shows when ``scenario(m)`` returns True; a scenario that returns None
    leaves the verdict to the reports: the bug shows when ``m`` recorded a report
    of a kind in ``expect``. Reports of any other kind fail the search with
    :class:`UnexpectedReport`, as an exception from the scenario does.
    """
    if not callable(scenario):
        raise KmemUsageError(f"find_seed() takes a scenario callable, got {scenario!r}")
    seed_list = _seed_list(seeds, "find_seed")
    if policy not in POLICIES:
        raise KmemUsageError(f"find_seed(policy={policy!r}) must be one of {', '.join(POLICIES)}")
    expected = _expect_kinds(expect, "find_seed")
    _check_machine_kw(machine_kw, "find_seed")
    for seed in seed_list:
        m = Machine(policy=policy, seed=seed, **machine_kw)
        try:
            verdict = scenario(m)
            _raise_unexpected(m, expected, policy, seed, "find_seed")
        except BaseException as e:
            _annotate(e, m, policy, seed, expected, "find_seed")
            raise
        if verdict is None:
            if not expected:
                raise KmemUsageError("find_seed(): the scenario returned None and expect= names no "
                                     "report kind, so nothing can show the bug: return True when it "
                                     "shows, or pass expect=")
            if any(r.kind in expected for r in m.reports):
                return seed, m
        elif verdict:
            return seed, m
    return None


__all__ = ["DEFAULT_POLICIES", "DEFAULT_SEEDS", "SEEDS_ENV", "CAMPAIGN", "PCT_PROBE", "PCT_MIN_STEPS", "pct_steps_of",
           "SHRINK_RUNS", "FAILURES_FILE", "FAILURES_KEPT", "UnexpectedReport", "ExploreStats", "seeds_from_env",
           "explore", "find_seed", "forget_failures"]
