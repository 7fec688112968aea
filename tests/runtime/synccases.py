"""Shared by the tests of completions, semaphores, rwsems and kthread_stop: a scenario run
under every policy and a few seeds, with the verdict each run must give."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from percpu_kmem import GFP_KERNEL, Machine
from percpu_kmem.linux import kfree, kmalloc, memset

POLICIES = ("random", "pct", "free", "virtual")
SEEDS = range(3)
RACE = "kcsan_data_race"


def each_run(scenario: Callable[[Machine], Any], policies: tuple[str, ...] = POLICIES,
             **machine_kw: Any) -> list[Machine]:
    """``scenario(m)`` on a fresh machine per policy and seed; ``m.check()`` after each."""
    out = []
    for policy in policies:
        for seed in SEEDS:
            kw = {"cpus": 2, "timeout": 60, **machine_kw}
            m = Machine(policy=policy, seed=seed, **kw)
            scenario(m)
            out.append(m)
    return out


def assert_silent(scenario: Callable[[Machine], Any], policies: tuple[str, ...] = POLICIES,
                  **machine_kw: Any) -> None:
    """The fixed twin: no report at all, under every policy and seed."""
    for m in each_run(scenario, policies, **machine_kw):
        assert m.reports == [], f"{m.replay_hint()}\n{m.reports[0].text}"
        m.check()


def assert_reported(scenario: Callable[[Machine], Any], kind: str, first_line: Callable[[str], bool],
                    policies: tuple[str, ...] = POLICIES, allowed: frozenset[str] = frozenset(),
                    **machine_kw: Any) -> list[Machine]:
    """The bug: a ``kind`` report whose first line passes ``first_line`` on every run, and
    no report of another kind but ``allowed``."""
    ms = each_run(scenario, policies, **machine_kw)
    for m in ms:
        reps = m.reports_of(kind)
        assert reps, f"no {kind} report: {m.replay_hint()} {[r.kind for r in m.reports]}"
        assert first_line(reps[0].lines[0]), reps[0].text
        others = [r for r in m.reports if r.kind != kind and r.kind not in allowed]
        assert not others, others[0].text
    return ms


def shared_buffer(m: Machine, size: int = 64) -> int:
    """A zeroed kmalloc'ed buffer, set up in a run of its own."""
    box: list[int] = []

    def setup() -> None:
        p = kmalloc(size, GFP_KERNEL)
        assert p is not None
        memset(p, 0, size)
        box.append(p)

    m.run(setup)
    return box[0]


def free_buffer(m: Machine, p: int) -> None:
    m.run(lambda: kfree(p))
