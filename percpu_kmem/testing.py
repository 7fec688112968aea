"""Helpers for testing simulated kernel code under many schedules.

    from percpu_kmem.testing import explore
    def scenario(m):
        m.run(producer, consumer)
        assert ...
    explore(scenario, seeds=range(50), policies=("random", "pct"), cpus=2)

A failure is re-raised with a note naming the policy, the seed and the trace
that replays it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable

from .runtime.machine import Machine

DEFAULT_POLICIES = ("random", "pct")


def seeds_from_env(default: int) -> range:
    """The seed range to explore: ``PERCPU_KMEM_SEEDS`` (or ``--kmem-seeds``) scales it."""
    n = int(os.environ.get("PERCPU_KMEM_SEEDS", default))
    return range(n)


def explore(scenario: Callable[[Machine], Any], *, seeds: Iterable[int] = range(20),
            policies: Iterable[str] = DEFAULT_POLICIES, check: bool = True,
            **machine_kw: Any) -> int:
    """Run ``scenario(machine)`` on a fresh machine for every (policy, seed).

    ``scenario`` calls ``m.run(...)`` and asserts what must hold; ``m.check()``
    runs after it unless ``check=False``. Returns the number of runs.
    Raises the first failure, with a note carrying the seed and the replay.
    """
    n = 0
    for policy in policies:
        for seed in seeds:
            m = Machine(policy=policy, seed=seed, **machine_kw)
            try:
                scenario(m)
                if check:
                    m.check()
            except BaseException as e:
                if m._last_trace is not None:
                    hint = m.replay_hint()
                else:
                    hint = f"percpu_kmem: seed={seed} policy={policy}"
                if hint not in getattr(e, "__notes__", []):
                    e.add_note(f"explore: failed under policy={policy!r} seed={seed}")
                    e.add_note(hint)
                raise
            n += 1
    return n


def find_seed(scenario: Callable[[Machine], bool], *, seeds: Iterable[int] = range(200),
              policy: str = "random", **machine_kw: Any) -> tuple[int, Machine] | None:
    """The first seed for which ``scenario(m)`` returns True (a bug shows), or None."""
    for seed in seeds:
        m = Machine(policy=policy, seed=seed, **machine_kw)
        if scenario(m):
            return seed, m
    return None
