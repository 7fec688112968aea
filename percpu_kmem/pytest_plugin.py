"""pytest plugin: a seed-range option and a marker for schedule exploration.

Kept light: importing it does not import the model.

- ``--kmem-seeds=N`` sets how many seeds every ``percpu_kmem.testing.explore``
  call that uses the default range (``seeds=None``) explores: ``range(N)`` per
  policy. It works through ``PERCPU_KMEM_SEEDS``, which it sets for the session
  (so subprocesses see it too) and restores when the session ends; without the
  option, a ``PERCPU_KMEM_SEEDS`` already in the environment is used. Calls that
  pass their own ``seeds=`` are left as they are.
- ``@pytest.mark.kmem_slow``: long stress runs, skipped unless ``--kmem-slow``.
"""

from __future__ import annotations

import argparse
import os

import pytest

OPT_SEEDS = "--kmem-seeds"
OPT_SLOW = "--kmem-slow"
SEEDS_ENV = "PERCPU_KMEM_SEEDS"  # the same name as percpu_kmem.testing.SEEDS_ENV

_saved_env = pytest.StashKey[tuple[bool, str]]()


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{OPT_SEEDS} takes a positive number of seeds, got {text!r}")
    return n


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("percpu_kmem")
    group.addoption(OPT_SEEDS, type=_positive_int, default=None, metavar="N",
                    help=f"seeds per policy for explore() calls with the default range ({SEEDS_ENV})")
    group.addoption(OPT_SLOW, action="store_true", default=False, help="run tests marked kmem_slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kmem_slow: long stress test, run with --kmem-slow")
    seeds = config.getoption(OPT_SEEDS)
    if seeds is not None:
        config.stash[_saved_env] = (SEEDS_ENV in os.environ, os.environ.get(SEEDS_ENV, ""))
        os.environ[SEEDS_ENV] = str(seeds)


def pytest_unconfigure(config: pytest.Config) -> None:
    saved = config.stash.get(_saved_env, None)
    if saved is None:
        return
    had, value = saved
    if had:
        os.environ[SEEDS_ENV] = value
    else:
        os.environ.pop(SEEDS_ENV, None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption(OPT_SLOW):
        return
    skip = pytest.mark.skip(reason=f"slow stress test: run with {OPT_SLOW}")
    for item in items:
        if "kmem_slow" in item.keywords:
            item.add_marker(skip)


__all__ = ["OPT_SEEDS", "OPT_SLOW", "SEEDS_ENV", "pytest_addoption", "pytest_configure", "pytest_unconfigure",
           "pytest_collection_modifyitems"]
