"""bootmem: placeholder until the bootmem module lands (issue 5)."""

from __future__ import annotations

from typing import Any


def boot_phase(m: Any, mem: Any) -> None:
    """The boot phase; for now only the hand-over of every page to the buddy allocator."""
    mem.free_all_to_buddy()


__all__: list[str] = []
