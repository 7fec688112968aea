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

Simplified: PCT's step count is not sized from earlier runs here (each run is
independent, so a campaign's outcome does not depend on how its seeds are split
between workers).
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .runtime.errors import KmemUsageError
from .runtime.policies import POLICIES
from .scenarios import StressScenario
from .testing import CAMPAIGN

#: Report texts an outcome keeps (the first ones); the kinds are all kept.
OUTCOME_REPORTS = 3


@dataclass(frozen=True)
class Outcome:
    """The verdict of one run: which scenario, policy and seed, and what it found.

    ``failure`` is None for a clean run, else its kind: a report kind
    ("sleep_in_atomic", ...), ``"exception:<Type>"`` when the scenario raised, or
    ``"inconsistent_state"`` when ``m.check()`` failed.
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

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["options"] = dict(self.options)
        return d


def _schedule_hash(m: Any) -> str:
    trace = m.last_trace
    if trace is None:
        return ""
    return hashlib.blake2b(" ".join(d.token() for d in trace.decisions).encode(), digest_size=8).hexdigest()


def run_one(sc: StressScenario, policy: str, options: dict[str, Any], seed: int,
            **machine: Any) -> Outcome:
    """Run ``sc`` once on a fresh machine under ``policy``/``options``/``seed``; never raises
    for a failure of the simulated code (KeyboardInterrupt still propagates)."""
    t0 = time.perf_counter()
    m = sc.make_machine(policy=policy, seed=seed, **options, **machine)
    failure: str | None = None
    error = ""
    try:
        sc.run(m)
        m.check()
    except Exception as e:  # the verdict of the run: kept, not raised
        from .runtime.errors import InconsistentState
        failure = "inconsistent_state" if isinstance(e, InconsistentState) else f"exception:{type(e).__name__}"
        error = "".join(traceback.format_exception_only(type(e), e)).strip()
        notes = getattr(e, "__notes__", None)
        if notes:
            error += "\n" + "\n".join(notes)
    unexpected = [r for r in m.reports if r.kind not in sc.expect]
    if unexpected and failure is None:
        failure = unexpected[0].kind
    replay = ""
    if failure is not None:
        replay = m.replay_hint() if m.last_trace is not None else f"percpu_kmem: seed={seed} policy={policy}"
    return Outcome(sc.name, policy, tuple(sorted(options.items())), seed, m.nr_cpus, failure,
                   tuple(r.kind for r in unexpected), tuple(r.text for r in unexpected[:OUTCOME_REPORTS]),
                   error, replay, _schedule_hash(m), time.perf_counter() - t0)


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
        for o in sorted(self.failures, key=lambda o: (o.scenario, o.seed, o.policy)):
            assert o.failure is not None
            groups.setdefault(o.failure, []).append(o)
        return groups

    def distinct_schedules(self) -> int:
        return len({(o.scenario, o.schedule) for o in self.outcomes if o.schedule})

    def merge(self, other: CampaignResult) -> CampaignResult:
        """One result from two (parallel workers' parts), in a canonical order."""
        merged = sorted([*self.outcomes, *other.outcomes], key=lambda o: (o.scenario, o.seed, o.policy, o.options))
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
                "by_kind": {k: {"runs": len(v), "first": v[0].to_json(), "seeds": [o.seed for o in v]}
                            for k, v in self.by_kind().items()},
                "outcomes": [o.to_json() for o in self.failures]}


def run_campaign(scenarios: Sequence[StressScenario], *, seeds: Iterable[int] | None = None,
                 policies: Sequence[str] | None = None, progress: Callable[[Outcome], None] | None = None,
                 **machine: Any) -> CampaignResult:
    """Run every scenario over every planned (policy, seed); collect every outcome.

    ``seeds=None`` gives each scenario its own budget (``range(sc.seeds)``).
    ``machine`` overrides the scenarios' machine arguments (e.g. ``cpus=4``).
    ``progress`` is called after each run. Ctrl-C ends the campaign cleanly: the
    result so far comes back with ``interrupted=True``.
    """
    if not scenarios:
        raise KmemUsageError("run_campaign() needs at least one scenario")
    fixed_plan = None if seeds is None else plan(seeds, policies)
    result = CampaignResult()
    t0 = time.perf_counter()
    try:
        for sc in scenarios:
            runs = fixed_plan if fixed_plan is not None else plan(range(sc.seeds), policies)
            for policy, options, seed in runs:
                out = run_one(sc, policy, options, seed, **machine)
                result.outcomes.append(out)
                if progress is not None:
                    progress(out)
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["OUTCOME_REPORTS", "Outcome", "run_one", "plan", "CampaignResult", "run_campaign"]
