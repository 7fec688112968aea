"""Kernel-style reports: a structured object per diagnostic plus its printk lines.

A report carries what a kernel developer reads in a splat (kind, CPU, task,
preempt_count, irqs_disabled, the call stack) and ``text``, the lines the kernel
would print, in today's wording (see docs/runtime.md for the era choice).
The simulated call stack is the Python stack of the task at the moment of the
report, trimmed of the runtime's own frames, so it names the simulated kernel
functions (kmalloc, cache_grow, ...) and the test code that called them.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Final

_PKG_DIR: Final = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RUNTIME_DIR: Final = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Frame:
    """One simulated stack frame: a function and where it is."""

    function: str
    file: str
    line: int

    def __str__(self) -> str:
        return f" {self.function} ({self.file}:{self.line})"


@dataclass
class Report:
    """One kernel diagnostic.

    Attributes:
        kind: short machine-readable name ("sleep_in_atomic", "spinlock_recursion", ...).
        text: the printk lines, joined by newlines, as the kernel prints them.
        cpu: CPU number the report came from (-1 outside any CPU).
        task: "comm/pid" of ``current``.
        pid: pid of ``current``.
        preempt_count: the CPU's preempt_count at the report.
        irqs_disabled: whether local interrupts were off.
        stack: the simulated call stack, innermost first.
        step: the scheduling step at which it happened (for replay).
        count: how many times this (kind, site) fired; repeats are folded.
    """

    kind: str
    text: str
    cpu: int
    task: str
    pid: int
    preempt_count: int
    irqs_disabled: bool
    stack: tuple[Frame, ...] = ()
    step: int = 0
    count: int = 1
    site: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def __str__(self) -> str:
        return self.text


_RELPATHS: dict[tuple[str, str], str] = {}


def relpath(filename: str) -> str:
    """Shorten a source path the way kernel messages name files (mm/slab.c).

    Memoized per (file, working directory): report sites and lock_stat's contention
    points ask for the same few files over and over."""
    key = (filename, os.getcwd())
    rel = _RELPATHS.get(key)
    if rel is None:
        rel = _RELPATHS[key] = _relpath(filename)
    return rel


def _relpath(filename: str) -> str:
    absf = os.path.abspath(filename)
    if absf.startswith(_PKG_DIR + os.sep):
        return os.path.relpath(absf, os.path.dirname(_PKG_DIR))
    try:
        rel = os.path.relpath(absf)
    except ValueError:  # another drive
        return absf
    return absf if rel.startswith("..") else rel


_SKIP_FILES: set[str] = set()


#: _is_runtime_frame's answers for absolute file names (they do not depend on the working
#: directory); cleared when skip_frames_of adds a file
_RUNTIME_FRAME: dict[str, bool] = {}


def skip_frames_of(filename: str) -> None:
    """Leave a module's frames out of report sites (memory accessors report their caller)."""
    _SKIP_FILES.add(os.path.abspath(filename))
    _RUNTIME_FRAME.clear()


def _is_runtime_frame(filename: str) -> bool:
    known = _RUNTIME_FRAME.get(filename)
    if known is not None:
        return known
    absf = os.path.abspath(filename)
    known = absf.startswith(_RUNTIME_DIR + os.sep) or absf in _SKIP_FILES
    if os.path.isabs(filename):
        _RUNTIME_FRAME[filename] = known
    return known


def capture_stack(skip_runtime: bool = True, limit: int = 24) -> tuple[Frame, ...]:
    """The simulated call stack of the calling thread, innermost first.

    Frames of the runtime itself (the scheduler, the report machinery) are left
    out: a kernel stack trace shows the code that misbehaved, not printk.
    """
    frames: list[Frame] = []
    f = sys._getframe(1)
    while f is not None and len(frames) < limit:
        code = f.f_code
        name = code.co_name
        if name == "_task_main":  # the thread entry: below this is the pool
            break
        if not (skip_runtime and _is_runtime_frame(code.co_filename)):
            frames.append(Frame(name, relpath(code.co_filename), f.f_lineno))
        f = f.f_back  # type: ignore[assignment]
    return tuple(frames)


def caller_site(depth: int = 2) -> tuple[str, int, str]:
    """(file, line, function) of the first frame outside the runtime, ``depth`` up."""
    if depth.__class__ is not int or depth < 0:
        from .validate import check_int
        check_int("caller_site", "depth", depth, 0)
    code, line = caller_code(depth + 1)
    if code is None:
        return ("<unknown>", 0, "<unknown>")
    return (relpath(code.co_filename), line, code.co_name)


def caller_code(depth: int) -> tuple[Any, int]:
    """(code object, line) of the first frame outside the runtime, ``depth`` up; (None, 0)
    if there is none. The raw form of :func:`caller_site`, for counters that name their
    sites only when printed (lock_stat's contention points): no path is worked out here."""
    try:
        f = sys._getframe(depth)
    except ValueError:  # deeper than the stack
        return (None, 0)
    while f is not None and _is_runtime_frame(f.f_code.co_filename):
        f = f.f_back  # type: ignore[assignment]
    if f is None:
        return (None, 0)
    return (f.f_code, f.f_lineno)


def code_site(code: Any, line: int) -> str:
    """``function (file:line)`` for a :func:`caller_code` answer, as a report prints a site."""
    if code is None:
        return "<unknown> (<unknown>:0)"
    return f"{code.co_name} ({relpath(code.co_filename)}:{line})"


def user_site(depth: int = 2) -> tuple[str, int, str]:
    """(file, line, function) of the first frame outside the whole package, ``depth`` up:
    the simulated code that called into the model (a driver's kmalloc line). Falls back
    to :func:`caller_site` when the call came from the package itself only."""
    f: Any = sys._getframe(depth)
    # the task's entry (_task_main) ends the walk: below it is the thread pool, not simulated code
    while (f is not None and f.f_code.co_name != "_task_main"
           and _in_package(f.f_code.co_filename)):
        f = f.f_back
    if f is None or f.f_code.co_name == "_task_main":
        return caller_site(depth + 1)
    return (relpath(f.f_code.co_filename), f.f_lineno, f.f_code.co_name)


@functools.lru_cache(maxsize=4096)
def _in_package(filename: str) -> bool:
    """Is ``filename`` a module of the package (cached: the event log asks per event)?"""
    return os.path.abspath(filename).startswith(_PKG_DIR + os.sep)


def format_call_trace(stack: tuple[Frame, ...]) -> list[str]:
    """The "Call Trace:" block of a splat."""
    if not stack:
        return []
    return ["Call Trace:", *(str(fr) for fr in stack)]


def warning_line(t: Any, file: str, line: int, fn: str = "") -> str:
    """The first line of a WARN() splat, today's layout: ``WARNING: CPU: <cpu> PID: <pid>
    at <file>:<line>``, and the warning function when the kernel's names one (its symbol
    after the site). A task without a CPU (between two) shows CPU 0."""
    cpu = t.cpu.id if t.cpu is not None else 0
    return f"WARNING: CPU: {cpu} PID: {t.pid} at {file}:{line}" + (f" {fn}" if fn else "")


__all__ = ["Frame", "Report", "relpath", "skip_frames_of", "capture_stack", "caller_site", "caller_code",
           "code_site", "user_site", "format_call_trace", "warning_line"]
