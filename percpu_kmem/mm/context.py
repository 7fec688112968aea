"""How mm/ finds the machine it acts on: the one accessor of the memory layers.

Models ``current``: the kernel's free functions (kmalloc, alloc_pages, vmalloc, ...) act
on the machine of the task that calls them, as the kernel's act on the CPU and memory
``current`` runs on. Every mm module finds its layer through :func:`current_machine`
(``current_machine().slab``, ``.mm``, ``.vmalloc``, ...); a hot path that needs the task
as well writes ``t = current_task()`` and then ``t.machine.<layer>``, which is the same way.

Kept: outside a kernel thread the lookup raises NotInTaskError (the runtime's
``NO_TASK`` does that on the first attribute read), and a machine built with ``boot=False`` answers
NoMemoryLayers for a memory layer it never got.
Simplified: nothing is cached per CPU; the lookup is one context-variable read
(``current_task()``, per OS thread and per greenlet).
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from ..runtime.task import current_task

if TYPE_CHECKING:
    from ..machine import Machine


def current_machine() -> Machine:
    """The Machine of the calling kernel thread (raises NotInTaskError outside one)."""
    return current_task().machine


#: The folders whose frames are the model's own: mm/ and runtime/.
_MODEL_DIRS: Final = (os.path.dirname(__file__) + os.sep,
                      os.path.join(os.path.dirname(os.path.dirname(__file__)), "runtime") + os.sep)


def mm_caller_frame() -> FrameType | None:
    """The frame of the simulated code that called into mm/: the first frame, above the
    caller of this function, outside mm/ and runtime/ (None if there is none). The
    caller site of a mempool's creation, a vmalloc area and slab debugging's last user."""
    f: FrameType | None = sys._getframe(2)
    while f is not None and f.f_code.co_filename.startswith(_MODEL_DIRS):
        f = f.f_back
    return f


def stack_codes(depth: int, limit: int) -> list[tuple[Any, int]]:
    """The calling thread's stack above the caller of this function, ``depth`` frames up
    (1: the caller's caller), as (code object, line) pairs, innermost first, at most
    ``limit`` of them, ending at the task's entry: what KASAN's and kmemleak's tracks keep
    (formatted only when a report prints them)."""
    out: list[tuple[Any, int]] = []
    f: FrameType | None = sys._getframe(depth + 1)
    while f is not None and len(out) < limit:
        code = f.f_code
        if code.co_name == "_task_main":
            break
        out.append((code, f.f_lineno))
        f = f.f_back
    return out


__all__ = ["current_machine", "mm_caller_frame", "stack_codes"]
