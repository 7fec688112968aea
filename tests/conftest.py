"""Shared fixtures. Every test is bounded by pytest-timeout (pyproject sets the default)."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine


@pytest.fixture
def machine() -> Machine:
    """A small deterministic machine."""
    return Machine(cpus=2, policy="random", seed=1)
