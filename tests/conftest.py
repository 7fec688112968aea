"""Shared fixtures. Every test is bounded by pytest-timeout (pyproject sets the default)."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long traces and remembered failures go to a temporary folder of each test's own,
    not the checkout: a failure one test provokes is not rerun first by another."""
    monkeypatch.setenv("PERCPU_KMEM_DIR", str(tmp_path_factory.mktemp("percpu_kmem_state")))


@pytest.fixture
def machine() -> Machine:
    """A small deterministic machine."""
    return Machine(cpus=2, policy="random", seed=1)
