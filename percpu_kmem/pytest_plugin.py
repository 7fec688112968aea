"""pytest plugin: a seed-range option and a marker for schedule exploration.

Kept light: importing it does not import the model.

- ``--kmem-seeds=N`` sets how many seeds ``percpu_kmem.testing.explore`` callers
  that use ``seeds_from_env`` explore (also ``PERCPU_KMEM_SEEDS``).
- ``@pytest.mark.kmem_slow``: long stress runs, skipped unless ``--kmem-slow``.
"""

from __future__ import annotations

import os

import pytest

OPT_SEEDS = "--kmem-seeds"
OPT_SLOW = "--kmem-slow"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("percpu_kmem")
    group.addoption(OPT_SEEDS, type=int, default=None, help="seeds per exploring test (PERCPU_KMEM_SEEDS)")
    group.addoption(OPT_SLOW, action="store_true", default=False, help="run tests marked kmem_slow")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kmem_slow: long stress test, run with --kmem-slow")
    seeds = config.getoption(OPT_SEEDS)
    if seeds is not None:
        os.environ["PERCPU_KMEM_SEEDS"] = str(seeds)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption(OPT_SLOW):
        return
    skip = pytest.mark.skip(reason=f"slow stress test: run with {OPT_SLOW}")
    for item in items:
        if "kmem_slow" in item.keywords:
            item.add_marker(skip)
