"""Stress campaigns: a scenario over many seeds, every run's verdict collected.

Where :func:`percpu_kmem.testing.explore` stops at the first failure (a test wants
that), a campaign runs every planned (policy, seed) and keeps what each found: the
command line's ``stress`` and ``zoo`` and the parallel runners are built on it.

    from percpu_kmem.campaign import run_campaign
    from percpu_kmem.scenarios import load_scenarios
    result = run_campaign(load_scenarios("stress/zoo/double_kfree.py::buggy"), seeds=range(200))
    print(result.summary())

One run's verdict is an :class:`Outcome`, plain data (it crosses process
boundaries): the run fails when the scenario raises, when ``m.check()`` finds an
inconsistency, or when the machine recorded a report whose kind the scenario does
not expect, exactly explore()'s rule. Each failing outcome carries the replay hint
of its run. ``policies=None`` plans the default campaign
(:data:`percpu_kmem.testing.CAMPAIGN`): seed ``s`` runs under entry ``s % len``, so
a seed's run is the same however the seeds are split between workers.

A campaign is a list of :class:`Job` (scenario, CPU count, policy, options, seed),
built by :func:`jobs`; :func:`run_jobs` runs such a list in this process and
percpu_kmem/parallel.py runs the same list in worker processes or on Dask, so the
merged result is the same however the jobs are split.

A PCT run planned without ``steps`` gets the count sized to its scenario by one
probe run (:func:`percpu_kmem.testing.pct_steps_of`, deterministic, remembered per
process), so a campaign's outcome does not depend on how its seeds are split between
workers; the outcome and its replay command carry the sized count.
"""

from __future__ import annotations

import hashlib
import shlex
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .machine import Machine
from .runtime.errors import InconsistentState, KmemUsageError
from .runtime.machine import MAX_CPUS
from .runtime.policies import POLICIES
from .scenarios import StressScenario
from .testing import CAMPAIGN, pct_steps_of

#: Report texts an outcome keeps (the first ones); the kinds are all kept.
OUTCOME_REPORTS = 3


@dataclass(frozen=True)
class Outcome:
    """The verdict of one run: which scenario, policy and seed, and what it found.

    ``failure`` is None for a clean run, else its kind: a report kind
    ("sleep_in_atomic", ...), ``"exception:<Type>"`` when the scenario raised, or
    ``"inconsistent_state"`` when ``m.check()`` failed (and no unexpected report came
    before: a report is the verdict, the inconsistency it left behind is in ``error``).
    """

    scenario: str
    policy: str
    options: tuple[tuple[str, Any], ...]
    seed: int
    cpus: int
    failure: str | None = None
    kinds: tuple[str, ...] = ()
    reports: tuple[str, ...] = ()
    error: str = ""
    replay: str = ""
    schedule: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def replay_command(self) -> str:
        """The ``percpu-kmem replay`` command that reruns this run (the same machine, policy,
        options and seed), ready to paste into a shell."""
        return replay_command(self.scenario, self.policy, dict(self.options), self.seed, self.cpus)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = dict(self.options)
        d["kinds"] = list(self.kinds)
        d["reports"] = list(self.reports)
        d["replay_command"] = self.replay_command() if self.failed else ""
        return d


