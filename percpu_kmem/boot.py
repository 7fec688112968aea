"""Boot: build the memory layers of a Machine, in start_kernel() order.

1. physical memory and zones (every page reserved, as after memmap_init_zone);
2. the boot phase: bootmem, the machine's ``init`` functions, then
   free_all_bootmem() hands every unreserved page to the buddy allocator;
3. the page allocator (watermarks, per-CPU lists) and reclaim;
4. kmem_cache_init(): the slab allocator and the kmalloc caches;
5. mempools' registry, vmalloc/ioremap and the per-CPU allocator.

Each init function returns its subsystem object and boot_machine stores it in the
machine's field (``m.slab = kmem_cache_init(m)``, ...); each layer registers its /proc
files and invariant checks on the machine itself.

Boot templates. A boot without ``init`` functions is a function of a few arguments only
(the memory size, the nodes, the CPUs, slab debugging, the cost table, lockdep on or
off: :func:`template_key`): every machine made with the same ones boots to the same state.
So the 32nd machine booted with a key (:data:`TEMPLATE_AFTER`) also compiles what its
boot made into a template (percpu_kmem/snapshot.py: one function that builds a copy of
every object the boot made), and from then on each new machine with that key gets its
own copy of that state instead of booting again: the same objects field for field, the
same /proc files, dmesg lines, checks and kswapd daemon, nothing shared with any other
machine. :func:`boot_from_scratch` is the boot itself; it is what the first machines of
a key, every machine with ``init`` functions or KASAN (whose shadow the boot writes), a
subclass of Machine, a memory above :data:`TEMPLATE_MAX_BYTES` and a machine made by a task
of another machine get, and every machine after ``boot_templates(False)``. A template is
refused (and the key boots from scratch for good; :data:`template_refusals` says why) when
its boot changed the runtime machine in any way but the known ones (the layers' fields,
their /proc files, checks, daemons, dmesg lines and per-CPU data), or its state holds an
object the snapshot cannot copy. docs/bootmem.md, "Boot templates", says more.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, Final

from .mm import bootmem, mempool, percpu, proc, slab, vmalloc
from .mm.page_alloc import PageAllocator
from .mm.physmem import PhysMem, parse_size
from .mm.vmscan import Reclaim
from .runtime.errors import KmemUsageError
from .runtime.machine import printk_log
from .runtime.task import current_task
from .snapshot import Unsupported, compile_graph, immutable

if TYPE_CHECKING:
    from .machine import Machine

#: a key's machines boot from scratch this many times; the last of them makes the template.
#: Making one costs about as much as 20 to 60 boots from scratch (the walk, the compile),
#: so a key booted a few times only (most of a test suite's) never pays for one.
TEMPLATE_AFTER: Final = 32
#: memory sizes above this always boot from scratch (a template keeps a copy of the page arrays)
TEMPLATE_MAX_BYTES: Final = 1 << 30
#: at most this many templates are kept (the oldest goes first)
TEMPLATE_MAX: Final = 8
#: printk's stamp of a dmesg line: uptime and caller
_STAMP: Final = re.compile(r"^\[[^\]]*\]\[[^\]]*\] ")
#: the runtime machine's fields a boot changes, each as the template puts it back (and the
#: CPUs' per-CPU ``data``: entries added)
_BOOT_CHANGES: Final = ("_procs", "_checkers", "_daemons", "dmesg", "_printk_last", "_uptime_base")


def boot_machine(m: Machine, templated: bool = True) -> None:
    """Boot ``m``'s memory layers: from its key's template if there is one, else from scratch
    (and make the template when the key has booted often enough). ``templated=False``: the
    caller's machine may not be templated (Machine passes it for its subclasses)."""
    try:
        size = parse_size(m.memory_arg)
    except (ValueError, TypeError) as e:
        raise KmemUsageError(f"memory={m.memory_arg!r}: {e}") from None
    key = template_key(m, size) if templated and _enabled[0] else None
    if key is None:
        boot_from_scratch(m, size)
        return
    tpl = _templates.get(key)
    if tpl is not None:
        tpl.apply(m)
        return
    seen = _booted.get(key, 0) + 1
    _booted[key] = seen
    if seen < TEMPLATE_AFTER or key in template_refusals:
        boot_from_scratch(m, size)
        return
    before = _runtime_mark(m)
    boot_from_scratch(m, size)
    try:
        tpl = BootTemplate(m, before)
    except Unsupported as e:
        template_refusals[key] = str(e)
        return
    _templates[key] = tpl
    while len(_templates) > TEMPLATE_MAX:
        _templates.popitem(last=False)


