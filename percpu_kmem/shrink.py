"""Shrinking a failing schedule: fewer preemptions, fewer steps, the same failure.

A failing run's trace often carries preemptions and interrupts that have nothing to
do with the bug. :func:`shrink` replays the scenario with some of them taken out: the
replay follows the remaining decisions while they fit and continues with the
machine's policy and seed from where they stop fitting (so every candidate is a real
run), and a candidate is kept when it fails the same way (the same report kind, or
the same exception type) with a schedule that is smaller: fewer preemptions, then
fewer interrupts, then fewer decisions, then fewer steps. Removal goes in chunks, as
delta debugging does (all the preemptions, then halves, quarters, ..., single ones),
until nothing smaller fails or the run budget is spent.

The number of preemptions left is the bug's depth in the sense of PCT: a bug that
still fails with one preemption is found by PCT at depth 2.

Kept from the shrinkers it follows (Hypothesis's, Déjà Fu's trace simplification):
only real runs are kept, so the result always replays. Simplified: candidates remove
decisions only (they never move one), so a schedule that needs a preemption at
another place than any the original had is out of reach.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .machine import Machine
from .runtime.errors import KmemUsageError
from .runtime.machine import ReplayDivergedWarning
from .runtime.trace import Decision, Trace

#: What a failure is, for "fails the same way": ("report", kind) or ("exception", type name).
Signature = tuple[str, str]

#: Report kinds a shrinking replay makes on purpose, never a failure of the scenario.
IGNORED_KINDS = frozenset({"replay_diverged"})


def failure_of(m: Machine, exc: BaseException | None) -> Signature | None:
    """How a run failed: its exception if it raised one, else its first kernel report."""
    if exc is not None:
        return ("exception", type(exc).__name__)
    for rep in m.reports:
        if rep.kind not in IGNORED_KINDS:
            return ("report", rep.kind)
    return None


def _size(trace: Trace, steps: int) -> tuple[int, int, int, int]:
    interrupts = sum(1 for d in trace.decisions if d.action == "I")
    return (trace.preemptions, interrupts, len(trace.decisions), steps)


@dataclass
class ShrinkResult:
    """What :func:`shrink` found."""

    trace: Trace  #: the smallest failing schedule (it replays: ``Machine(..., replay=trace)``)
    original: Trace  #: the schedule it started from
    failure: Signature  #: how both fail
    runs: int  #: scenario runs spent
    steps: int  #: scheduling steps of the shrunk run
    hint: str  #: the paste-able replay of the shrunk run

    @property
    def preemptions(self) -> int:
        return self.trace.preemptions

    def __str__(self) -> str:
        return (f"shrunk {self.failure[0]} {self.failure[1]!r} from {self.original.preemptions} preemptions and "
                f"{len(self.original)} decisions to {self.trace.preemptions} preemptions and "
                f"{len(self.trace)} decisions in {self.runs} runs\n{self.hint}")


def shrink(scenario: Callable[[Machine], Any], failed: Machine, *, max_runs: int = 300) -> ShrinkResult:
    """Find a smaller schedule on which ``scenario`` fails the way ``failed``'s last run did.

    Args:
        scenario: runs the workload on a machine it is given (``scenario(m)`` calls
            ``m.run(...)``), as :func:`percpu_kmem.testing.explore` takes it; it is rerun
            on fresh machines built with ``failed``'s arguments.
        failed: the machine whose last run failed (a deterministic policy).
        max_runs: how many candidate runs to spend at most.

    Raises:
        KmemUsageError: ``failed`` has not run, ran free-running (no trace to shrink), or
            its last run did not fail; or the scenario does not fail again on a replay
            of that trace (it depends on something outside the machine).
    """
    if not isinstance(failed, Machine):
        raise KmemUsageError(f"shrink: failed(={failed!r}) must be the Machine whose run failed")
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
        raise KmemUsageError(f"shrink: max_runs(={max_runs!r}) must be an int >= 1")
    original = failed.last_trace
    if original is None:
        raise KmemUsageError("shrink: the machine has not run yet")
    if failed.policy_name == "free":
        raise KmemUsageError("shrink: free-running runs record no schedule; rerun the failure with a "
                             "deterministic policy (its replay hint says how)")
    args = failed.shaping_args()
    args["seed"] = original.seed
    args.pop("replay", None)
    if failed.boot_init:
        args["init"] = failed.boot_init

    runs = 0

    def attempt(decisions: list[Decision]) -> tuple[Signature | None, Machine]:
        nonlocal runs
        runs += 1
        m = Machine(**args, replay=Trace(original.policy, original.seed, decisions, dict(original.comms)))
        exc: BaseException | None = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ReplayDivergedWarning)
            try:
                scenario(m)
            except Exception as e:
                exc = e
        return failure_of(m, exc), m

    target, first = attempt(list(original.decisions))
    if target is None:
        raise KmemUsageError("shrink: the scenario does not fail on a replay of the trace: it depends on "
                             "something outside the machine (a global, the wall clock)")
    best = first.last_trace
    assert best is not None
    best_steps = first.steps
    best_m = first
    changed = True
    while changed and runs < max_runs:
        changed = False
        for kinds in ("P", "I", "PISDV"):
            positions = [i for i, d in enumerate(best.decisions) if d.action in kinds]
            chunk = len(positions)
            while chunk >= 1 and runs < max_runs:
                for start in range(0, len(positions), chunk):
                    if runs >= max_runs:
                        break
                    drop = set(positions[start:start + chunk])
                    candidate = [d for i, d in enumerate(best.decisions) if i not in drop]
                    sig, m = attempt(candidate)
                    got = m.last_trace
                    if sig == target and got is not None and _size(got, m.steps) < _size(best, best_steps):
                        best, best_steps, best_m, changed = got, m.steps, m, True
                        break
                if changed:
                    break
                chunk //= 2
            if changed:
                break
    return ShrinkResult(trace=best, original=original, failure=target, runs=runs, steps=best_steps,
                        hint=best_m.replay_hint())


__all__ = ["Signature", "IGNORED_KINDS", "failure_of", "ShrinkResult", "shrink"]
