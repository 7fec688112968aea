"""slab: placeholder until the module lands (issues 4-5)."""

from __future__ import annotations

from typing import Any


def kmem_cache_init(m: Any) -> None:
    """Set up the subsystem on machine ``m`` at boot."""


__all__: list[str] = []