def boot_from_scratch(m: Machine, size: int) -> None:
    """The boot itself: build every memory layer of ``m`` (``size`` bytes of memory)."""
    try:
        mem = PhysMem(size, m.nr_nodes)
    except (ValueError, TypeError) as e:
        raise KmemUsageError(f"memory={m.memory_arg!r}: {e}") from None
    m.mem = mem
    m.bootmem = bootmem.bootmem_init(m, mem)
    bootmem.boot_phase(m, m.bootmem)
    pa = PageAllocator(m, mem)
    m.mm = pa
    pa.reclaim = Reclaim(pa)
    m.meminfo_hooks = []
    m.register_proc("buddyinfo", lambda: proc.buddyinfo(pa))
    m.register_proc("zoneinfo", lambda: proc.zoneinfo(pa))
    m.register_proc("meminfo", lambda: proc.meminfo(pa, m.meminfo_hooks))
    m.register_proc("vmstat", lambda: proc.vmstat(pa))
    m.register_checker("physmem", mem.check)
    m.register_checker("page_alloc", pa.check)
    m.register_checker("reclaim", pa.reclaim.check)
    m.slab = slab.kmem_cache_init(m)
    m.mempools = mempool.mempool_machine_init(m)
    m.vmalloc = vmalloc.vmalloc_init(m)
    m.percpu = percpu.percpu_init(m)


# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------
def template_key(m: Machine, size: int) -> Hashable | None:
    """What a boot without init functions depends on, or None when ``m`` cannot be templated."""
    if m.boot_init or m.kasan is not None or size > TEMPLATE_MAX_BYTES or current_task():
        return None  # (made by a task of another machine: its printk lines name that task)
    return (size, m.nr_nodes, m.nr_cpus, m.slab_debug, m.costs, m.lockdep is not None)


class BootTemplate:
    """The state one boot made (every object reachable from the memory layers, and what the
    boot added to the runtime machine), compiled into a function that builds a copy of it.

    ``m`` has just been booted from scratch (its layers not used yet); ``before`` is
    :func:`_runtime_mark` of ``m`` taken just before that boot.

    Raises:
        Unsupported: the boot changed the runtime machine beyond its known changes, or its
            state holds an object snapshot.py cannot copy.
    """

    def __init__(self, m: Machine, before: tuple[list[str], dict[str, Any], Any]) -> None:
        names, changes, rest = before
        after_names, after_changes, after_rest = _runtime_mark(m, names)
        if after_rest != rest or after_names[: len(names)] != names:
            raise Unsupported("the boot changed the runtime machine beyond its known changes")
        #: the layers, in the order the boot set them (so every copy's __dict__ has m's order)
        layers = {k: getattr(m, k) for k in after_names[len(names):]}
        added: dict[str, Any] = {}
        for k in ("_procs", "_checkers"):
            old, new = changes[k], after_changes[k]
            if any(new.get(n) is not v for n, v in old.items()):
                raise Unsupported(f"the boot replaced an entry of the machine's {k}")
            added[k] = {n: v for n, v in new.items() if n not in old}
        added["cpu_data"] = []
        for old, new in zip(changes["cpu_data"], after_changes["cpu_data"]):
            if any(new.get(n) is not v for n, v in old.items()):
                raise Unsupported("the boot replaced an entry of a CPU's per-CPU data")
            added["cpu_data"].append({n: v for n, v in new.items() if n not in old})
        for k in ("_daemons", "dmesg"):
            added[k] = after_changes[k][len(changes[k]):]
        for k in ("_printk_last", "_uptime_base"):
            added[k] = after_changes[k]
        #: where each external object (the machine's own, not the boot's) is found on a machine
        self.paths: list[tuple[Any, ...]] = []
        ids: dict[int, int] = {}

        def external(o: Any, path: tuple[Any, ...]) -> None:
            if not immutable(o) and id(o) not in ids:
                ids[id(o)] = len(self.paths)
                self.paths.append(path)

        external(m, ())
        for k in names:
            external(getattr(m, k), (k,))
        for k in names:
            v = getattr(m, k)
            if k in _BOOT_CHANGES:
                continue
            if type(v) is list:
                for i, x in enumerate(v):
                    external(x, (k, i))
                    if k == "cpus":
                        for a in type(x).__slots__:
                            if hasattr(x, a):
                                external(getattr(x, a), (k, i, a))
            elif not isinstance(v, type) and hasattr(v, "__dict__"):
                for a, x in vars(v).items():
                    external(x, (k, a))
        self.rebuild, used = compile_graph((layers, added), ids)
        #: the externals the state refers to (the machine, its CPUs, their per-CPU data, ...)
        self.paths = [self.paths[i] for i in used]

    def apply(self, m: Machine) -> None:
        """Give ``m`` (booting, its layers not set) its own copy of the template's state."""
        ext = [_resolve(m, p) for p in self.paths]
        layers, added = self.rebuild(ext)
        d = m.__dict__
        for k, v in layers.items():
            d[k] = v
        m._procs.update(added["_procs"])
        m._checkers.update(added["_checkers"])
        m._daemons.extend(added["_daemons"])
        m.dmesg.extend(added["dmesg"])
        for c, data in zip(m.cpus, added["cpu_data"]):
            c.data.update(data)
        for line in added["dmesg"]:  # loguru's side of printk (a boot without init prints at INFO)
            printk_log(_STAMP.sub("", line, 1))
        m._printk_last = added["_printk_last"]
        m._uptime_base = added["_uptime_base"]


