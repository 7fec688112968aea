"""How mm/ finds the machine it acts on: the one accessor of the memory layers.

Models ``current``: the kernel's free functions (kmalloc, alloc_pages, vmalloc, ...) act
on the machine of the task that calls them, as the kernel's act on the CPU and memory
``current`` runs on. Every mm module finds its layer through :func:`current_machine`
(``current_machine().slab``, ``.mm``, ``.vmalloc``, ...); a hot path that needs the task
as well writes ``t = CURRENT.task`` and then ``t.machine.<layer>``, which is the same way.

Kept: outside a kernel thread the lookup raises NotInTaskError (the runtime's ``CURRENT``
does that on the first attribute read), and a machine built with ``boot=False`` answers
NoMemoryLayers for a memory layer it never got.
Simplified: nothing is cached per CPU; the lookup is one thread-local read.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runtime.task import CURRENT

if TYPE_CHECKING:
    from ..runtime.machine import Machine


def current_machine() -> Machine:
    """The Machine of the calling kernel thread (raises NotInTaskError outside one)."""
    return CURRENT.task.machine  # type: ignore[no-any-return]


__all__ = ["current_machine"]
