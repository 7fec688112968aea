"""Hypothesis-driven schedules: every scheduling decision drawn from Hypothesis data.

    from hypothesis import given, strategies as st
    from percpu_kmem.strategies import schedules

    @given(schedule=schedules(), n=st.integers(1, 4))      # a workload drawn beside it
    def test_driver(schedule, n):
        m = schedule.machine(cpus=2)
        m.run(*[driver] * n)
        assert ...

A :class:`Schedule` is a list of small numbers, one per scheduling decision of the
runs of the machine it makes: 0 lets the running task go on (where it cannot, the
first runnable task in pid order runs), k > 0 takes the k-th other legal choice
(another CPU's task, a kernel preemption, an interrupt), counted round the choices.
Decisions past the end of the list go on. So Hypothesis's shrinker, which deletes
entries and lowers them towards 0, minimises the schedule towards fewer preemptions
(and the workload drawn beside it with it), and its example database replays a past
failure first (``settings(database=...)``); the falsifying example prints as
``Schedule([...])``, which can be pasted back as ``Schedule([...]).machine(...)``.

The choices at each decision are the ones the exhaustive search enumerates
(percpu_kmem/exhaustive.py): a task getting a CPU gets its last one when idle, a kernel
preemption is offered only where a task (not a daemon) waits for a CPU;
``machine(daemons=False)`` keeps kswapd from starting with the runs.

Hypothesis is a test dependency: this module imports it, and ``import percpu_kmem``
does not import this module.
"""

from __future__ import annotations

from typing import Any, Final

from hypothesis import strategies as st

from .exhaustive import Choice, _choices, _cost
from .machine import Machine
from .runtime.engine import BatonEngine
from .runtime.errors import KmemUsageError
from .runtime.policies import Options, Policy
from .runtime.task import Task

#: Decisions a drawn schedule covers at most (later ones go on).
MAX_DECISIONS: Final = 400
#: The largest number drawn per decision.
MAX_PICK: Final = 3


class Schedule:
    """A drawn schedule: ``picks[i]`` chooses at the i-th scheduling decision."""

    def __init__(self, picks: list[int]) -> None:
        if not isinstance(picks, list) or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in picks):
            raise KmemUsageError(f"Schedule(picks={picks!r}) takes a list of ints >= 0")
        self.picks = picks
        #: preemptions the last machine's runs took (choices away from a task that could go on)
        self.preemptions = 0
        #: the choices made, in the exhaustive search's terms
        self.choices: list[Choice] = []

    def __repr__(self) -> str:
        return f"Schedule({self.picks!r})"

    def machine(self, cpus: int = 2, *, daemons: bool = True, **machine_kw: Any) -> Machine:
        """A fresh ``Machine(cpus=cpus, **machine_kw)`` whose runs follow this schedule."""
        for k in ("policy", "seed", "replay"):
            if k in machine_kw:
                raise KmemUsageError(f"Schedule.machine(): the schedule decides every run: it takes no {k}=")
        self.preemptions = 0
        self.choices = []
        m = Machine(cpus=cpus, policy="random", seed=0, **machine_kw)
        if not daemons:
            m._daemons.clear()  # kswapd does not start with the runs
        policy = DrawnPolicy(self)
        setattr(m, "_new_engine", lambda: BatonEngine(m, policy))  # noqa: B010
        return m


class DrawnPolicy(Policy):
    """Decides at every scheduling point by the next number of a :class:`Schedule`."""

    name = "hypothesis"
    every_point = True

    def __init__(self, schedule: Schedule) -> None:
        super().__init__(0)
        self.schedule = schedule

    def budget(self, engine: Any, t: Task) -> int:
        return 1

    def choose(self, engine: Any, t: Task, event: str, opts: Options, forced: bool) -> tuple[Any, ...]:
        s = self.schedule
        choices = _choices(t, opts, forced, bool(engine.ready))
        i = len(s.choices)
        pick = s.picks[i] if i < len(s.picks) else 0
        key, action = choices[pick % len(choices)]
        s.choices.append(key)
        s.preemptions += _cost(key, forced)
        return action


def schedules(max_decisions: int = MAX_DECISIONS) -> st.SearchStrategy[Schedule]:
    """A strategy of :class:`Schedule` values (one number in [0, MAX_PICK] per decision)."""
    if isinstance(max_decisions, bool) or not isinstance(max_decisions, int) or max_decisions < 1:
        raise KmemUsageError(f"schedules(max_decisions={max_decisions!r}) must be an int >= 1")
    return st.lists(st.integers(0, MAX_PICK), max_size=max_decisions).map(Schedule)


def hypothesis_schedule(data: Any, max_decisions: int = MAX_DECISIONS) -> Schedule:
    """Draw a :class:`Schedule` from ``st.data()``'s object inside a test (``data.draw``)."""
    draw = getattr(data, "draw", None)
    if draw is None:
        raise KmemUsageError(f"hypothesis_schedule(data={data!r}) takes the object of @given(data=st.data())")
    result: Schedule = draw(schedules(max_decisions))
    return result


__all__ = ["MAX_DECISIONS", "MAX_PICK", "Schedule", "DrawnPolicy", "schedules", "hypothesis_schedule"]