def _resolve(m: Machine, path: tuple[Any, ...]) -> Any:
    o: Any = m
    for step in path:
        o = o[step] if type(step) is int else getattr(o, step)
    return o


def _fingerprint(v: Any, depth: int, m: Machine) -> Any:
    """What ``v`` looks like, ``depth`` levels down (values of immutables, sizes of the rest;
    the machine itself as a mark)."""
    if immutable(v):
        return v
    if v is m:
        return "<machine>"
    if depth == 0:
        return type(v).__name__
    if isinstance(v, (list, tuple)):
        return (len(v), tuple(_fingerprint(x, depth - 1, m) for x in v))
    if isinstance(v, dict):
        return tuple((k if immutable(k) else id(k), _fingerprint(x, depth - 1, m)) for k, x in v.items())
    if hasattr(v, "__len__"):
        return (type(v).__name__, len(v))
    fields = dict(getattr(v, "__dict__", {}))
    for n in getattr(type(v), "__slots__", ()):
        if n != "__weakref__" and hasattr(v, n):
            fields[n] = getattr(v, n)
    return (type(v).__name__, tuple((n, _fingerprint(x, depth - 1, m)) for n, x in fields.items()))


def _runtime_mark(m: Machine, only: list[str] | None = None) -> tuple[list[str], dict[str, Any], Any]:
    """The runtime machine's fields in order, copies of the ones a boot changes (and of each
    CPU's per-CPU data), and a fingerprint of the others (two levels down; of the fields in
    ``only``, if given: the layers are not looked at, nor their dicts made)."""
    d = vars(m)
    changes = {k: (dict(d[k]) if isinstance(d[k], dict) else list(d[k]) if isinstance(d[k], list) else d[k])
               for k in _BOOT_CHANGES}
    changes["cpu_data"] = [dict(c.data) for c in m.cpus]
    rest: list[Any] = [[_fingerprint({a: getattr(c, a) for a in type(c).__slots__ if a != "data" and hasattr(c, a)},
                                     2, m) for c in m.cpus]]
    rest += [(k, _fingerprint(v, 2, m)) for k, v in d.items()
             if k not in _BOOT_CHANGES and k != "cpus" and (only is None or k in only)]
    return list(d), changes, rest


#: the templates, by key (oldest first); boots from scratch per key; why a key has none
_templates: OrderedDict[Hashable, BootTemplate] = OrderedDict()
_booted: dict[Hashable, int] = {}
template_refusals: dict[Hashable, str] = {}
_enabled = [True]


def boot_templates(enabled: bool) -> bool:
    """Turn boot templates on (the default) or off (every machine boots from scratch);
    returns the previous setting."""
    if not isinstance(enabled, bool):
        raise KmemUsageError(f"boot_templates(): enabled(={enabled!r}) must be True or False")
    was = _enabled[0]
    _enabled[0] = enabled
    return was


def clear_boot_templates() -> None:
    """Forget every template and count (the next machines of each key boot from scratch)."""
    _templates.clear()
    _booted.clear()
    template_refusals.clear()


def template_for(key: Hashable) -> Callable[[list[Any]], Any] | None:
    """The compiled rebuild function of ``key``'s template, None if it has none (for tests)."""
    tpl = _templates.get(key)
    return tpl.rebuild if tpl is not None else None


__all__ = ["TEMPLATE_AFTER", "TEMPLATE_MAX_BYTES", "TEMPLATE_MAX", "BootTemplate", "boot_machine",
           "boot_from_scratch", "boot_templates", "clear_boot_templates", "template_for", "template_key",
           "template_refusals"]
