"""Lock validation in the manner of lockdep (CONFIG_PROVE_LOCKING, kernel/locking/lockdep.c).

``SmpMachine(lockdep=True)`` hangs a :class:`Lockdep` off the machine; every spinlock,
mutex, rwlock_t and rw_semaphore acquisition and release of its tasks goes through it (one ``is None`` test
in runtime/locks.py when it is off). Like the kernel's graph across a boot, its state
persists across the runs of that machine.

Kept from the kernel:

- **Lock classes.** A lock belongs to the class of its initialisation site: file, line
  and the call's bytecode offset, so two calls on one line are two classes and a loop
  over one call is one class (the kernel's static ``lock_class_key`` per
  ``spin_lock_init()`` expansion); a named lock to the class of its site and name
  (different names at one site, from a helper say, are different classes). A class is
  printed by its name, or ``file:line`` for an unnamed lock; another class of a name
  already printed gets ``#2``, ``#3`` (``name_version``), as two sites of one name do in
  the kernel. The key is stored on the lock at init; the class of
  this machine is cached on the lock at its first acquisition (lockdep_map's
  ``class_cache``).
- **Dependencies.** Acquiring B while holding A (in the same irq context, the nearest
  non-trylock lock and the trylocks above it, as ``check_prevs_add``) adds the edge
  A -> B, with the stack where it was first seen. Before adding it, a breadth-first
  search from B looks for A: a path means a cycle, reported as "WARNING: possible
  circular locking dependency detected" with the chain in reverse order, the
  "Chain exists of:" line when the cycle is longer than two, and the CPU0/CPU1
  scenario. An ABBA between two code paths is reported the first time both orders
  have been seen, whether or not the run deadlocked.
- **irq safety.** Usage bits per class, set at acquisition: IN-HARDIRQ-W (taken in
  hardirq context), IN-SOFTIRQ-W (taken while serving a softirq), HARDIRQ-ON-W (taken
  with interrupts enabled) and SOFTIRQ-ON-W (taken with interrupts and softirqs
  enabled), each with the stack that first set it. A class that gets both bits of one
  kind is "WARNING: inconsistent lock state", whether or not the interrupt ever landed
  inside the critical section. Across the graph: an edge that would connect an
  irq-safe class (the held lock or one taken before it) with an irq-unsafe one (the
  new lock or one taken after it) is "WARNING: HARDIRQ-safe -> HARDIRQ-unsafe lock
  order detected" (check_irq_usage), and a class that gets a usage bit whose exclusive
  bit a class it reaches (or that reaches it) has is "WARNING: possible irq lock
  inversion dependency detected" (mark_lock_irq).
- **Recursion.** Acquiring a lock whose class the task already holds (another
  instance, or the same one: then, as in the kernel where lockdep speaks first, the
  lock's own check follows, CONFIG_DEBUG_SPINLOCK's "spinlock recursion" Oops or the
  mutex's report, the model's stand-in for a CPU or task that would hang for ever) is
  "WARNING: possible recursive locking detected"; so is the fs_reclaim map taken again.
  A trylock is never checked for recursion and marks no used-in-irq usage
  (mark_usage(): "non-trylock use in a hardirq or softirq context").
- **Read locks, 2.6.x rules.** The acquire's ``read``: 0 a write, 1 a non-recursive
  read (``down_read()``), 2 a recursive read (``read_lock()``). A recursive read of a
  class held for reading is no recursion (check_deadlock()) and adds no dependency; a
  held recursive read gets no dependency (the search goes on below it); a recursive
  read being taken has its dependencies checked, not stored (check_prev_add()). Reads
  set the _READ usage bits, which conflict with the other direction's write bit, and a
  write bit with the other direction's read bit too (mark_lock_irq(), with
  STRICT_READ_CHECKS); check_irq_usage() pairs read-safe classes with write-unsafe ones.
- **fs_reclaim.** The pseudo-lock the page allocator takes around every allocation that
  may enter filesystem reclaim (``fs_reclaim_acquire``/``fs_reclaim_release``, which
  the mm layer calls): a lock taken inside reclaim gets the edge fs_reclaim -> L, and
  a __GFP_FS allocation under L then closes the cycle L -> fs_reclaim. The
  ``memalloc_nofs_save()``/``memalloc_noio_save()`` scopes narrow the mask
  (``current_gfp_context``) as the kernel does, so an allocation inside them takes no
  fs_reclaim.

Simplified (docs/lockdep.md says more):

- Each distinct problem is reported once per machine (a cycle by the pair of classes
  whose edge would close it, an inconsistency by class and bits, a recursion by
  class) and validation goes on; the kernel's ``debug_locks_off()`` instead stops
  lockdep after its first report. The offending edge is not added to the graph.
- Not the 5.x read/write dependency rules (docs/lockdep.md, "Read locks"); the pairs a
  recursive read was checked against are remembered instead of a lock chain cache; no
  subclasses (``spin_lock_nested``), no lock chains cache, no
  ``irq event stamp`` lines, no kernel ident line, no ``... key at:`` lines. Usage is
  marked at acquisition and, as the kernel's mark_held_locks(), on the locks held when
  ``local_irq_enable()``/``local_irq_restore()`` or ``local_bh_enable()`` turn
  interrupts or bottom halves back on (the unlock forms included); the allocators'
  own save/restore pairs inside their fast paths restore a state and mark nothing.
- Where the kernel prints a lock instance's address, the model prints the instance's
  name; where it prints an ``ip`` symbol, ``file:line``.
- Lockdep costs no virtual time and takes no scheduling decision: a workload runs the
  same, trace and results, with lockdep on or off.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final

from .errors import KmemUsageError
from .preempt import HARDIRQ_MASK, HARDIRQ_OFFSET, SOFTIRQ_MASK, SOFTIRQ_OFFSET
from .report import Frame, capture_stack, relpath, warning_line
from .task import Task, current_task
from .validate import check_int

# -- usage bits (kernel/locking/lockdep_states.h, lockdep_internals.h) -----------------------
LOCK_USED_IN_HARDIRQ: Final = 1 << 0
LOCK_ENABLED_HARDIRQ: Final = 1 << 1
LOCK_USED_IN_SOFTIRQ: Final = 1 << 2
LOCK_ENABLED_SOFTIRQ: Final = 1 << 3
#: the _READ bits: the same usages by a read acquisition (read_lock(), down_read())
LOCK_USED_IN_HARDIRQ_READ: Final = 1 << 4
LOCK_ENABLED_HARDIRQ_READ: Final = 1 << 5
LOCK_USED_IN_SOFTIRQ_READ: Final = 1 << 6
LOCK_ENABLED_SOFTIRQ_READ: Final = 1 << 7

USAGE_STR: Final = {LOCK_USED_IN_HARDIRQ: "IN-HARDIRQ-W", LOCK_ENABLED_HARDIRQ: "HARDIRQ-ON-W",
                    LOCK_USED_IN_SOFTIRQ: "IN-SOFTIRQ-W", LOCK_ENABLED_SOFTIRQ: "SOFTIRQ-ON-W",
                    LOCK_USED_IN_HARDIRQ_READ: "IN-HARDIRQ-R", LOCK_ENABLED_HARDIRQ_READ: "HARDIRQ-ON-R",
                    LOCK_USED_IN_SOFTIRQ_READ: "IN-SOFTIRQ-R", LOCK_ENABLED_SOFTIRQ_READ: "SOFTIRQ-ON-R"}
#: exclusive_bit(): the *write* bit of the same state, the other direction (a read bit too
#: excludes the write bit only: two reads never conflict)
_EXCLUSIVE: Final = {LOCK_USED_IN_HARDIRQ: LOCK_ENABLED_HARDIRQ, LOCK_ENABLED_HARDIRQ: LOCK_USED_IN_HARDIRQ,
                     LOCK_USED_IN_SOFTIRQ: LOCK_ENABLED_SOFTIRQ, LOCK_ENABLED_SOFTIRQ: LOCK_USED_IN_SOFTIRQ,
                     LOCK_USED_IN_HARDIRQ_READ: LOCK_ENABLED_HARDIRQ,
                     LOCK_ENABLED_HARDIRQ_READ: LOCK_USED_IN_HARDIRQ,
                     LOCK_USED_IN_SOFTIRQ_READ: LOCK_ENABLED_SOFTIRQ,
                     LOCK_ENABLED_SOFTIRQ_READ: LOCK_USED_IN_SOFTIRQ}
#: mark_lock_irq()'s "read in write conflicts": a write bit also excludes the read bit of
#: the other direction (``excl_bit + 1``)
_EXCLUSIVE_READ: Final = {LOCK_USED_IN_HARDIRQ: LOCK_ENABLED_HARDIRQ_READ,
                          LOCK_ENABLED_HARDIRQ: LOCK_USED_IN_HARDIRQ_READ,
                          LOCK_USED_IN_SOFTIRQ: LOCK_ENABLED_SOFTIRQ_READ,
                          LOCK_ENABLED_SOFTIRQ: LOCK_USED_IN_SOFTIRQ_READ}
_READ_BITS: Final = (LOCK_USED_IN_HARDIRQ_READ | LOCK_ENABLED_HARDIRQ_READ | LOCK_USED_IN_SOFTIRQ_READ
                     | LOCK_ENABLED_SOFTIRQ_READ)
#: the order mark_usage() marks them in (a read acquisition sets the _READ bit instead)
_MARK_ORDER: Final = (LOCK_USED_IN_HARDIRQ, LOCK_USED_IN_HARDIRQ_READ, LOCK_USED_IN_SOFTIRQ,
                      LOCK_USED_IN_SOFTIRQ_READ, LOCK_ENABLED_HARDIRQ, LOCK_ENABLED_HARDIRQ_READ,
                      LOCK_ENABLED_SOFTIRQ, LOCK_ENABLED_SOFTIRQ_READ)
#: the bit numbers' order (lockdep_states.h: per state used-in, used-in-read, enabled, enabled-read)
_USAGE_ORDER: Final = (LOCK_USED_IN_HARDIRQ, LOCK_USED_IN_HARDIRQ_READ, LOCK_ENABLED_HARDIRQ,
                       LOCK_ENABLED_HARDIRQ_READ, LOCK_USED_IN_SOFTIRQ, LOCK_USED_IN_SOFTIRQ_READ,
                       LOCK_ENABLED_SOFTIRQ, LOCK_ENABLED_SOFTIRQ_READ)
_USED_IN_IRQ_ALL: Final = (LOCK_USED_IN_HARDIRQ | LOCK_USED_IN_SOFTIRQ | LOCK_USED_IN_HARDIRQ_READ
                           | LOCK_USED_IN_SOFTIRQ_READ)
#: an irq-unsafe (write-enabled) bit -> the used-in bits, write and read, it conflicts with in the graph
_SAFE_OF: Final = {LOCK_ENABLED_HARDIRQ: LOCK_USED_IN_HARDIRQ | LOCK_USED_IN_HARDIRQ_READ,
                   LOCK_ENABLED_SOFTIRQ: LOCK_USED_IN_SOFTIRQ | LOCK_USED_IN_SOFTIRQ_READ}
#: state_name() without the read mark (mark_lock_irq() strips it): the irq class of a bit
_STATE_NAME: Final = {b: ("HARDIRQ" if b & 0x33 else "SOFTIRQ") for b in _USAGE_ORDER}
#: state_name() of check_irq_usage(): a read bit is "HARDIRQ-READ" (state_rnames[])
_STATE_RNAME: Final = {b: _STATE_NAME[b] + ("-READ" if b & _READ_BITS else "") for b in _USAGE_ORDER}

# -- wait types, printed as {outer:inner} (include/linux/lockdep_types.h) ------------------
LD_WAIT_INV: Final = 0  # not checked: lockdep maps such as fs_reclaim print {0:0}
LD_WAIT_SPIN: Final = 2  # spinlock_t, rwlock_t (LD_WAIT_CONFIG == LD_WAIT_SPIN without PROVE_RAW_LOCK_NESTING)
LD_WAIT_SLEEP: Final = 3  # mutex, rw_semaphore

# -- irq contexts of a held lock (LOCK_CHAIN_*_CONTEXT) -----------------------------------
_CTX_SOFTIRQ: Final = 1
_CTX_HARDIRQ: Final = 2

# -- GFP bits and task flags the fs_reclaim annotation reads. The runtime must not import
# the memory layers: these mirror percpu_kmem/mm/gfp.py (2.6.11 values) and
# mm/page_alloc.py's PF_MEMALLOC; tests/runtime/test_lockdep.py checks that they agree.
GFP_WAIT_BIT: Final = 0x10  # __GFP_WAIT: the allocation may sleep, so it may reclaim
GFP_IO_BIT: Final = 0x40  # __GFP_IO
GFP_FS_BIT: Final = 0x80  # __GFP_FS
GFP_BITS_MASK: Final = 0xFFFF  # __GFP_BITS_MASK (16 bits in 2.6.11)
PF_MEMALLOC: Final = 0x00000800  # in Task.flags: the task is reclaim itself
#: memalloc scope bits kept in ``Task.gfp_ctx`` (the kernel keeps them in task->flags)
PF_MEMALLOC_NOFS: Final = 0x00040000
PF_MEMALLOC_NOIO: Final = 0x00080000

#: frames of these files are the runtime's, not the acquisition site
_RUNTIME_DIR: Final = os.path.dirname(os.path.abspath(__file__))
_RUNTIME_FILES: Final = frozenset(os.path.join(_RUNTIME_DIR, f) for f in os.listdir(_RUNTIME_DIR)
                                  if f.endswith(".py"))

# -- held-lock entries: tuples (lockdep's struct held_lock) --------------------------------
_H_LOCK, _H_CLASS, _H_CTX, _H_TRY, _H_FILE, _H_LINE, _H_READ = range(7)


class LockClass:
    """One lock class of one machine: its name, usage bits, and the edges to the
    classes taken after it (``after``: class -> the stack where the edge was first seen)
    and from the classes taken before it (``before``, the same edges the other way)."""

    __slots__ = ("name", "wait", "usage", "usage_stack", "after", "before")

    def __init__(self, name: str, wait: int) -> None:
        self.name = name
        self.wait = wait
        self.usage = 0
        self.usage_stack: dict[int, tuple[Frame, ...]] = {}
        self.after: dict[LockClass, tuple[Frame, ...]] = {}
        self.before: dict[LockClass, tuple[Frame, ...]] = {}

    def usage_chars(self) -> str:
        """get_usage_chars(): one char per state and then its read form: '+' enabled,
        '-' used in irq, '?' both, '.' neither (``{.+.+}``: read with irqs on only)."""
        out = []
        u = self.usage
        for used, enabled in ((LOCK_USED_IN_HARDIRQ, LOCK_ENABLED_HARDIRQ),
                              (LOCK_USED_IN_HARDIRQ_READ, LOCK_ENABLED_HARDIRQ_READ),
                              (LOCK_USED_IN_SOFTIRQ, LOCK_ENABLED_SOFTIRQ),
                              (LOCK_USED_IN_SOFTIRQ_READ, LOCK_ENABLED_SOFTIRQ_READ)):
            c = "."
            if u & enabled:
                c = "?" if u & used else "+"
            elif u & used:
                c = "-"
            out.append(c)
        return "".join(out)

    def label(self) -> str:
        """print_lock_name(): ``(name){usage}-{outer:inner}``."""
        return f"({self.name}){{{self.usage_chars()}}}-{{{self.wait}:{self.wait}}}"

    def header_lines(self, depth: int) -> list[str]:
        """print_lock_class_header(): the class, then each usage bit it has with the stack
        that set it (the kernel's ``... key at:`` line names a key address: left out)."""
        pad = " " * depth
        lines = [f"{pad}-> {self.label()} {{"]  # "%*s->" then print_lock_name()'s " ("
        for bit in _USAGE_ORDER:
            if self.usage & bit:
                head = f"{pad}   {USAGE_STR[bit]}"
                lines.append(f"{head} at:")
                # the trace is indented by what printk() returned for the two parts of the
                # line before it, on top of the depth: 20 spaces at depth 0, 22 at depth 1
                lines += _trace_lines(self.usage_stack.get(bit, ()), depth + len(head) + len(" at:"))
        lines.append(f"{pad} }}")
        return lines

    def __repr__(self) -> str:
        return f"<lock class {self.name}>"


class LockdepMap:
    """A lockdep map that is no lock (``STATIC_LOCKDEP_MAP_INIT``): fs_reclaim."""

    __slots__ = ("name", "dep_key")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dep_key = ("map", name)

    def __repr__(self) -> str:
        return f"<lockdep_map {self.name}>"


#: the page allocator's reclaim pseudo-lock (mm/page_alloc.c ``__fs_reclaim_map``)
FS_RECLAIM_MAP: Final = LockdepMap("fs_reclaim")


def lock_class_key(kind: str, name: str | None, depth: int) -> Any:
    """The class key of a lock being initialised: ``(kind, file, line, bytecode offset)`` of
    the first caller outside the runtime, ``depth`` frames up, and for a named lock its
    name after that (cold: once per lock)."""
    f: Any = sys._getframe(depth)
    while f is not None and f.f_code.co_filename in _RUNTIME_FILES:
        f = f.f_back
    site = ("<unknown>", 0, 0) if f is None else (f.f_code.co_filename, f.f_lineno, f.f_lasti)
    return (kind, *site) if name is None else (kind, *site, name)


class Lockdep:
    """The validator of one machine: classes, the dependency graph, usage bits, the
    locks each task holds (with the irq context and site of each), and the problems
    already reported."""

    def __init__(self, machine: Any) -> None:
        self.m = machine
        self.classes: dict[Any, LockClass] = {}
        self._names: dict[str, int] = {}
        #: task -> its held locks, innermost last (tuples, see _H_*)
        self.held: dict[Task, list[tuple[Any, ...]]] = {}
        #: the problems already reported (each distinct one is reported once)
        self.reported: set[tuple[Any, ...]] = set()
        #: (held class, recursive-read class) pairs already checked: their dependency is
        #: checked but not stored, so without this every read_lock() would search again
        self._read_checked: set[tuple[LockClass, LockClass]] = set()
        self._graph_lock = threading.Lock()

    # -- classes ------------------------------------------------------------------
    def class_of(self, lock: Any) -> LockClass:
        """The class of ``lock`` on this machine (registered at its first use)."""
        key = lock.dep_key
        cls = self.classes.get(key)
        if cls is None:
            with self._graph_lock:
                cls = self.classes.get(key)
                if cls is None:
                    cls = self._register(key)
        return cls

    def _register(self, key: Any) -> LockClass:
        kind = key[0]
        # a named lock (kind, site, name), a lockdep map (kind, name), an unnamed lock (kind, site)
        name = key[-1] if len(key) in (2, 5) else f"{relpath(key[1])}:{key[2]}"
        n = self._names.get(name, 0) + 1
        self._names[name] = n
        if n > 1:  # __print_lock_name(): name_version "#%d" for another key of one name
            name = f"{name}#{n}"
        wait = LD_WAIT_SLEEP if kind in ("mutex", "rwsem") else LD_WAIT_SPIN if kind in ("spinlock", "rwlock") \
            else LD_WAIT_INV
        cls = LockClass(name, wait)
        self.classes[key] = cls
        return cls

    def class_named(self, name: str) -> LockClass | None:
        """The class printed as ``name``, if any lock of it was ever acquired."""
        for cls in self.classes.values():
            if cls.name == name:
                return cls
        return None

    def dependencies(self) -> list[tuple[str, str]]:
        """Every edge of the graph, as (class taken first, class taken under it)."""
        return sorted((a.name, b.name) for a in self.classes.values() for b in a.after)

    # -- acquire and release (called from runtime/locks.py) ---------------------------
    def acquire(self, t: Task, lock: Any, trylock: bool = False, read: int = 0) -> None:
        """lock_acquire(): mark usage, check recursion and new dependencies, then record
        ``lock`` as held by ``t``. Called before a blocking acquisition waits (the lock
        may never be granted: that is the point), after a trylock succeeded. ``read`` is
        lockdep's: 0 a write (exclusive) acquisition, 1 a non-recursive read
        (``down_read()``), 2 a recursive read (``read_lock()`` of an rwlock_t)."""
        cls = lock.dep_class
        if cls is None:
            cls = lock.dep_class = self.class_of(lock)
        self._acquire(t, lock, cls, trylock, read)

    def _acquire(self, t: Task, lock: Any, cls: LockClass, trylock: bool, read: int = 0) -> None:
        c = t.cpu
        pc = c.preempt_count
        ctx = (_CTX_HARDIRQ if pc & HARDIRQ_MASK else 0) | (_CTX_SOFTIRQ if pc & SOFTIRQ_OFFSET else 0)
        f: Any = sys._getframe(2)
        files = _RUNTIME_FILES
        while f.f_code.co_filename in files:
            f = f.f_back
        entry = (lock, cls, ctx, trylock, f.f_code.co_filename, f.f_lineno, read)
        new = 0
        if ctx and not trylock:  # mark_usage(): only a non-trylock use marks the class used in irq
            new = (LOCK_USED_IN_HARDIRQ if ctx & _CTX_HARDIRQ else 0) | (
                LOCK_USED_IN_SOFTIRQ if ctx & _CTX_SOFTIRQ else 0)
        if not c.irqs_off:
            new |= LOCK_ENABLED_HARDIRQ if pc & SOFTIRQ_MASK else LOCK_ENABLED_HARDIRQ | LOCK_ENABLED_SOFTIRQ
        if read:  # the _READ bits instead (each is the write bit shifted by 4)
            new <<= 4
        stack = self.held.get(t)
        ok = True
        if new & ~cls.usage:
            ok = self._mark(t, entry, new, stack, pc, not c.irqs_off)
        if not stack:
            if stack is None:
                self.held[t] = [entry]
            else:
                stack.append(entry)
            return
        if ok and not trylock:
            for h in stack:
                if h[_H_CLASS] is cls:
                    # check_deadlock(): another instance of the class or the same one (then
                    # the lock's own debug check follows: the spinlock Oops, the mutex's
                    # report, the model's stand-ins for a CPU or task that would hang);
                    # a recursive read under a read of the class is allowed, and adds no
                    # dependency (validate_chain()'s ret == 2)
                    if not (read == 2 and h[_H_READ]):
                        self._recursive(t, entry, h, stack)
                    break
            else:
                for i in range(len(stack) - 1, -1, -1):
                    h = stack[i]
                    if h[_H_CTX] != ctx:
                        break
                    if h[_H_READ] == 2:  # check_prevs_add(): a recursive read gets no new dependency
                        continue
                    if read == 2:  # checked, not stored (check_prev_add(), 2.6.x): once per pair
                        key = (h[_H_CLASS], cls)
                        if key not in self._read_checked and not self._add_dep(t, h, entry, stack, False):
                            break
                    elif cls not in h[_H_CLASS].after and not self._add_dep(t, h, entry, stack):
                        break
                    if not h[_H_TRY]:
                        break
        stack.append(entry)

    def hardirqs_on(self, t: Task) -> None:
        """lockdep_hardirqs_on(): interrupts were enabled while ``t`` holds locks: each one
        becomes HARDIRQ-ON, and SOFTIRQ-ON if bottom halves are enabled too, as if it had
        been taken now (mark_held_locks()). In hardirq context that is the handler's bug
        (a spin_unlock_irq() or local_irq_enable() in an interrupt handler): lockdep warns,
        DEBUG_LOCKS_WARN_ON(lockdep_hardirq_context()), and marks nothing."""
        pc = t.cpu.preempt_count
        if pc & HARDIRQ_MASK:
            self._irqs_on_in_hardirq(t)
            return
        stack = self.held.get(t)
        if stack:
            self._mark_held(t, stack, LOCK_ENABLED_HARDIRQ | (0 if pc & SOFTIRQ_MASK else LOCK_ENABLED_SOFTIRQ))

    def _irqs_on_in_hardirq(self, t: Task) -> None:
        """lockdep_hardirqs_on_prepare()'s "Can't allow enabling interrupts while in an
        interrupt handler" (cold: a report), once per site."""
        file, line = _site_of(3)
        key = ("irqs_on_in_hardirq", file, line)
        if key in self.reported:
            return
        self.reported.add(key)
        self.m.report("lockdep_irqs_on_in_hardirq",
                      [warning_line(t, file, line, "lockdep_hardirqs_on_prepare"),
                       "DEBUG_LOCKS_WARN_ON(lockdep_hardirq_context())"], site=f"{file}:{line}")

    def softirqs_on(self, t: Task) -> None:
        """trace_softirqs_on(): bottom halves were enabled, with interrupts on, while ``t``
        holds locks: each one becomes SOFTIRQ-ON."""
        stack = self.held.get(t)
        if stack:
            self._mark_held(t, stack, LOCK_ENABLED_SOFTIRQ)

    def _mark_held(self, t: Task, stack: list[tuple[Any, ...]], new: int) -> None:
        """mark_held_locks(), once per bit: every held lock HARDIRQ-ON first, then every
        one SOFTIRQ-ON (__trace_hardirqs_on_caller()), stopping at the first report."""
        pc = t.cpu.preempt_count
        held = list(stack)
        for bit in (LOCK_ENABLED_HARDIRQ, LOCK_ENABLED_SOFTIRQ):
            if new & bit:
                for h in held:
                    b = bit << 4 if h[_H_READ] else bit  # a lock held for reading: the _READ bit
                    if not h[_H_CLASS].usage & b and not self._mark(t, h, b, stack, pc, True):
                        return

    def release(self, t: Task, lock: Any) -> None:
        """lock_release(): ``lock`` is no longer held by ``t``."""
        stack = self.held.get(t)
        if not stack:
            return
        if stack[-1][_H_LOCK] is lock:
            stack.pop()
        else:
            for i in range(len(stack) - 2, -1, -1):
                if stack[i][_H_LOCK] is lock:
                    del stack[i]
                    break

    def downgrade(self, t: Task, lock: Any) -> None:
        """lock_downgrade(): ``t`` now holds ``lock`` for (non-recursive) reading."""
        stack = self.held.get(t)
        for i, h in enumerate(stack or ()):
            if h[_H_LOCK] is lock:
                stack[i] = (*h[:_H_READ], 1)  # type: ignore[index]
                return

    def holds(self, t: Task, lock: Any) -> bool:
        return any(h[_H_LOCK] is lock for h in self.held.get(t, ()))

    def end_run(self) -> None:
        """The run is over: its tasks hold nothing any more (the graph stays). A task's
        list stays in ``held`` while the run lasts, empty when it holds nothing."""
        self.held.clear()

    # -- the checks (cold: a new usage bit, a new edge, a report) --------------------------
    def _mark(self, t: Task, entry: tuple[Any, ...], new: int, stack: list[tuple[Any, ...]] | None,
              pc: int, irqs_on: bool) -> bool:
        """mark_lock(): set the new usage bits; an exclusive bit already set is an
        inconsistent lock state; an exclusive bit of a class that this one reaches in the
        graph (a used-in-irq bit looks forwards, an irq-enabled bit backwards:
        mark_lock_irq()) is an irq lock inversion. Returns False after a report."""
        cls: LockClass = entry[_H_CLASS]
        bad = None
        inversion = None
        with self._graph_lock:
            for bit in _MARK_ORDER:
                if new & bit and not cls.usage & bit:
                    cls.usage |= bit
                    cls.usage_stack[bit] = capture_stack()
                    excl = _EXCLUSIVE[bit]
                    if cls.usage & excl:  # valid_state()
                        bad = (excl, bit)
                        break
                    mask = excl
                    if not bit & _READ_BITS:  # a write bit: the read in write conflicts too
                        mask |= _EXCLUSIVE_READ[bit]
                        if cls.usage & _EXCLUSIVE_READ[bit]:
                            bad = (_EXCLUSIVE_READ[bit], bit)
                            break
                    # the graph (STRICT_READ_CHECKS): a used-in bit looks forwards, an
                    # irq-on bit backwards, for the write bit it excludes, a write bit for
                    # the read one too
                    forwards = bool(bit & _USED_IN_IRQ_ALL)
                    path = _bfs(cls, _has_usage(mask), forwards)
                    if path is not None:
                        found = path[-1][1].usage & mask
                        inversion = (bit, excl if found & excl else mask & ~excl, forwards, path)
                        break
        if inversion is not None:
            self._inversion(t, entry, stack, *inversion)
            return False
        if bad is None:
            return True
        key = ("inconsistent", cls, *bad)
        if key in self.reported:
            return False
        self.reported.add(key)
        prev_bit, new_bit = bad
        hc = 1 if pc & HARDIRQ_MASK else 0
        sc = 1 if pc & SOFTIRQ_OFFSET else 0
        se = 0 if pc & SOFTIRQ_MASK else 1
        title = "WARNING: inconsistent lock state"
        lines = ["=" * len(title), title, "-" * len(title),
                 f"inconsistent {{{USAGE_STR[prev_bit]}}} -> {{{USAGE_STR[new_bit]}}} usage.",
                 f"{t.comm}/{t.pid} [HC{hc}[{(pc & HARDIRQ_MASK) // HARDIRQ_OFFSET}]:"
                 f"SC{sc}[{(pc & SOFTIRQ_MASK) // SOFTIRQ_OFFSET}]:HE{int(irqs_on)}:SE{se}] takes:",
                 _lock_line(entry),
                 f"{{{USAGE_STR[prev_bit]}}} state was registered at:",
                 *_trace_lines(cls.usage_stack.get(prev_bit, ()), 1),
                 "", "other info that might help us debug this:",
                 " Possible unsafe locking scenario:", "",
                 "       CPU0", "       ----",
                 f"  lock({cls.name});", "  <Interrupt>", f"    lock({cls.name});",
                 "", " *** DEADLOCK ***", "",
                 *_held_lines(t, stack), "", "stack backtrace:"]
        self.m.report("lockdep_inconsistent", lines, site=f"{cls.name}:{USAGE_STR[prev_bit]}->"
                      f"{USAGE_STR[new_bit]}",
                      extra={"class": cls.name, "prev_usage": USAGE_STR[prev_bit],
                             "new_usage": USAGE_STR[new_bit]})
        return False

    def _recursive(self, t: Task, entry: tuple[Any, ...], prev: tuple[Any, ...],
                   stack: list[tuple[Any, ...]]) -> None:
        """print_deadlock_bug(): a second lock of a class the task already holds."""
        cls: LockClass = entry[_H_CLASS]
        key = ("recursive", cls)
        if key in self.reported:
            return
        self.reported.add(key)
        title = "WARNING: possible recursive locking detected"
        lines = ["=" * len(title), title, "-" * len(title),
                 f"{t.comm}/{t.pid} is trying to acquire lock:", _lock_line(entry), "",
                 "but task is already holding lock:", _lock_line(prev), "",
                 "other info that might help us debug this:",
                 " Possible unsafe locking scenario:", "",
                 "       CPU0", "       ----",
                 f"  lock({prev[_H_CLASS].name});", f"  lock({cls.name});",
                 "", " *** DEADLOCK ***", "", " May be due to missing lock nesting notation", "",
                 *_held_lines(t, stack), "", "stack backtrace:"]
        self.m.report("lockdep_recursive", lines, site=cls.name,
                      extra={"class": cls.name, "instances": [_inst_name(prev[_H_LOCK]),
                                                              _inst_name(entry[_H_LOCK])]})

    def _add_dep(self, t: Task, prev: tuple[Any, ...], entry: tuple[Any, ...],
                 stack: list[tuple[Any, ...]], store: bool = True) -> bool:
        """check_prev_add(): add prev -> next unless next already leads to prev (a cycle)
        or the edge would connect an irq-safe class with an irq-unsafe one
        (check_irq_usage), both reported. Returns False after a report. With ``store``
        False (next is a recursive read) the checks run and the edge is not added."""
        a: LockClass = prev[_H_CLASS]
        b: LockClass = entry[_H_CLASS]
        irq = None
        with self._graph_lock:
            if b in a.after:
                return True
            path = _bfs(b, lambda c: c is a, True)
            if path is None:
                irq = _irq_usage(a, b)
                if irq is None:
                    if store:
                        a.after[b] = b.before[a] = capture_stack()
                    else:
                        self._read_checked.add((a, b))
                    return True
        if irq is not None:
            key = ("irq_order", irq[0][-1][1], irq[1][-1][1])
            if key in self.reported:
                return False
            self.reported.add(key)
            self._bad_irq_dependency(t, prev, entry, stack, *irq)
            return False
        assert path is not None
        chain = [(cls, nxt.after[cls] if nxt is not None else ()) for nxt, cls in path]
        key = ("circular", a, b)
        if key in self.reported:
            return False
        self.reported.add(key)
        self._circular(t, prev, entry, chain, stack)
        return False

    def _circular(self, t: Task, prev: tuple[Any, ...], entry: tuple[Any, ...],
                  chain: list[tuple[LockClass, tuple[Frame, ...]]], stack: list[tuple[Any, ...]]) -> None:
        """print_circular_bug(): ``chain`` is the path next -> ... -> prev already in the
        graph, each class with the stack of the edge that reached it."""
        source: LockClass = entry[_H_CLASS]
        target: LockClass = prev[_H_CLASS]
        parent = chain[-2][0]
        title = "WARNING: possible circular locking dependency detected"
        lines = ["=" * len(title), title, "-" * len(title),
                 f"{t.comm}/{t.pid} is trying to acquire lock:", _lock_line(entry), "",
                 "but task is already holding lock:", _lock_line(prev), "",
                 "which lock already depends on the new lock.", "", "",
                 "the existing dependency chain (in reverse order) is:"]
        now = capture_stack()
        depth = len(chain) - 1
        for i in range(depth, -1, -1):
            cls, frames = chain[i]
            lines += ["", f"-> #{i} {cls.label()}:", *_trace_lines(frames if i else now, 6)]
        lines += ["", "other info that might help us debug this:", ""]
        if parent is not source:
            lines += ["Chain exists of:", f"  {source.name} --> {parent.name} --> {target.name}", ""]
        lines += [" Possible unsafe locking scenario:", "",
                  "       CPU0                    CPU1",
                  "       ----                    ----",
                  f"  lock({target.name});",
                  f"                               lock({parent.name});",
                  f"                               lock({target.name});",
                  f"  lock({source.name});",
                  "", " *** DEADLOCK ***", "",
                  *_held_lines(t, stack), "", "stack backtrace:"]
        self.m.report("lockdep_circular", lines, site=f"{target.name}->{source.name}",
                      extra={"chain": [cls.name for cls, _ in chain], "held": target.name,
                             "acquiring": source.name})

    def _irq_state_line(self, t: Task) -> str:
        c = t.cpu
        pc = c.preempt_count
        hc = 1 if pc & HARDIRQ_MASK else 0
        sc = 1 if pc & SOFTIRQ_OFFSET else 0
        se = 0 if pc & SOFTIRQ_MASK else 1
        return (f"{t.comm}/{t.pid} [HC{hc}[{(pc & HARDIRQ_MASK) // HARDIRQ_OFFSET}]:"
                f"SC{sc}[{(pc & SOFTIRQ_MASK) // SOFTIRQ_OFFSET}]:HE{int(not c.irqs_off)}:SE{se}]")

    def _bad_irq_dependency(self, t: Task, prev: tuple[Any, ...], entry: tuple[Any, ...],
                            stack: list[tuple[Any, ...]], back: _Path, fwd: _Path,
                            safe_bit: int, unsafe_bit: int) -> None:
        """print_bad_irq_dependency(): the new edge prev -> next would connect an irq-safe
        class with an irq-unsafe one; the edge is not added."""
        safe, unsafe = back[-1][1], fwd[-1][1]
        a: LockClass = prev[_H_CLASS]
        b: LockClass = entry[_H_CLASS]
        irq = _STATE_RNAME[safe_bit]
        rule = "=" * 53
        now = capture_stack()
        lines = [rule, f"WARNING: {irq}-safe -> {irq}-unsafe lock order detected", "-" * 53,
                 f"{self._irq_state_line(t)} is trying to acquire:", _lock_line(entry), "",
                 "and this task is already holding:", _lock_line(prev),
                 "which would create a new lock dependency:", f" {a.label()} -> {b.label()}", "",
                 f"but this new dependency connects a {irq}-irq-safe lock:", f" {safe.label()}", "",
                 f"... which became {irq}-irq-safe at:", *_trace_lines(safe.usage_stack.get(safe_bit, ()), 1), "",
                 f"to a {irq}-irq-unsafe lock:", f" {unsafe.label()}", "",
                 f"... which became {irq}-irq-unsafe at:", "...",
                 *_trace_lines(unsafe.usage_stack.get(unsafe_bit, ()), 1), "",
                 "other info that might help us debug this:", "",
                 *_irq_scenario(safe, unsafe, a, b),
                 *_held_lines(t, stack), "",
                 f"the dependencies between {irq}-irq-safe lock and the holding lock:",
                 *_dependency_lines_backwards(back), "",
                 # two pr_warn()s, two lines
                 "the dependencies between the lock to be acquired", f" and {irq}-irq-unsafe lock:",
                 *_dependency_lines(fwd, now, True), "",
                 "stack backtrace:"]
        self.m.report("lockdep_irq_order", lines, site=f"{safe.name}->{unsafe.name}:{irq}",
                      extra={"irqclass": irq, "safe": safe.name, "unsafe": unsafe.name,
                             "held": a.name, "acquiring": b.name})

    def _inversion(self, t: Task, entry: tuple[Any, ...], stack: list[tuple[Any, ...]] | None,
                   bit: int, excl: int, forwards: bool, path: _Path) -> None:
        """print_irq_inversion_bug(): ``entry``'s class just got usage ``bit`` and reaches
        (``forwards``) or is reached by a class with the exclusive usage ``excl``."""
        this: LockClass = entry[_H_CLASS]
        other = path[-1][1]
        key = ("inversion", this, other, forwards)
        if key in self.reported:
            return
        self.reported.add(key)
        irq = _STATE_RNAME[excl] if excl & _READ_BITS else _STATE_NAME[bit]  # state_name(read_bit)
        middle = path[1][1] if len(path) > 1 else this
        scenario = (_irq_scenario(this, other, middle, other) if forwards
                    else _irq_scenario(other, this, middle, this))
        title = "WARNING: possible irq lock inversion dependency detected"
        lines = ["=" * len(title), title, "-" * len(title),
                 f"{t.comm}/{t.pid} just changed the state of lock:", _lock_line(entry),
                 f"but this lock took another, {irq}-unsafe lock in the past:" if forwards
                 else f"but this lock was taken by another, {irq}-safe lock in the past:",
                 f" {other.label()}", "", "",
                 "and interrupts could create inverse lock ordering between them.", "", "",
                 "other info that might help us debug this:",
                 *scenario, *_held_lines(t, stack), "",
                 "the shortest dependencies between 2nd lock and 1st lock:",
                 *_dependency_lines(path, capture_stack(), forwards), "",
                 "stack backtrace:"]
        safe, unsafe = (this, other) if forwards else (other, this)
        self.m.report("lockdep_irq_inversion", lines, site=f"{safe.name}->{unsafe.name}:{irq}",
                      extra={"irqclass": irq, "safe": safe.name, "unsafe": unsafe.name,
                             "class": this.name, "usage": USAGE_STR[bit]})

    def bad_unlock(self, t: Task, lock: Any) -> None:
        """print_unlock_imbalance_bug(): ``t`` releases what it does not hold."""
        file, line = _site_of(2)
        title = "WARNING: bad unlock balance detected!"
        lines = ["=" * len(title), title, "-" * len(title),
                 f"{t.comm}/{t.pid} is trying to release lock ({_inst_name(lock)}) at:",
                 f"{file}:{line}", "but there are no more locks to release!", "",
                 "other info that might help us debug this:",
                 *_held_lines(t, self.held.get(t)), "", "stack backtrace:"]
        self.m.report("lockdep_bad_unlock", lines, site=f"{_inst_name(lock)}@{file}:{line}",
                      extra={"lock": _inst_name(lock)})


def _bfs(start: LockClass, match: Callable[[LockClass], bool],
         forwards: bool) -> list[tuple[LockClass | None, LockClass]] | None:
    """The shortest path from ``start`` (itself included) to a class ``match`` accepts,
    along the edges (``forwards``) or against them, as (parent, class) pairs from
    ``(None, start)`` to ``(.., found)``; None if there is none (__bfs())."""
    parents: dict[LockClass, LockClass | None] = {start: None}
    queue = deque([start])
    while queue:
        cls = queue.popleft()
        if match(cls):
            path: list[tuple[LockClass | None, LockClass]] = []
            node: LockClass | None = cls
            while node is not None:
                path.append((parents[node], node))
                node = parents[node]
            path.reverse()
            return path
        for nxt in (cls.after if forwards else cls.before):
            if nxt not in parents:
                parents[nxt] = cls
                queue.append(nxt)
    return None


_Path = list[tuple[LockClass | None, LockClass]]


def _has_usage(mask: int) -> Callable[[LockClass], bool]:
    """usage_match(): a class with a usage bit of ``mask``."""
    return lambda cls: bool(cls.usage & mask)


def _irq_usage(prev: LockClass, nxt: LockClass) -> tuple[_Path, _Path, int, int] | None:
    """check_irq_usage(): would the edge prev -> nxt connect an irq-safe class (prev or a
    class taken before it) with an irq-unsafe one (nxt or a class taken after it)? The
    paths to the safe and the unsafe class and their usage bits, or None."""
    used = 0
    seen = {prev}
    queue = deque([prev])
    while queue:  # step 1: every used-in-irq bit of the backwards subgraph
        cls = queue.popleft()
        used |= cls.usage
        for b in cls.before:
            if b not in seen:
                seen.add(b)
                queue.append(b)
    used &= _USED_IN_IRQ_ALL
    if not used:
        return None
    forward_mask = 0  # the write irq-on bits a used-in bit (write or read) excludes
    for bit in _MARK_ORDER:
        if used & bit:
            forward_mask |= _EXCLUSIVE[bit]
    fwd = _bfs(nxt, _has_usage(forward_mask), True)  # step 2
    if fwd is None:
        return None
    unsafe = fwd[-1][1]
    backward_mask = 0
    for bit, safe_bits in _SAFE_OF.items():
        if unsafe.usage & bit:
            backward_mask |= safe_bits
    back = _bfs(prev, _has_usage(backward_mask), False)  # step 3
    if back is None:
        return None
    safe = back[-1][1]
    for bit in _MARK_ORDER:  # step 4: the pair of bits
        if safe.usage & bit & _USED_IN_IRQ_ALL and unsafe.usage & _EXCLUSIVE[bit]:
            return back, fwd, bit, _EXCLUSIVE[bit]
    return None


def _dependency_lines(path: _Path, now: tuple[Frame, ...], forwards: bool) -> list[str]:
    """print_shortest_lock_dependencies(): from the class found back to the root, each
    with its usage and the stack of the edge that reached it (the root: ``now``)."""
    lines: list[str] = []
    for depth in range(len(path) - 1, -1, -1):
        parent, cls = path[depth]
        if parent is None:
            frames = now
        else:
            frames = parent.after[cls] if forwards else parent.before[cls]
        lines += [*cls.header_lines(depth), f"{' ' * depth} ... acquired at:", *_trace_lines(frames, 2), ""]
    return lines


def _dependency_lines_backwards(path: _Path) -> list[str]:
    """print_shortest_lock_dependencies_backwards(): from the irq-safe class found back to
    the held lock; each class after the first is printed with the stack of the dependency
    below it (the class found has none of its own), so the held lock shows how the class
    above it was taken with it held."""
    lines: list[str] = []
    trace: tuple[Frame, ...] | None = None
    for depth in range(len(path) - 1, -1, -1):
        parent, cls = path[depth]
        lines += cls.header_lines(depth)
        if trace is not None:
            lines += [f"{' ' * depth} ... acquired at:", *_trace_lines(trace, 2), ""]
        if parent is not None:
            trace = parent.before[cls]
    return lines


def _irq_scenario(safe: LockClass, unsafe: LockClass, prev: LockClass, nxt: LockClass) -> list[str]:
    """print_irq_lock_scenario()."""
    middle = nxt if prev is safe else prev
    lines = []
    if middle is not unsafe:
        lines += ["Chain exists of:", f"  {safe.name} --> {middle.name} --> {unsafe.name}", ""]
    return [*lines, " Possible interrupt unsafe locking scenario:", "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            f"  lock({unsafe.name});",
            "                               local_irq_disable();",
            f"                               lock({safe.name});",
            f"                               lock({middle.name});",
            "  <Interrupt>",
            f"    lock({safe.name});",
            "", " *** DEADLOCK ***", ""]


def _inst_name(lock: Any) -> str:
    return str(lock.name)


def _lock_line(h: tuple[Any, ...]) -> str:
    """print_lock(): the instance (its name where the kernel prints its address), the
    class with its usage and wait type, and where it was acquired."""
    return f"{_inst_name(h[_H_LOCK])} {h[_H_CLASS].label()}, at: {relpath(h[_H_FILE])}:{h[_H_LINE]}"


def _held_lines(t: Task, stack: Iterable[tuple[Any, ...]] | None) -> list[str]:
    """lockdep_print_held_locks()."""
    held = list(stack or ())
    if not held:
        return [f"no locks held by {t.comm}/{t.pid}."]
    n = len(held)
    return [f"{n} lock{'s' if n > 1 else ''} held by {t.comm}/{t.pid}:",
            *(f" #{i}: {_lock_line(h)}" for i, h in enumerate(held))]


def _trace_lines(frames: tuple[Frame, ...], spaces: int) -> list[str]:
    """print_lock_trace(..., spaces): one frame a line, indented by 1 + ``spaces``
    (stack_trace_print()'s ``"%*c%pS"`` with ``1 + spaces``)."""
    pad = " " * (spaces + 1)
    return [f"{pad}{fr.function} ({fr.file}:{fr.line})" for fr in frames]


def _site_of(depth: int) -> tuple[str, int]:
    f: Any = sys._getframe(depth)
    while f is not None and f.f_code.co_filename in _RUNTIME_FILES:
        f = f.f_back
    if f is None:
        return ("<unknown>", 0)
    return (relpath(f.f_code.co_filename), f.f_lineno)


# -- fs_reclaim and the memalloc scopes (mm/page_alloc.c, include/linux/sched/mm.h) -----------
def _gfp_arg(fn: str, gfp_mask: Any) -> int:
    if gfp_mask.__class__ is not int or not 0 <= gfp_mask <= GFP_BITS_MASK:
        check_int(fn, "gfp_mask", gfp_mask, 0, GFP_BITS_MASK, "GFP_* flags")
    return gfp_mask


def _narrow(t: Task, gfp: int) -> int:
    ctx = t.gfp_ctx
    if ctx & PF_MEMALLOC_NOIO:
        return gfp & ~(GFP_IO_BIT | GFP_FS_BIT)
    if ctx & PF_MEMALLOC_NOFS:
        return gfp & ~GFP_FS_BIT
    return gfp


def current_gfp_context(gfp_mask: int) -> int:
    """``gfp_mask`` as the current task's memalloc scopes allow it: without __GFP_FS
    inside memalloc_nofs_save(), without __GFP_IO and __GFP_FS inside memalloc_noio_save()."""
    t = current_task()
    t.gfp_ctx  # noqa: B018 - NotInTaskError first, outside a task
    _gfp_arg("current_gfp_context", gfp_mask)
    return _narrow(t, gfp_mask)


def _takes_fs_reclaim(t: Task, gfp: int) -> bool:
    """__need_reclaim() and __GFP_FS after current_gfp_context(): an allocation that may
    wait, by a task that is not reclaim itself, allowed to call into the filesystem."""
    gfp = _narrow(t, gfp)
    return bool(gfp & GFP_WAIT_BIT and gfp & GFP_FS_BIT and not t.flags & PF_MEMALLOC)


def fs_reclaim_acquire(gfp_mask: int) -> None:
    """Take the fs_reclaim pseudo-lock when an allocation with ``gfp_mask`` could enter
    filesystem reclaim (nothing when lockdep is off). The page allocator calls it, and
    fs_reclaim_release() at once, around every allocation; reclaim holds it throughout."""
    t = current_task()
    ld = t.machine.lockdep  # NotInTaskError first, outside a task
    _gfp_arg("fs_reclaim_acquire", gfp_mask)
    if ld is not None and _takes_fs_reclaim(t, gfp_mask):
        ld._acquire(t, FS_RECLAIM_MAP, ld.class_of(FS_RECLAIM_MAP), False)


def fs_reclaim_release(gfp_mask: int) -> None:
    """Release what fs_reclaim_acquire(``gfp_mask``) took."""
    t = current_task()
    ld = t.machine.lockdep  # NotInTaskError first, outside a task
    _gfp_arg("fs_reclaim_release", gfp_mask)
    if ld is not None and _takes_fs_reclaim(t, gfp_mask):
        if ld.holds(t, FS_RECLAIM_MAP):
            ld.release(t, FS_RECLAIM_MAP)
        else:
            ld.bad_unlock(t, FS_RECLAIM_MAP)


def fs_reclaim_enter() -> None:
    """__fs_reclaim_acquire(): reclaim itself (kswapd's balance_pgdat) holds fs_reclaim
    throughout, whatever its GFP mask; a lock a shrinker takes then depends on it."""
    t = current_task()
    ld = t.machine.lockdep
    if ld is not None:
        ld._acquire(t, FS_RECLAIM_MAP, ld.class_of(FS_RECLAIM_MAP), False)


def fs_reclaim_exit() -> None:
    """__fs_reclaim_release(): the end of what fs_reclaim_enter() began."""
    t = current_task()
    ld = t.machine.lockdep
    if ld is not None and ld.holds(t, FS_RECLAIM_MAP):
        ld.release(t, FS_RECLAIM_MAP)


def _scope_save(bit: int) -> int:
    t = current_task()
    flags = t.gfp_ctx & bit  # NotInTaskError outside a task
    t.gfp_ctx |= bit
    return flags


def _scope_restore(fn: str, save: str, bit: int, flags: Any) -> None:
    t = current_task()
    ctx = t.gfp_ctx  # NotInTaskError outside a task
    if flags.__class__ is not int or flags not in (0, bit):
        raise KmemUsageError(f"{fn}: flags(={flags!r}) must be what {save}() returned (0 or {bit:#x})")
    t.gfp_ctx = (ctx & ~bit) | flags


def memalloc_nofs_save() -> int:
    """Enter a NOFS scope: allocations of this task lose __GFP_FS until the matching
    memalloc_nofs_restore(). Returns the flags to pass to it (scopes nest)."""
    return _scope_save(PF_MEMALLOC_NOFS)


def memalloc_nofs_restore(flags: int) -> None:
    _scope_restore("memalloc_nofs_restore", "memalloc_nofs_save", PF_MEMALLOC_NOFS, flags)


def memalloc_noio_save() -> int:
    """Enter a NOIO scope: allocations of this task lose __GFP_IO and __GFP_FS until the
    matching memalloc_noio_restore(). Returns the flags to pass to it."""
    return _scope_save(PF_MEMALLOC_NOIO)


def memalloc_noio_restore(flags: int) -> None:
    _scope_restore("memalloc_noio_restore", "memalloc_noio_save", PF_MEMALLOC_NOIO, flags)


__all__ = ["fs_reclaim_enter", "fs_reclaim_exit", "LOCK_USED_IN_HARDIRQ", "LOCK_ENABLED_HARDIRQ",
           "LOCK_USED_IN_SOFTIRQ", "LOCK_ENABLED_SOFTIRQ", "LOCK_USED_IN_HARDIRQ_READ",
           "LOCK_ENABLED_HARDIRQ_READ", "LOCK_USED_IN_SOFTIRQ_READ", "LOCK_ENABLED_SOFTIRQ_READ", "USAGE_STR",
           "LD_WAIT_INV", "LD_WAIT_SPIN",
           "LD_WAIT_SLEEP", "GFP_WAIT_BIT", "GFP_IO_BIT", "GFP_FS_BIT", "GFP_BITS_MASK", "PF_MEMALLOC",
           "PF_MEMALLOC_NOFS", "PF_MEMALLOC_NOIO", "LockClass", "LockdepMap", "FS_RECLAIM_MAP",
           "lock_class_key", "Lockdep", "current_gfp_context", "fs_reclaim_acquire", "fs_reclaim_release",
           "memalloc_nofs_save", "memalloc_nofs_restore", "memalloc_noio_save", "memalloc_noio_restore"]
