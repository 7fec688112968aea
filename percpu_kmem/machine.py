"""Machine: the simulated computer users build, the runtime's SMP machine plus memory.

``Machine`` is :class:`~percpu_kmem.runtime.machine.SmpMachine` (CPUs, tasks,
policies, interrupts, reports; it knows nothing about memory) with the memory
subsystems declared below as typed fields, booted in start_kernel() order by
:func:`percpu_kmem.boot.boot_machine`. A machine built with ``boot=False`` has none
of them: touching one raises :class:`NoMemoryLayers`, a usage error that says so (such a
machine's class is a subclass of its own, made for the purpose: see ``_Unbooted``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

from .boot import boot_machine
from .mm.fault_inject import FaultAttr, parse_fault_inject
from .mm.kasan import Kasan, kasan_init
from .mm.kcsan import Kcsan
from .mm.kmemleak import KMEMLEAK_MODES, Kmemleak, kmemleak_init
from .runtime.errors import KmemUsageError, NoMemoryLayers
from .runtime.kernel import SYSTEM_BOOTING, SYSTEM_RUNNING
from .runtime.machine import SmpMachine

if TYPE_CHECKING:
    from .mm.bootmem import Bootmem
    from .mm.mempool import MempoolRegistry
    from .mm.page_alloc import PageAllocator
    from .mm.percpu import PerCpuState
    from .mm.physmem import PhysMem
    from .mm.slab import SlabAllocator
    from .mm.vmalloc import VmallocSpace
    from .runtime.hb import HappensBefore

#: The memory subsystems boot.py gives a machine (absent with boot=False).
MEMORY_LAYERS: Final = frozenset({"mem", "mm", "bootmem", "slab", "mempools", "vmalloc", "percpu",
                                  "meminfo_hooks"})


class Machine(SmpMachine):
    """A simulated SMP machine with the kernel's memory-allocation layers.

    Args (beyond SmpMachine's cpus, nodes, policy, seed, replay, on_bug, timeout,
    irq_rate and the policy's options):
        memory: physical memory size ("64M", "4G" or bytes); the memory layers are
            built on it.
        boot: build the memory layers (default). ``boot=False`` gives a bare runtime
            machine, quick to make, for tests of the runtime alone.
        init: callables run as kernel threads in the boot phase, before the buddy
            allocator exists: the place for ``alloc_bootmem`` (see mm/bootmem.py).
        slab_debug: turn slab debugging (poison, redzones, double-free checks) on for
            every cache of this machine, as CONFIG_DEBUG_SLAB does.
        fault_inject: failslab and fail_page_alloc knobs (mm/fault_inject.py): a dict
            ``{"failslab": {"probability": 10, "times": -1}, ...}`` or the boot options
            ``"failslab=<interval>,<probability>,<space>,<times> fail_page_alloc=..."``;
            ``m.failslab`` and ``m.fail_page_alloc`` change them at any time.
        lockdep: lockdep-style lock validation (runtime/lockdep.py).
        kasan: KASAN-style checking of every access to simulated memory (mm/kasan.py):
            out-of-bounds, use-after-free, double and invalid frees, in KASAN's words.
        kmemleak: kmemleak-style leak detection (mm/kmemleak.py): ``True`` lists what a scan
            finds in ``m.proc("kmemleak")``; a scan runs on demand (``m.kmemleak_scan()``) and
            at the end of a scenario, when ``m.check()`` walks the machine (explore() does
            after every run);
            ``"fail"`` also makes each leak a kernel report (kind "kmemleak"), so a run
            that leaks fails explore() as any unexpected report does.
        kcsan: KCSAN-style data-race detection (mm/kcsan.py, runtime/hb.py): plain
            accesses through the memory accessors that race with another access of
            another task or interrupt handler, not ordered by happens-before, are
            reported ("BUG: KCSAN: data-race in f / g"). Changes no schedule and no result.
    """

    # The memory subsystems, in boot order (percpu_kmem/boot.py assigns them).
    mem: PhysMem  #: physical memory: pages, zones, nodes, struct page state
    bootmem: Bootmem  #: the boot allocator's state and statistics
    mm: PageAllocator  #: the page allocator: buddy, per-CPU lists, watermarks, reclaim
    slab: SlabAllocator  #: kmem_cache_* and the kmalloc caches
    mempools: MempoolRegistry  #: every mempool of the machine
    vmalloc: VmallocSpace  #: the vmalloc/ioremap window and its page tables
    percpu: PerCpuState  #: per-CPU areas and alloc_percpu
    meminfo_hooks: list[Callable[[], list[tuple[str, int]]]]  #: extra /proc/meminfo lines
    kasan: Kasan | None  #: the KASAN shadow (Machine(kasan=True)), else None
    kmemleak: Kmemleak | None  #: the leak detector (Machine(kmemleak=...)), else None

    def __init__(self, cpus: int = 1, memory: int | str = "64M", *, boot: bool = True,
                 init: Iterable[Callable[[], Any]] = (), slab_debug: bool = False,
                 fault_inject: dict[str, dict[str, Any]] | str | None = None, kasan: bool = False,
                 kmemleak: bool | str = False, kcsan: bool = False, **kw: Any) -> None:
        if not isinstance(kcsan, bool):
            raise KmemUsageError(f"Machine: kcsan(={kcsan!r}) must be True or False")
        if not isinstance(boot, bool):
            raise KmemUsageError(f"Machine: boot(={boot!r}) must be True or False")
        if not isinstance(kasan, bool):
            raise KmemUsageError(f"Machine: kasan(={kasan!r}) must be True or False")
        if kmemleak not in KMEMLEAK_MODES or (kmemleak.__class__ is not bool and not isinstance(kmemleak, str)):
            raise KmemUsageError(f"Machine: kmemleak(={kmemleak!r}) must be False, True or \"fail\"")
        if (kasan or kmemleak) and not boot:
            raise KmemUsageError("Machine: kasan and kmemleak check simulated memory: they need boot=True")
        if not isinstance(slab_debug, bool):
            raise KmemUsageError(f"Machine: slab_debug(={slab_debug!r}) must be True or False")
        if isinstance(init, (str, bytes)) or not isinstance(init, Iterable):
            raise KmemUsageError(f"Machine: init(={init!r}) must be a list of callables (boot-time "
                                 f"init functions)")
        boot_init = tuple(init)
        for fn in boot_init:
            if not callable(fn):
                raise KmemUsageError(f"init takes callables (boot-time init functions), got {fn!r}")
        faults = parse_fault_inject(fault_inject)
        super().__init__(cpus, **kw)
        self.fault_inject_arg = fault_inject
        self.failslab = FaultAttr("failslab", self.seed)
        self.fail_page_alloc = FaultAttr("fail_page_alloc", self.seed)
        for name, knobs in faults.items():
            getattr(self, name).configure(**knobs)
        self.memory_arg = memory
        self.booted = boot
        self.boot_init: tuple[Callable[[], Any], ...] = boot_init
        self.slab_debug = slab_debug
        self.kasan = kasan_init(self) if kasan else None
        self.kmemleak = None
        if not boot:
            self.__class__ = _unbooted(type(self))
        if boot:
            self.system_state = SYSTEM_BOOTING
            boot_machine(self, templated=type(self) is Machine)  # a subclass may override what boot calls
            self.system_state = SYSTEM_RUNNING
            self.slab.failslab = self.failslab
            self.mm.fail_page_alloc = self.fail_page_alloc
            if kmemleak:  # from here on: what boot allocated is the kernel's own, never a leak
                self.kmemleak = kmemleak_init(self, fail=kmemleak == "fail")
        #: the data-race detector (mm/kcsan.py), None unless kcsan=True; its happens-before
        #: clocks (``hb``) are what every new task and the interrupts keep up to date
        self.kcsan: Kcsan | None = None
        self.hb: HappensBefore | None = None
        if kcsan:
            self.kcsan = Kcsan(self)
            self.hb = self.irq.hb = self.kcsan.hb
            if boot:
                self.mm.kcsan = self.kcsan

    def run(self, *fns: Callable[[], Any], names: Iterable[str] | None = None) -> list[Any]:
        """SmpMachine.run, with the fault-injection draws seeded for this run."""
        seed = self.seed if self._runs == 0 else self.seed * 1_000_003 + self._runs
        self.failslab.reseed(seed)
        self.fail_page_alloc.reseed(seed)
        if self.kmemleak is not None:
            self.kmemleak.run_starts()
        if self.kcsan is not None and (self._engine is None or self._engine.finished):
            self.kcsan.reset()  # everything before the run happens before each of its tasks
        return super().run(*fns, names=names)

    def kmemleak_scan(self) -> list[str]:
        """``echo scan > /sys/kernel/debug/kmemleak``: scan now; the texts of the leaks found
        that were not reported before (see mm/kmemleak.py). Needs ``Machine(kmemleak=...)``."""
        if self.kmemleak is None:
            raise KmemUsageError("kmemleak_scan(): this machine has no kmemleak (Machine(kmemleak=True))")
        return self.kmemleak.scan()

    def shaping_args(self) -> dict[str, Any]:
        args = super().shaping_args()
        head = {k: args.pop(k) for k in ("cpus", "policy", "seed")}
        extra: dict[str, Any] = {"memory": self.memory_arg, "slab_debug": self.slab_debug}
        if self.fault_inject_arg is not None:
            extra["fault_inject"] = self.fault_inject_arg
        if self.kasan is not None:
            extra["kasan"] = True
        if self.kmemleak is not None:
            extra["kmemleak"] = "fail" if self.kmemleak.fail else True
        if not self.booted:
            extra["boot"] = False
        if self.kcsan is not None:  # it shapes the reports, not the schedule
            extra["kcsan"] = True
        return {**head, **extra, **args}

    def _replay_caveats(self) -> str:
        return " (pass the same init= functions)" if self.boot_init else ""


class _Unbooted:
    """What a machine built with ``boot=False`` adds to its class: a memory layer it never
    got is a clear NoMemoryLayers (a KmemUsageError), not a bare AttributeError.

    A mixin of a subclass made for the occasion (:func:`_unbooted`), not a ``__getattr__``
    of Machine itself: a class with ``__getattr__`` loses CPython's specialised attribute
    loads, and the allocators' fast paths read ``machine.slab``, ``machine.mm`` and
    ``machine.lockdep`` on every call.
    """

    def __getattr__(self, name: str) -> Any:
        if name in MEMORY_LAYERS:
            raise NoMemoryLayers(name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute {name!r}")


#: the unbooted twin of each Machine class (Machine, or a user's subclass of it)
_UNBOOTED: dict[type, type] = {}


def _unbooted(cls: type) -> type:
    """``cls`` with :class:`_Unbooted` mixed in, under the same name (made once per class)."""
    if issubclass(cls, _Unbooted):  # type(m)(..., boot=False) of an unbooted machine m
        return cls
    sub = _UNBOOTED.get(cls)
    if sub is None:
        sub = _UNBOOTED[cls] = type(cls.__name__, (_Unbooted, cls), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__, "__doc__": cls.__doc__})
    return sub


__all__ = ["Machine", "MEMORY_LAYERS"]
