"""mempool: placeholder until the module lands (issue 5)."""

from __future__ import annotations

__all__: list[str] = []
