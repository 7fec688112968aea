"""Shared fixtures. Every test is bounded by pytest-timeout (pyproject sets the default)."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine


@pytest.fixture(autouse=True)
def _state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Long traces and failure records go to a temporary folder, not the checkout."""
    monkeypatch.setenv("PERCPU_KMEM_DIR", str(tmp_path_factory.getbasetemp() / "percpu_kmem_state"))


@pytest.fixture
def machine() -> Machine:
    """A small deterministic machine."""
    return Machine(cpus=2, policy="random", seed=1)
