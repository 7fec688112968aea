"""The decision log: every choice the scheduler made, in kernel-level terms.

A run is fully determined by its machine settings plus this log: which task ran
next at a switch, which task a CPU picked up, where a preemption or an interrupt
happened, when the clock jumped. Entries name the scheduling step, the task and
the kernel event at which the choice was made ("spin_lock", "kmalloc", ...), so a
replay can tell where it diverged instead of silently doing something else.

Text form (``str(trace)``), one token per decision after a header::

    pkt1 random seed=7 | 4:1:spin_lock:S2 9:2:spin_unlock:P 9:2:spin_unlock:D3@1

``step:pid:event:action`` where action is one of
``S<pid>`` run that task (already on a CPU), ``D<pid>@<cpu>`` put a ready task on
an idle CPU, ``P`` preempt the running task, ``I<irq>`` deliver an interrupt on
the running task's CPU (``I<irq>x<n>``: n times in a row), ``V<cpu>`` let an idle CPU's idle task serve interrupts,
``T<ns>`` advance the virtual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, NamedTuple

from .errors import KmemUsageError

TRACE_MAGIC: Final = "pkt1"


class Decision(NamedTuple):
    """One scheduling decision."""

    step: int
    pid: int
    event: str
    action: str  # S D P I V T
    arg: int = 0
    arg2: int = 0

    def token(self) -> str:
        if self.action == "P":
            body = "P"
        elif self.action == "D":
            body = f"D{self.arg}@{self.arg2}"
        elif self.action == "I" and self.arg2 > 1:
            body = f"I{self.arg}x{self.arg2}"
        else:
            body = f"{self.action}{self.arg}"
        return f"{self.step}:{self.pid}:{self.event}:{body}"

    @classmethod
    def parse(cls, token: str) -> Decision:
        try:
            step_s, pid_s, rest = token.split(":", 2)
            event, body = rest.rsplit(":", 1)
            action = body[0]
            if action == "P":
                return cls(int(step_s), int(pid_s), event, "P")
            if action == "D":
                a, b = body[1:].split("@")
                return cls(int(step_s), int(pid_s), event, "D", int(a), int(b))
            if action == "I" and "x" in body:
                a, b = body[1:].split("x")
                return cls(int(step_s), int(pid_s), event, "I", int(a), int(b))
            if action not in "SIVT":
                raise ValueError
            return cls(int(step_s), int(pid_s), event, action, int(body[1:]))
        except (ValueError, IndexError):
            raise KmemUsageError(f"bad trace token {token!r}: expected step:pid:event:action") from None


def describe(d: Decision, name: Callable[[int], str]) -> str:
    """What a decision did, for people ("switch to worker/2", "preempted", ...);
    ``name(pid)`` names a task."""
    if d.action == "S":
        return f"switch to {name(d.arg)}"
    if d.action == "D":
        return f"CPU{d.arg2} picks up {name(d.arg)}"
    if d.action == "P":
        return "preempted"
    if d.action == "I":
        return f"interrupt {d.arg}" + (f" x{d.arg2}" if d.arg2 > 1 else "")
    if d.action == "V":
        return f"idle CPU{d.arg} serves interrupts"
    return f"clock advances to {d.arg} ns"


@dataclass
class Trace:
    """The decision log of one run; ``Machine(..., replay=trace)`` repeats it."""

    policy: str
    seed: int
    decisions: list[Decision]
    comms: dict[int, str]

    def __str__(self) -> str:
        head = f"{TRACE_MAGIC} {self.policy} seed={self.seed} |"
        return " ".join([head, *(d.token() for d in self.decisions)])

    def __len__(self) -> int:
        return len(self.decisions)

    def __iter__(self) -> Iterator[Decision]:
        return iter(self.decisions)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace):
            return self.decisions == other.decisions
        return NotImplemented

    @property
    def preemptions(self) -> int:
        return sum(1 for d in self.decisions if d.action == "P")

    def name(self, pid: int) -> str:
        return f"{self.comms.get(pid, '?')}/{pid}"

    def readable(self) -> str:
        """One line per decision, for people."""
        out = []
        for d in self.decisions:
            out.append(f"step {d.step:6d}  {self.name(d.pid):>16} at {d.event:<18} {describe(d, self.name)}")
        return "\n".join(out)

    @classmethod
    def parse(cls, text: str | Trace) -> Trace:
        """Read the text form back (or pass a Trace through)."""
        if isinstance(text, Trace):
            return text
        head, sep, body = text.partition("|")
        parts = head.split()
        if not sep or len(parts) != 3 or parts[0] != TRACE_MAGIC or not parts[2].startswith("seed="):
            raise KmemUsageError(
                f"not a percpu_kmem trace (expected '{TRACE_MAGIC} <policy> seed=<n> | ...'): {text[:60]!r}"
            )
        try:
            seed = int(parts[2][5:])
        except ValueError:
            raise KmemUsageError(f"bad seed in trace header: {parts[2]!r}") from None
        decisions = [Decision.parse(tok) for tok in body.split()]
        return cls(parts[1], seed, decisions, {})


__all__ = ["TRACE_MAGIC", "Decision", "describe", "Trace"]