def replay_command(scenario: str, policy: str, options: dict[str, Any], seed: int, cpus: int) -> str:
    """``percpu-kmem replay SPEC --seed S --policy P [--option k=v ...] --cpus N``."""
    parts = ["percpu-kmem", "replay", shlex.quote(scenario), "--seed", str(seed), "--policy", policy]
    for k, v in sorted(options.items()):
        parts += ["--option", shlex.quote(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}")]
    parts += ["--cpus", str(cpus)]
    return " ".join(parts)


def _schedule_hash(m: Any) -> str:
    trace = m.last_trace
    if trace is None:
        return ""
    return hashlib.blake2b(" ".join(d.token() for d in trace.decisions).encode(), digest_size=8).hexdigest()


_pct_steps: dict[tuple[str, str], int] = {}


def sized_options(sc: StressScenario, policy: str, options: dict[str, Any], **machine: Any) -> dict[str, Any]:
    """``options`` with PCT's step count sized to ``sc`` when the plan names none."""
    if policy != "pct" or "steps" in options:
        return options
    key = (sc.name, repr(sorted({**sc.machine, **machine}.items())))
    steps = _pct_steps.get(key)
    if steps is None:
        steps = _pct_steps[key] = pct_steps_of(sc.run, **{**sc.machine, **machine})
    return {**options, "steps": steps}


def execute(sc: StressScenario, policy: str, options: dict[str, Any], seed: int,
            **machine: Any) -> tuple[Machine, Outcome]:
    """Run ``sc`` once on a fresh machine; the machine (its dmesg, reports, /proc) and the
    verdict. The machine's arguments are checked before the run (KmemUsageError)."""
    t0 = time.perf_counter()
    try:
        options = sized_options(sc, policy, options, **machine)
        m = sc.make_machine(policy=policy, seed=seed, **options, **machine)
    except (KmemUsageError, TypeError) as e:  # TypeError: a keyword Machine() does not take at all
        raise KmemUsageError(f"{sc.name}: its machine is refused: {e}") from None
    failure: str | None = None
    error = ""
    try:
        sc.run(m)
        m.check()
    except Exception as e:  # the verdict of the run: kept, not raised
        failure = "inconsistent_state" if isinstance(e, InconsistentState) else f"exception:{type(e).__name__}"
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
        notes = getattr(e, "__notes__", None)
        if notes:
            error += "\n" + "\n".join(notes)
    unexpected = [r for r in m.reports if r.kind not in sc.expect]
    if unexpected and failure in (None, "inconsistent_state"):
        # a report first: an inconsistency m.check() finds after one (an Oops killed a task
        # holding a lock) is its consequence, and stays in ``error``
        failure = unexpected[0].kind
    replay = ""
    if failure is not None:
        replay = m.replay_hint() if m.last_trace is not None else f"percpu_kmem: seed={seed} policy={policy}"
    return m, Outcome(sc.name, policy, tuple(sorted(options.items())), seed, m.nr_cpus, failure,
                      tuple(r.kind for r in unexpected), tuple(r.text for r in unexpected[:OUTCOME_REPORTS]),
                      error, replay, _schedule_hash(m), time.perf_counter() - t0)


def run_one(sc: StressScenario, policy: str, options: dict[str, Any], seed: int,
            **machine: Any) -> Outcome:
    """Run ``sc`` once on a fresh machine under ``policy``/``options``/``seed``; never raises
    for a failure of the simulated code (KeyboardInterrupt still propagates)."""
    return execute(sc, policy, options, seed, **machine)[1]


def plan(seeds: Iterable[int], policies: Sequence[str] | None) -> list[tuple[str, dict[str, Any], int]]:
    """The (policy, options, seed) runs of a campaign, in order."""
    seed_list = list(seeds)
    for s in seed_list:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise KmemUsageError(f"seeds must be non-negative ints, got {s!r}")
    if policies is None:
        return [(CAMPAIGN[s % len(CAMPAIGN)][0], dict(CAMPAIGN[s % len(CAMPAIGN)][1]), s) for s in seed_list]
    for p in policies:
        if p not in POLICIES:
            raise KmemUsageError(f"policy {p!r} is not one of {', '.join(POLICIES)}")
    return [(p, {}, s) for p in policies for s in seed_list]


def _order(o: Outcome) -> tuple[Any, ...]:
    return (o.scenario, o.seed, o.cpus, o.policy, repr(o.options))


@dataclass
class CampaignResult:
    """Every outcome of a campaign, with the summaries the command line prints."""

    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def runs(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.failed]

    def by_kind(self) -> dict[str, list[Outcome]]:
        """Failing outcomes grouped by failure kind, each group in seed order."""
        groups: dict[str, list[Outcome]] = {}
        for o in sorted(self.failures, key=_order):
            assert o.failure is not None
            groups.setdefault(o.failure, []).append(o)
        return groups

    def distinct_schedules(self) -> int:
        return len({(o.scenario, o.schedule) for o in self.outcomes if o.schedule})

    def merge(self, other: CampaignResult) -> CampaignResult:
        """One result from two (parallel workers' parts), in a canonical order."""
        merged = sorted([*self.outcomes, *other.outcomes], key=_order)
        return CampaignResult(merged, max(self.seconds, other.seconds), self.interrupted or other.interrupted)

    def summary(self) -> str:
        rate = self.runs / self.seconds if self.seconds > 0 else 0.0
        lines = [f"{self.runs} runs in {self.seconds:.1f} s ({rate:.0f} runs/s), "
                 f"{self.distinct_schedules()} distinct schedules, {len(self.failures)} failing"
                 + (" (interrupted)" if self.interrupted else "")]
        for kind, outs in self.by_kind().items():
            first = outs[0]
            lines.append(f"  {kind}: {len(outs)} runs, first {first.scenario} seed={first.seed} "
                         f"policy={first.policy}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"runs": self.runs, "seconds": self.seconds, "interrupted": self.interrupted,
                "failing": len(self.failures), "distinct_schedules": self.distinct_schedules(),
                "by_kind": {k: {"runs": len(v), "first": v[0].to_json(), "seeds": sorted({o.seed for o in v}),
                                "scenarios": sorted({o.scenario for o in v})}
                            for k, v in self.by_kind().items()},
                "outcomes": [o.to_json() for o in self.failures]}


@dataclass(frozen=True)
class Job:
    """One planned run: a scenario (by name), machine overrides, policy, options, seed."""

    scenario: str
    overrides: tuple[tuple[str, Any], ...]
    policy: str
    options: tuple[tuple[str, Any], ...]
    seed: int


def jobs(scenarios: Sequence[StressScenario], *, seeds: Iterable[int] | None = None,
         policies: Sequence[str] | None = None, cpus: Sequence[int] | None = None,
         runs: Sequence[tuple[str, dict[str, Any], int]] | None = None, first_seed: int = 0,
         **machine: Any) -> list[Job]:
    """The runs of a campaign, in order: for every scenario, every CPU count (``cpus``; None:
    the scenario's own), every planned (policy, options, seed).

    ``runs`` is an explicit plan (``explore``'s PCT depth sweep); else :func:`plan` of
    ``seeds`` (None: each scenario's own budget, from ``first_seed`` on) and ``policies``
    (None: the default campaign).
    Checked before anything runs: a bad seed, policy or CPU count is a KmemUsageError.
    """
    if not scenarios:
        raise KmemUsageError("a campaign needs at least one scenario")
    for n in cpus or ():
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CPUS:
            raise KmemUsageError(f"cpus(={n!r}) must be an int from 1 to {MAX_CPUS}")
    fixed = list(runs) if runs is not None else (None if seeds is None else plan(seeds, policies))
    out: list[Job] = []
    for sc in scenarios:
        planned = fixed if fixed is not None else plan(range(first_seed, first_seed + sc.seeds), policies)
        counts: Sequence[int | None] = list(cpus) if cpus else [None]
        for c in counts:
            over = dict(machine)
            if c is not None:
                over["cpus"] = c
            over_t = tuple(sorted(over.items()))
            out.extend(Job(sc.name, over_t, p, tuple(sorted(o.items())), s) for p, o, s in planned)
    return out


def check_machines(scenarios: Sequence[StressScenario], job_list: Iterable[Job]) -> None:
    """Refuse a campaign whose machines cannot be built, before anything runs: every distinct
    (scenario, machine, policy, options) of ``job_list`` is built, unbooted (cheap) unless a
    detector that checks simulated memory needs its memory (kasan, kmemleak), and a
    refused one is a KmemUsageError naming the scenario (e.g. a ``Machine`` argument of a
    detector this version does not have)."""
    by_name = {sc.name: sc for sc in scenarios}
    seen: set[tuple[Any, ...]] = set()
    for job in job_list:
        key = (job.scenario, job.overrides, job.policy, job.options)
        if key in seen:
            continue
        seen.add(key)
        sc = by_name[job.scenario]
        args = {**sc.machine, **dict(job.overrides)}
        booted = bool(args.get("kasan") or args.get("kmemleak"))
        try:
            sc.make_machine(policy=job.policy, seed=job.seed, **dict(job.options),
                            **{**dict(job.overrides), "boot": args.get("boot", True) if booted else False})
        except KmemUsageError as e:
            raise KmemUsageError(f"{sc.name}: its machine is refused: {e}") from None
        except TypeError as e:  # a keyword Machine() does not take at all
            raise KmemUsageError(f"{sc.name}: its machine is refused: {e}") from None


def run_jobs(scenarios: Sequence[StressScenario], job_list: Iterable[Job], *,
             progress: Callable[[Outcome], None] | None = None) -> CampaignResult:
    """Run ``job_list`` in this process (``scenarios`` resolve the jobs' names).

    ``progress`` is called after each run. Ctrl-C ends the campaign cleanly: the result
    so far comes back with ``interrupted=True``.
    """
    by_name = {sc.name: sc for sc in scenarios}
    result = CampaignResult()
    t0 = time.perf_counter()
    try:
        for job in job_list:
            sc = by_name.get(job.scenario)
            if sc is None:
                raise KmemUsageError(f"job for unknown scenario {job.scenario!r}")
            out = run_one(sc, job.policy, dict(job.options), job.seed, **dict(job.overrides))
            result.outcomes.append(out)
            if progress is not None:
                progress(out)
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = time.perf_counter() - t0
    return result


def run_campaign(scenarios: Sequence[StressScenario], *, seeds: Iterable[int] | None = None,
                 policies: Sequence[str] | None = None, progress: Callable[[Outcome], None] | None = None,
                 cpus: Sequence[int] | None = None, **machine: Any) -> CampaignResult:
    """Run every scenario over every planned (policy, seed); collect every outcome.

    ``seeds=None`` gives each scenario its own budget (``range(sc.seeds)``).
    ``cpus`` runs each scenario at every CPU count given (None: the scenario's own).
    ``machine`` overrides the scenarios' machine arguments (e.g. ``memory="32M"``).
    ``progress`` is called after each run. Ctrl-C ends the campaign cleanly: the
    result so far comes back with ``interrupted=True``.
    """
    if not scenarios:
        raise KmemUsageError("run_campaign() needs at least one scenario")
    job_list = jobs(scenarios, seeds=seeds, policies=policies, cpus=cpus, **machine)
    check_machines(scenarios, job_list)
    return run_jobs(scenarios, job_list, progress=progress)


__all__ = ["OUTCOME_REPORTS", "Outcome", "replay_command", "sized_options", "execute", "run_one", "plan",
           "CampaignResult", "Job", "jobs", "check_machines", "run_jobs", "run_campaign"]
