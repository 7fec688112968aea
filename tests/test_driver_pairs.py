"""Classic driver bugs and their fixed twins, audited with the detectors on.

Each pair is a small driver as an LDD3 reader would write it with this package (scull
and its quantum sets, a "short"-style interrupt handler with a bottom half, per-CPU
statistics, mempools, slab caches, the page allocator, vmalloc/ioremap, reference
counts, error paths). ``body(m, bug)`` runs the buggy driver with ``bug=True`` and its
twin, identical but for the fix, with ``bug=False``, on a machine with lockdep, KASAN
and kmemleak (``"fail"``) on, or KCSAN where the bug is a data race.

The verdicts checked, per pair:

- the buggy driver is reported, with the report kind its detector gives, by the
  default campaign (``percpu_kmem.testing.CAMPAIGN``, as ``percpu-kmem stress`` and
  ``explore(policies=None)`` run it) within its seed budget, and the report's first
  line is the kernel's wording;
- a bug that needs an unlucky schedule (``RACES``) is also found by ``explore()`` with its
  default policies and seed count;
- the fixed twin is clean (no report, no exception, ``m.check()`` passes) under random,
  pct, free and virtual, five seeds each.

The end of the file holds the model problems the audit found, each the smallest test
that shows it, marked ``xfail(strict=True)`` with the problem in one line: the lead
fixes them, and the strict mark makes a fix visible (the test then passes and must lose
its mark). Three pairs were also added to the zoo (stress/zoo/bh_lock_without_bh.py,
kref_get_unlocked_lookup.py, cache_destroy_busy.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from percpu_kmem.campaign import Outcome, plan, run_campaign, run_one
from percpu_kmem.linux import (
    BUG,
    DEFINE_PER_CPU,
    GFP_ATOMIC,
    GFP_KERNEL,
    PAGE_SIZE,
    READ_ONCE,
    SLAB_CTOR_VERIFY,
    SLAB_DEBUG_INITIAL,
    SLAB_DESTROY_BY_RCU,
    TASK_INTERRUPTIBLE,
    WRITE_ONCE,
    __get_free_page,
    atomic_dec_and_test,
    atomic_inc,
    atomic_set,
    c_ulong,
    copy_from_user,
    copy_to_user,
    cpu_relax,
    finish_wait,
    free_irq,
    free_page,
    get_cpu,
    get_cpu_var,
    init_waitqueue_head,
    ioremap,
    iounmap,
    jiffies,
    kfree,
    kmalloc,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmemleak_not_leak,
    kzalloc,
    local_irq_restore,
    local_irq_save,
    mem_read,
    memcpy,
    mempool_alloc,
    mempool_create_kmalloc_pool,
    mempool_create_slab_pool,
    mempool_destroy,
    mempool_free,
    memset,
    msleep,
    mutex_init,
    mutex_lock,
    mutex_unlock,
    open_softirq,
    per_cpu_ptr,
    preempt_point,
    prepare_to_wait,
    put_cpu,
    put_cpu_var,
    raise_irq,
    raise_softirq,
    read_u8,
    read_u32,
    request_irq,
    schedule,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_bh,
    spin_unlock_irq,
    spin_unlock_irqrestore,
    udelay,
    vfree,
    vmalloc,
    wait_event_interruptible,
    wake_up_all,
    wake_up_interruptible,
    write_u32,
)
from percpu_kmem.machine import Machine
from percpu_kmem.mm.mmio import register_io_device
from percpu_kmem.scenarios import StressScenario
from percpu_kmem.testing import DEFAULT_SEEDS, UnexpectedReport, explore

pytestmark = pytest.mark.timeout(120)

#: The detectors every pair runs with (KCSAN pairs add kcsan=True instead of kasan).
DETECTORS: dict[str, Any] = {"lockdep": True, "kasan": True, "kmemleak": "fail"}
#: The policies and seeds every fixed twin must be clean under.
TWIN_POLICIES = ("random", "pct", "free", "virtual")
TWIN_SEEDS = range(5)
# -- LDD3 scull: quantum sets under a mutex ----------------------------------------------
#
# struct scull_dev { struct scull_qset *data; unsigned long size; }       (8 bytes, i386)
# struct scull_qset { void **data; struct scull_qset *next; }            (8 bytes)
# dev->data -> qset -> data[SCULL_QSET] -> quantum of SCULL_QUANTUM bytes.

SCULL_QUANTUM = 64
SCULL_QSET = 4


def _scull_follow(dev: int, item: int) -> int:
    """scull_follow() for item 0..: the qset pointer array's slot address, allocating the
    qset and its array as scull_write does (caller holds the mutex)."""
    qs = read_u32(dev)
    if not qs:
        qs = kzalloc(8, GFP_KERNEL)
        write_u32(dev, qs)
    arr = read_u32(qs)
    if not arr:
        arr = kzalloc(SCULL_QSET * 4, GFP_KERNEL)
        write_u32(qs, arr)
    return arr + 4 * item


def _scull_trim(dev: int, free_array: bool) -> None:
    """scull_trim(): free every quantum, the qset's pointer array and the qset."""
    qs = read_u32(dev)
    while qs:
        arr = read_u32(qs)
        if arr:
            for i in range(SCULL_QSET):
                kfree(read_u32(arr + 4 * i) or None)
            if free_array:
                kfree(arr)
        nxt = read_u32(qs + 4)
        kfree(qs)
        qs = nxt
    write_u32(dev, 0)
    write_u32(dev + 4, 0)


def _scull_dev(box: dict[str, Any]) -> None:
    dev = kzalloc(8, GFP_KERNEL)
    kmemleak_not_leak(dev)          # static struct scull_dev scull_devices[]: a global
    box["dev"] = dev
    box["mutex"] = mutex_init("scull_mutex")


def scull_trim_keeps_array(m: Machine, bug: bool) -> None:
    """scull_trim() frees the quanta and the qset but forgets kfree(dptr->data)."""
    box: dict[str, Any] = {}

    def writer(item: int) -> Callable[[], None]:
        def write() -> None:
            mutex_lock(box["mutex"])
            slot = _scull_follow(box["dev"], item)
            if not read_u32(slot):
                q = kmalloc(SCULL_QUANTUM, GFP_KERNEL)
                write_u32(slot, q)
                memset(q, 0x41, SCULL_QUANTUM)
            write_u32(box["dev"] + 4, (item + 1) * SCULL_QUANTUM)
            mutex_unlock(box["mutex"])
        return write

    def release() -> None:
        mutex_lock(box["mutex"])
        _scull_trim(box["dev"], free_array=not bug)
        mutex_unlock(box["mutex"])
        kfree(box["dev"])

    m.run(lambda: _scull_dev(box))
    m.run(writer(0), writer(1), writer(2))
    m.run(release)


def scull_read_outside_mutex(m: Machine, bug: bool) -> None:
    """scull_read() drops the mutex before copy_to_user(): a concurrent O_TRUNC open
    trims the device and frees the quantum being copied."""
    box: dict[str, Any] = {}
    out: list[bytes] = []

    def setup() -> None:
        _scull_dev(box)
        slot = _scull_follow(box["dev"], 0)
        q = kmalloc(SCULL_QUANTUM, GFP_KERNEL)
        memset(q, 0x42, SCULL_QUANTUM)
        write_u32(slot, q)
        write_u32(box["dev"] + 4, SCULL_QUANTUM)

    def read() -> None:
        mutex_lock(box["mutex"])
        qs = read_u32(box["dev"])
        q = read_u32(read_u32(qs)) if qs else 0
        if bug:
            mutex_unlock(box["mutex"])
            if q:
                out.append(mem_read(q, 16))      # copy_to_user after "up(&dev->sem)"
        else:
            if q:
                out.append(mem_read(q, 16))
            mutex_unlock(box["mutex"])

    def open_trunc() -> None:
        mutex_lock(box["mutex"])
        _scull_trim(box["dev"], free_array=True)
        mutex_unlock(box["mutex"])

    m.run(setup)
    m.run(read, open_trunc)
    m.run(lambda: kfree(box["dev"]))


def scull_write_past_quantum(m: Machine, bug: bool) -> None:
    """scull_write() without "if (count > quantum - q_pos) count = quantum - q_pos":
    a write across the quantum's end overruns the kmalloc'ed quantum."""
    box: dict[str, Any] = {}

    def write(f_pos: int, count: int) -> None:
        mutex_lock(box["mutex"])
        item, q_pos = divmod(f_pos, SCULL_QUANTUM)
        slot = _scull_follow(box["dev"], item)
        q = read_u32(slot)
        if not q:
            q = kmalloc(SCULL_QUANTUM, GFP_KERNEL)
            write_u32(slot, q)
        if not bug and count > SCULL_QUANTUM - q_pos:
            count = SCULL_QUANTUM - q_pos      # write only up to the end of this quantum
        memset(q + q_pos, 0x43, count)
        mutex_unlock(box["mutex"])

    def release() -> None:
        mutex_lock(box["mutex"])
        _scull_trim(box["dev"], free_array=True)
        mutex_unlock(box["mutex"])
        kfree(box["dev"])

    m.run(lambda: _scull_dev(box))
    m.run(lambda: write(40, 40), lambda: write(0, 16))
    m.run(release)


# -- a "short"-style interrupt handler with a bottom half --------------------------------

SHORT_IRQ = 7
SHORT_SOFTIRQ = 6                       # TASKLET_SOFTIRQ in 2.6


def short_bh_list_without_bh(m: Machine, bug: bool) -> None:
    """The bottom half (a tasklet, here its softirq) queues completed buffers on a list
    that process context takes with plain spin_lock(): a softirq on the same CPU
    spins on the lock its own task holds. The fix is spin_lock_bh() in process context."""
    lock = spin_lock_init("short_queue_lock")
    queue: list[int] = []

    def bottom_half() -> None:
        buf = kmalloc(32, GFP_ATOMIC)
        if buf is None:
            return
        spin_lock(lock)
        queue.append(buf)
        spin_unlock(lock)

    def top_half(irq: int, dev: Any) -> None:
        raise_softirq(SHORT_SOFTIRQ)

    def reader() -> None:
        for _ in range(3):
            raise_irq(SHORT_IRQ)
            if bug:
                spin_lock(lock)
            else:
                spin_lock_bh(lock)
            buf = queue.pop() if queue else None
            if bug:
                spin_unlock(lock)
            else:
                spin_unlock_bh(lock)
            kfree(buf)

    def drain() -> None:
        while queue:
            kfree(queue.pop())

    m.request_irq(SHORT_IRQ, top_half, "short")
    m.run(lambda: open_softirq(SHORT_SOFTIRQ, bottom_half))
    m.run(reader, reader)
    m.run(drain)


# -- per-CPU statistics --------------------------------------------------------------------

tx_bytes = DEFINE_PER_CPU(c_ulong, "pairs_tx_bytes")


def percpu_sleep_under_get_cpu_var(m: Machine, bug: bool) -> None:
    """The transmit path holds get_cpu_var() (preemption off) across msleep() waiting for
    the ring: sleeping while atomic. The fix puts the variable back before sleeping."""
    def xmit() -> None:
        for _ in range(2):
            stats = get_cpu_var(tx_bytes)
            stats.value = stats.value + 1500
            if bug:
                msleep(1)                       # wait for a free descriptor
                put_cpu_var(tx_bytes)
            else:
                put_cpu_var(tx_bytes)
                msleep(1)
    m.run(xmit, xmit)


rx_stats = DEFINE_PER_CPU(c_ulong, "pairs_rx_stats")


def percpu_ptr_across_sleep(m: Machine, bug: bool) -> None:
    """The receive thread takes its CPU's statistics pointer with get_cpu(), puts the CPU
    back, sleeps, and updates through the pointer afterwards: by then it may run on the
    other CPU, while a thread there updates the same copy. KCSAN reports the data race.
    The fix updates the copy between get_cpu() and put_cpu()."""
    def rx() -> None:
        for _ in range(2):
            cpu = get_cpu()
            ptr = per_cpu_ptr(rx_stats, cpu)
            if bug:
                put_cpu()
                msleep(1)                            # wait for the next frame
                write_u32(ptr, read_u32(ptr) + 1)
            else:
                write_u32(ptr, read_u32(ptr) + 1)
                put_cpu()
                msleep(1)
    m.run(rx, rx, rx)


def wakeup_without_recheck(m: Machine, bug: bool) -> None:
    """Two readers sleep until the ring has a buffer; the interrupt side posts one and
    wakes them all (wake_up_all). A reader that does not re-check the condition after
    schedule() takes the slot the other reader already emptied and dereferences NULL.
    The fix is wait_event()'s loop: re-check under the lock, sleep again if empty."""
    lock = spin_lock_init("pairs_ring_lock")
    wq = init_waitqueue_head()
    box: dict[str, int] = {}

    def setup() -> None:
        ring = kzalloc(4, GFP_KERNEL)          # one slot: a buffer pointer, 0 when empty
        kmemleak_not_leak(ring)
        box["ring"] = ring

    def take() -> int:
        spin_lock(lock)
        buf = read_u32(box["ring"])
        WRITE_ONCE(box["ring"], 0)             # the waiters read it locklessly
        spin_unlock(lock)
        if buf:
            wake_up_all(wq)                    # the writer waits for the slot to empty
        return buf

    def reader() -> None:
        if bug:
            spin_lock(lock)
            empty = not read_u32(box["ring"])
            spin_unlock(lock)
            if empty:
                prepare_to_wait(wq, TASK_INTERRUPTIBLE)
                if not READ_ONCE(box["ring"]):
                    schedule()
                finish_wait(wq)
            buf = take()                       # assumes the wake-up means "a buffer for me"
        else:
            while True:
                buf = take()
                if buf:
                    break
                wait_event_interruptible(wq, lambda: READ_ONCE(box["ring"]) != 0)
        read_u8(buf)                           # consume it
        kfree(buf)

    def writer() -> None:
        for _ in range(2):
            buf = kmalloc(64, GFP_KERNEL)
            wait_event_interruptible(wq, lambda: READ_ONCE(box["ring"]) == 0)
            spin_lock(lock)
            WRITE_ONCE(box["ring"], buf)
            spin_unlock(lock)
            wake_up_all(wq)

    m.run(setup)
    m.run(reader, reader, writer)
    m.run(lambda: kfree(box["ring"]))


# -- mempools ------------------------------------------------------------------------------

def mempool_destroy_outstanding(m: Machine, bug: bool) -> None:
    """Module exit destroys the request pool while a request is still queued: 2.6's
    mempool_destroy() BUG()s on outstanding elements. The fix drains the queue first."""
    box: dict[str, Any] = {}
    queued: list[int] = []

    def init() -> None:
        box["pool"] = mempool_create_kmalloc_pool(4, 128)

    def submit() -> None:
        for _ in range(2):
            queued.append(mempool_alloc(box["pool"], GFP_KERNEL))

    def complete_one() -> None:
        mempool_free(queued.pop(), box["pool"])

    def exit_module() -> None:
        if not bug:
            while queued:
                mempool_free(queued.pop(), box["pool"])
        mempool_destroy(box["pool"])

    m.run(init)
    m.run(submit)
    m.run(complete_one)
    m.run(exit_module)
    for el in queued:                              # what the buggy exit left: give it back
        m.run(lambda e=el: kfree(e))


def mempool_alloc_under_spinlock(m: Machine, bug: bool) -> None:
    """mempool_alloc(GFP_KERNEL) with the device's spinlock held: it may sleep waiting for
    an element. The fix allocates before taking the lock."""
    lock = spin_lock_init("bio_queue_lock")
    box: dict[str, Any] = {}
    queue: list[int] = []

    def init() -> None:
        box["pool"] = mempool_create_kmalloc_pool(2, 256)

    def make_request() -> None:
        for _ in range(2):
            if bug:
                spin_lock(lock)
                el = mempool_alloc(box["pool"], GFP_KERNEL)
            else:
                el = mempool_alloc(box["pool"], GFP_KERNEL)
                spin_lock(lock)
            queue.append(el)
            spin_unlock(lock)

    def exit_module() -> None:
        while queue:
            mempool_free(queue.pop(), box["pool"])
        mempool_destroy(box["pool"])

    m.run(init)
    m.run(make_request, make_request)
    m.run(exit_module)


def mempool_free_to_wrong_pool(m: Machine, bug: bool) -> None:
    """The completion gives a header element back to the data pool (both are slab pools,
    of two caches): the data pool is full, so it frees the element into its own cache, the
    wrong one. The fix frees each element to the pool it came from."""
    box: dict[str, Any] = {}

    def init() -> None:
        box["hdr_cache"] = kmem_cache_create("pairs_hdr", 64)
        box["data_cache"] = kmem_cache_create("pairs_data", 512)
        box["hdr"] = mempool_create_slab_pool(2, box["hdr_cache"])
        box["data"] = mempool_create_slab_pool(2, box["data_cache"])

    def io() -> None:
        hdr = mempool_alloc(box["hdr"], GFP_KERNEL)
        data = mempool_alloc(box["data"], GFP_KERNEL)
        mempool_free(data, box["data"])
        mempool_free(hdr, box["data"] if bug else box["hdr"])

    def exit_module() -> None:
        for pool, cache in (("hdr", "hdr_cache"), ("data", "data_cache")):
            mempool_destroy(box[pool])
            kmem_cache_destroy(box[cache])

    m.run(init)
    m.run(io, io)
    m.run(exit_module)


# -- slab caches -----------------------------------------------------------------------------

def cache_destroy_with_live_object(m: Machine, bug: bool) -> None:
    """Module exit walks the pending list but skips its last entry (an off-by-one loop),
    then kmem_cache_destroy(): "Can't free all objects". The fix frees every entry."""
    box: dict[str, Any] = {}
    pending: list[int] = []

    def init() -> None:
        box["cache"] = kmem_cache_create("pairs_req", 96)

    def submit() -> None:
        for _ in range(3):
            pending.append(kmem_cache_alloc(box["cache"], GFP_KERNEL))

    def exit_module() -> None:
        n = len(pending) - 1 if bug else len(pending)
        for obj in pending[:n]:
            kmem_cache_free(box["cache"], obj)
        del pending[:n]
        kmem_cache_destroy(box["cache"])

    def cleanup() -> None:                 # give back what the buggy exit left
        for obj in pending:
            kmem_cache_free(box["cache"], obj)
        kmem_cache_destroy(box["cache"])

    m.run(init)
    m.run(submit, submit)
    m.run(exit_module)
    if pending:
        m.run(cleanup)


def cache_free_to_wrong_cache(m: Machine, bug: bool) -> None:
    """The completion frees a response object into the request cache (the two caches'
    names differ by one letter in the driver). The fix frees it to its own cache."""
    box: dict[str, Any] = {}

    def init() -> None:
        box["req"] = kmem_cache_create("pairs_req_cache", 64)
        box["rsp"] = kmem_cache_create("pairs_rsp_cache", 64)

    def io() -> None:
        for _ in range(2):
            req = kmem_cache_alloc(box["req"], GFP_KERNEL)
            rsp = kmem_cache_alloc(box["rsp"], GFP_KERNEL)
            kmem_cache_free(box["req"], req)
            kmem_cache_free(box["req"] if bug else box["rsp"], rsp)

    def exit_module() -> None:
        kmem_cache_destroy(box["req"])
        kmem_cache_destroy(box["rsp"])

    m.run(init)
    m.run(io, io)
    m.run(exit_module)


# -- the page allocator ----------------------------------------------------------------------

def close_race_double_free_page(m: Machine, bug: bool) -> None:
    """Two release() calls race on "if (dev->buf) { free_page(dev->buf); dev->buf = 0; }"
    without a lock: both see the page and free it. The fix takes the device lock."""
    lock = spin_lock_init("pairs_dev_lock")
    box: dict[str, Any] = {}

    def open_() -> None:
        dev = kzalloc(8, GFP_KERNEL)
        kmemleak_not_leak(dev)
        box["dev"] = dev
        write_u32(dev, __get_free_page(GFP_KERNEL))

    def release() -> None:
        dev = box["dev"]
        if not bug:
            spin_lock(lock)
        buf = READ_ONCE(dev)
        if buf:
            free_page(buf)
            WRITE_ONCE(dev, 0)
        if not bug:
            spin_unlock(lock)

    m.run(open_)
    m.run(release, release)
    m.run(lambda: kfree(box["dev"]))


def free_page_of_kmalloc(m: Machine, bug: bool) -> None:
    """A buffer allocated with kmalloc(PAGE_SIZE) is given back with free_page(): the page
    belongs to the slab. The fix is kfree()."""
    def probe() -> None:
        buf = kmalloc(PAGE_SIZE, GFP_KERNEL)
        memset(buf, 0, PAGE_SIZE)
        if bug:
            free_page(buf)
            kfree(buf)                 # the remove path later frees it again, correctly
        else:
            kfree(buf)
    m.run(probe)


# -- vmalloc and ioremap ---------------------------------------------------------------------

FW_IRQ = 9


def vfree_in_interrupt(m: Machine, bug: bool) -> None:
    """The firmware-load-done interrupt vfree()s the firmware image: vfree() may not be
    called in interrupt context. The fix hands the image back to process context."""
    box: dict[str, Any] = {}

    def fw_done(irq: int, dev: Any) -> None:
        if bug:
            vfree(box.pop("image"))
        else:
            box["done"] = box.pop("image")   # schedule_work(): freed in process context

    m.request_irq(FW_IRQ, fw_done, "fwload")

    def load() -> None:
        img = vmalloc(3 * PAGE_SIZE)
        memset(img, 0x7F, 3 * PAGE_SIZE)
        box["image"] = img
        raise_irq(FW_IRQ)
        flags = local_irq_save()           # the irq has run once interrupts were on
        local_irq_restore(flags)
        vfree(box.pop("done", None))

    m.run(load)
    m.run(lambda: vfree(box.pop("image", None)))


MMIO_BASE = 0xFEBF0000


def iounmap_twice(m: Machine, bug: bool) -> None:
    """probe()'s error path iounmap()s the registers and the remove path the core calls
    afterwards unmaps them again. The fix clears the pointer after unmapping."""
    register_io_device(m, MMIO_BASE, 0x100, name="pairs_ctrl")
    box: dict[str, Any] = {}

    def probe() -> None:
        box["regs"] = ioremap(MMIO_BASE, 0x100)
        err = -19                          # the chip id read back wrong: -ENODEV
        if err:
            iounmap(box["regs"])
            if not bug:
                box["regs"] = None

    def remove() -> None:
        iounmap(box["regs"])
        box["regs"] = None

    m.run(probe)
    m.run(remove)


# -- reference counts ------------------------------------------------------------------------

def kref_get_after_lookup_unlocked(m: Machine, bug: bool) -> None:
    """The lookup reads the device pointer from the table and takes a reference without the
    table lock; the remover unlinks the device and drops the last reference in between,
    and the reference is taken on freed memory. The fix looks up and gets under the lock."""
    lock = spin_lock_init("pairs_table_lock")
    box: dict[str, Any] = {}

    def put(obj: int) -> None:
        if atomic_dec_and_test(obj):
            kfree(obj)

    def setup() -> None:
        table = kzalloc(4, GFP_KERNEL)
        kmemleak_not_leak(table)
        obj = kzalloc(32, GFP_KERNEL)
        atomic_set(obj, 1)
        write_u32(table, obj)
        box["table"] = table

    def user() -> None:
        table = box["table"]
        if bug:
            obj = READ_ONCE(table)
            if obj:
                atomic_inc(obj)             # kref_get() on what may be freed by now
        else:
            spin_lock(lock)
            obj = READ_ONCE(table)
            if obj:
                atomic_inc(obj)
            spin_unlock(lock)
        if obj:
            read_u32(obj + 4)
            put(obj)

    def remover() -> None:
        table = box["table"]
        spin_lock(lock)
        obj = READ_ONCE(table)
        WRITE_ONCE(table, 0)
        spin_unlock(lock)
        if obj:
            put(obj)

    m.run(setup)
    m.run(user, remover)
    m.run(lambda: kfree(box["table"]))


def open_count_unlocked(m: Machine, bug: bool) -> None:
    """release() does "if (--dev->open_count == 0) kfree(dev->buf)" with plain loads and
    stores: two closers both read 2, both write 1, and the buffer is never freed. The fix
    is atomic_dec_and_test()."""
    box: dict[str, Any] = {}

    def setup() -> None:
        dev = kzalloc(8, GFP_KERNEL)
        kmemleak_not_leak(dev)
        atomic_set(dev, 2)                  # two opens
        write_u32(dev + 4, kmalloc(512, GFP_KERNEL))
        box["dev"] = dev

    def release() -> None:
        dev = box["dev"]
        if bug:
            n = read_u32(dev) - 1
            write_u32(dev, n)
            last = n == 0
        else:
            last = atomic_dec_and_test(dev)
        if last:
            kfree(read_u32(dev + 4))
            write_u32(dev + 4, 0)

    m.run(setup)
    m.run(release, release)
    m.run(lambda: kfree(box["dev"]))


# -- error paths and lists ---------------------------------------------------------------------

def probe_leaks_on_irq_failure(m: Machine, bug: bool) -> None:
    """probe() allocates the ring, then request_irq() fails (the line is taken) and it
    returns -EBUSY without freeing the ring. The fix unwinds with goto out_free_ring."""
    def request_line() -> int:
        return -16                          # -EBUSY

    def probe() -> int:
        ring = kmalloc(1024, GFP_KERNEL)
        if ring is None:
            return -12
        err = request_line()
        if err:
            if not bug:
                kfree(ring)
            return err
        return 0

    m.run(probe, probe)


def list_node_freed_not_unlinked(m: Machine, bug: bool) -> None:
    """cancel() frees a pending request but leaves it on the driver's singly-linked list
    (list_del forgotten); the flush walk then reads the freed node's next pointer. The
    fix unlinks the node before freeing it."""
    box: dict[str, Any] = {}
    lock = spin_lock_init("pairs_pending_lock")

    def setup() -> None:
        head = kzalloc(4, GFP_KERNEL)       # struct list: head->first
        kmemleak_not_leak(head)
        box["head"] = head
        prev = 0
        for i in range(3):                   # node: next at 0, id at 4
            node = kzalloc(16, GFP_KERNEL)
            write_u32(node + 4, i)
            write_u32(node, prev)
            prev = node
        write_u32(head, prev)

    def cancel_middle() -> None:
        spin_lock(lock)
        first = read_u32(box["head"])
        middle = read_u32(first)
        if not bug:
            write_u32(first, read_u32(middle))   # list_del
        kfree(middle)
        spin_unlock(lock)

    def flush() -> None:
        spin_lock(lock)
        node = read_u32(box["head"])
        while node:
            nxt = read_u32(node)
            read_u8(node + 4)
            kfree(node)
            node = nxt
        write_u32(box["head"], 0)
        spin_unlock(lock)

    m.run(setup)
    m.run(cancel_middle)
    m.run(flush)
    m.run(lambda: kfree(box["head"]))


# -- copy_to_user / copy_from_user (LDD3 chapter 3's read and write) ------------------------

def read_copies_under_spinlock(m: Machine, bug: bool) -> None:
    """A read() that protects its buffer with a spinlock instead of scull's semaphore and
    calls copy_to_user() inside it (it may fault the user page in, so it may sleep); the
    fix copies into a bounce buffer under the lock and to user space after the unlock."""
    lock = spin_lock_init("dev_lock")
    box: dict[str, Any] = {}

    def setup() -> None:
        box["buf"] = kmalloc(32, GFP_KERNEL)
        memset(box["buf"], 0x61, 32)

    def read(user: bytearray) -> Callable[[], None]:
        def do_read() -> None:
            if bug:
                spin_lock(lock)
                left = copy_to_user(user, box["buf"], len(user))
                spin_unlock(lock)
            else:
                bounce = kmalloc(len(user), GFP_KERNEL)
                spin_lock(lock)
                memcpy(bounce, box["buf"], len(user))
                spin_unlock(lock)
                left = copy_to_user(user, bounce, len(user))
                kfree(bounce)
            assert left == 0
        return do_read

    users = [bytearray(16), bytearray(16)]
    m.run(setup)
    m.run(read(users[0]), read(users[1]))
    m.run(lambda: kfree(box["buf"]))
    assert all(u == b"a" * 16 for u in users)


def write_trusts_user_count(m: Machine, bug: bool) -> None:
    """A write() that copies ``count`` bytes of user data into a fixed 64-byte buffer
    without clamping it (LDD3 clamps count to the quantum): a slab out-of-bounds write."""
    box: dict[str, Any] = {}

    def write(data: bytes) -> Callable[[], None]:
        def do_write() -> None:
            count = len(data) if bug else min(len(data), 64)
            if copy_from_user(box["buf"], data, count):
                return                      # -EFAULT
        return do_write

    m.run(lambda: box.update(buf=kmalloc(64, GFP_KERNEL)))
    m.run(write(b"x" * 40), write(b"y" * 72))
    m.run(lambda: kfree(box["buf"]))


@dataclass(frozen=True)
class Pair:
    """A buggy driver and its fixed twin (``body(m, bug)``), what the bug must be reported
    as (report kinds; a kind also matches its extensions after '_'), the start of the
    report's first line in the kernel's words, and the seeds the default campaign gets."""

    body: Callable[[Machine, bool], None]
    reports: tuple[str, ...]
    first_line: str
    machine: dict[str, Any] = field(default_factory=lambda: dict(DETECTORS))
    seeds: int = 8

    def scenario(self, bug: bool) -> StressScenario:
        twin = "buggy" if bug else "fixed"
        return StressScenario(f"{self.body.__name__}::{twin}", lambda m: self.body(m, bug),
                              machine={"cpus": 2, **self.machine})

    def found_by(self, out: Outcome) -> bool:
        return out.failed and any(k == r or k.startswith(r + "_")
                                  for k in (out.failure or "", *out.kinds) for r in self.reports)


PAIRS: dict[str, Pair] = {p.body.__name__: p for p in [
    Pair(scull_trim_keeps_array, ("kmemleak",), "unreferenced object 0x"),
    Pair(scull_read_outside_mutex, ("kasan",), "BUG: KASAN: slab-use-after-free in ", seeds=64),
    Pair(scull_write_past_quantum, ("kasan",), "BUG: KASAN: slab-out-of-bounds in "),
    Pair(short_bh_list_without_bh, ("lockdep_inconsistent",), "WARNING: inconsistent lock state"),
    Pair(percpu_sleep_under_get_cpu_var, ("sleep_in_atomic", "scheduling_while_atomic"),
         "BUG: sleeping function called from invalid context at "),
    Pair(percpu_ptr_across_sleep, ("kcsan_data_race",), "BUG: KCSAN: data-race in rx / rx",
         machine={"kcsan": True, "lockdep": True}),
    Pair(wakeup_without_recheck, ("page_fault",), "BUG: kernel NULL pointer dereference", seeds=64),
    Pair(mempool_destroy_outstanding, ("bug",), "kernel BUG at "),
    Pair(mempool_free_to_wrong_pool, ("slab_wrong_cache",), "cache_from_obj: Wrong slab cache. pairs_data but object is from pairs_hdr"),
    Pair(mempool_alloc_under_spinlock, ("sleep_in_atomic",),
         "BUG: sleeping function called from invalid context at "),
    Pair(cache_destroy_with_live_object, ("slab_destroy_busy",), "kmem_cache_destroy pairs_req: Slab cache still has objects"),
    Pair(cache_free_to_wrong_cache, ("slab_wrong_cache",), "cache_from_obj: Wrong slab cache. "),
    Pair(close_race_double_free_page, ("double_free",), "BUG: Bad page state in process ", seeds=64),
    Pair(free_page_of_kmalloc, ("bad_page",), "BUG: Bad page state in process "),
    Pair(vfree_in_interrupt, ("bug",), "kernel BUG at "),
    Pair(iounmap_twice, ("bad_iounmap",), "iounmap: bad address "),
    Pair(kref_get_after_lookup_unlocked, ("kasan",), "BUG: KASAN: slab-use-after-free in ", seeds=64),
    Pair(open_count_unlocked, ("kmemleak",), "unreferenced object 0x", seeds=64),
    Pair(probe_leaks_on_irq_failure, ("kmemleak",), "unreferenced object 0x"),
    Pair(list_node_freed_not_unlinked, ("kasan",), "BUG: KASAN: slab-use-after-free in "),
    Pair(read_copies_under_spinlock, ("sleep_in_atomic",),
         "BUG: sleeping function called from invalid context at "),
    Pair(write_trusts_user_count, ("kasan",), "BUG: KASAN: slab-out-of-bounds in "),
]}


def _first_find(p: Pair) -> tuple[Outcome | None, int, list[Outcome]]:
    sc = p.scenario(True)
    others: list[Outcome] = []
    for n, (policy, opts, seed) in enumerate(plan(range(p.seeds), None), 1):
        out = run_one(sc, policy, opts, seed)
        if p.found_by(out):
            return out, n, others
        if out.failed:
            others.append(out)
    return None, p.seeds, others


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_buggy_driver_is_reported_by_the_default_campaign(name: str) -> None:
    p = PAIRS[name]
    out, runs, others = _first_find(p)
    assert out is not None, (f"{name}: no {p.reports} report in {runs} runs of the default campaign; "
                             f"other failures: {[(o.failure, o.error[:200], o.reports[:1]) for o in others[:2]]}")
    text = next(t for t, k in zip(out.reports, out.kinds) if p.found_by(
        Outcome(out.scenario, out.policy, out.options, out.seed, out.cpus, k)))
    headline = next(line for line in text.splitlines() if line.strip(" =-"))   # KASAN, lockdep: after a rule
    assert headline.startswith(p.first_line), f"{name}: the report reads\n{text}"


#: The pairs whose bug needs an unlucky schedule (the others are found by any run).
RACES = ["close_race_double_free_page", "kref_get_after_lookup_unlocked", "open_count_unlocked",
         "scull_read_outside_mutex", "wakeup_without_recheck"]


@pytest.mark.parametrize("name", RACES)
def test_a_race_is_found_by_explore_with_its_defaults(name: str) -> None:
    """explore() as a test author calls it (random, then pct, 20 seeds each) fails on the race."""
    p = PAIRS[name]
    with pytest.raises(UnexpectedReport) as e:
        explore(lambda m: p.body(m, True), seeds=range(DEFAULT_SEEDS), cpus=2, shrink=False, **p.machine)
    assert p.found_by(Outcome(name, e.value.policy, (), e.value.seed, 2, e.value.report.kind)), e.value


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_fixed_twin_is_clean_under_every_policy(name: str) -> None:
    sc = PAIRS[name].scenario(False)
    policies = TWIN_POLICIES
    for policy, opts, seed in plan(TWIN_SEEDS, policies):
        out = run_one(sc, policy, opts, seed)
        assert not out.failed, f"{name} fixed, {policy} seed {seed}: {out.failure} {out.error} {out.reports[:1]}"


# -- model problems this audit found (outside the tests' scope: the lead fixes them) -----------

def _run_one_cpu(fn: Callable[[], Any], **machine: Any) -> Machine:
    m = Machine(cpus=1, policy="random", seed=0, **machine)
    m.run(fn)
    return m


def test_free_irq_waits_for_a_handler_running_on_another_cpu() -> None:
    def scenario(m: Machine) -> None:
        box: dict[str, int] = {}

        def handler(irq: int, dev: Any) -> None:
            d = box.get("dev")
            if d:
                for i in range(4):
                    write_u32(d + 4 * i, read_u32(d + 4 * i) + 1)     # dev->stats[i]++

        def probe() -> None:
            box["dev"] = kzalloc(32, GFP_KERNEL)

        def remove() -> None:                 # the correct order: free_irq() first, then kfree()
            d = box["dev"]
            free_irq(11)
            del box["dev"]
            kfree(d)

        def other() -> None:                  # whatever runs on the other CPU, interrupted there
            for _ in range(20):
                preempt_point()

        m.run(probe)
        m.request_irq(11, handler, "card", rate=0.3)
        m.run(remove, other)

    bad = []
    for policy in ("random", "pct"):
        for seed in range(15):
            m = Machine(cpus=2, policy=policy, seed=seed, kasan=True)
            scenario(m)
            bad += [(policy, seed, r.text.splitlines()[1]) for r in m.reports]
    assert not bad, bad      # random seed 2: "BUG: KASAN: slab-use-after-free in handler" on CPU 1


def test_kasan_allows_reading_a_freed_object_of_a_destroy_by_rcu_cache() -> None:
    def lookup() -> None:
        cache = kmem_cache_create("pairs_rcu_obj", 64, 0, SLAB_DESTROY_BY_RCU)
        obj = kmem_cache_alloc(cache, GFP_KERNEL)
        keep = kmem_cache_alloc(cache, GFP_KERNEL)      # the slab stays
        kmem_cache_free(cache, obj)
        read_u32(obj)                 # a lockless lookup reads it, then re-validates its key
        kmem_cache_free(cache, keep)
        kmem_cache_destroy(cache)

    m = _run_one_cpu(lookup, kasan=True)
    assert not m.reports, m.reports[0].text


def test_wrong_cache_message_names_the_objects_cache_as_expected() -> None:
    def free_wrong() -> None:
        ca = kmem_cache_create("pairs_obj_cache", 64)
        cb = kmem_cache_create("pairs_passed_cache", 64)
        obj = kmem_cache_alloc(ca, GFP_KERNEL)
        kmem_cache_free(cb, obj)

    m = _run_one_cpu(free_wrong)
    text = m.reports_of("slab_wrong_cache")[0].text
    # 2.6.11 cache_free_debugcheck(): printk(..., GET_PAGE_CACHE(page), cachep)
    assert "mismatch in kmem_cache_free: expected cache pairs_obj_cache, got pairs_passed_cache" in text, text


def test_mempool_destroy_bug_line_does_not_claim_an_equal_count_differs() -> None:
    def exit_early() -> None:
        pool = mempool_create_kmalloc_pool(2, 64)
        mempool_alloc(pool, GFP_KERNEL)
        mempool_destroy(pool)

    m = _run_one_cpu(exit_early)
    text = m.reports_of("bug")[0].text
    assert "curr_nr 2 != min_nr 2" not in text, text


def test_kmem_cache_destroy_of_null_is_ignored() -> None:
    """Found by this audit (a KmemUsageError), fixed on main meanwhile: the kernel returns."""
    def exit_after_failed_init() -> None:
        kmem_cache_destroy(None)      # type: ignore[arg-type]

    m = _run_one_cpu(exit_after_failed_init)
    assert not m.reports


def test_free_policy_does_not_call_a_completed_ipi_a_deadlock() -> None:
    def scenario(m: Machine) -> None:
        box: dict[str, Any] = {}

        def init() -> None:
            box["caches"] = [kmem_cache_create(f"pairs_ipi_{i}", 64) for i in range(6)]

        def io() -> None:                   # leaves objects in both CPUs' magazines
            for c in box["caches"]:
                kmem_cache_free(c, kmem_cache_alloc(c, GFP_KERNEL))

        def exit_module() -> None:          # each destroy drains every CPU by IPI
            for c in box["caches"]:
                kmem_cache_destroy(c)

        m.run(init)
        m.run(io, io)
        m.run(exit_module)

    for seed in range(150):                 # about 1 run in 4 fails; stop at the first
        m = Machine(cpus=2, policy="free", seed=seed, lockdep=True)
        scenario(m)
        assert not m.reports, m.reports[0].text


def test_free_irq_twice_is_a_kernel_warning() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    m.request_irq(5, lambda irq, dev: None, "card")

    def remove_after_error_path() -> None:
        free_irq(5)                   # probe()'s error path
        free_irq(5)                   # remove(): the classic double free_irq()

    m.run(remove_after_error_path)
    assert any("Trying to free already-free IRQ 5" in r.text for r in m.reports), m.dmesg


def test_request_irq_of_a_busy_line_returns_ebusy() -> None:
    got: list[int] = []

    def probe_two_cards() -> None:
        got.append(request_irq(5, lambda irq, dev: None, 0, "card0"))
        got.append(request_irq(5, lambda irq, dev: None, 0, "card1"))   # not SA_SHIRQ: the line is busy

    m = _run_one_cpu(probe_two_cards)
    assert got == [0, -16] and not m.reports, (got, m.reports)


def test_a_reader_waiting_for_a_device_interrupt_is_not_deadlocked() -> None:
    def short(m: Machine) -> None:
        wq = init_waitqueue_head()
        box = {"head": 0}

        def short_interrupt(irq: int, dev: Any) -> None:    # the device has written a byte
            box["head"] += 1
            wake_up_interruptible(wq)

        def short_read() -> None:
            for _ in range(3):
                wait_event_interruptible(wq, lambda: box["head"] > 0)
                flags = spin_lock_irqsave(lock)
                box["head"] -= 1
                spin_unlock_irqrestore(lock, flags)

        lock = spin_lock_init("short_lock")
        m.request_irq(7, short_interrupt, "short", rate=0.2)
        m.run(short_read)

    hung = []
    for policy in ("random", "pct", "virtual"):
        for seed in range(5):
            m = Machine(cpus=2, policy=policy, seed=seed)
            short(m)
            hung += [(policy, seed) for r in m.reports if r.kind == "deadlock"]
    assert not hung, hung     # "INFO: task hung: every task is blocked and nothing can wake one (deadlock)"


def test_jiffies_advance_in_a_cpu_relax_busy_wait() -> None:
    def jitbusy() -> None:
        j1 = jiffies() + 10                     # HZ / 100
        while jiffies() < j1:
            cpu_relax()

    m = _run_one_cpu(jitbusy)
    assert not m.reports, m.reports[0].text


def test_a_udelay_poll_with_a_jiffies_timeout_ends() -> None:
    def wait_ready() -> int:
        timeout = jiffies() + 10                # HZ / 100; the device never becomes ready
        while True:
            if jiffies() > timeout:
                return -110                     # -ETIMEDOUT: the error path under test
            udelay(10)

    m = Machine(cpus=1, policy="random", seed=0, timeout=0.5)
    assert m.run(wait_ready) == [-110]


def test_a_busy_wait_for_a_flag_set_after_msleep_ends() -> None:
    box: dict[str, int] = {}

    def setup() -> None:
        box["flag"] = kzalloc(4, GFP_KERNEL)

    def waiter() -> None:
        while not READ_ONCE(box["flag"]):
            cpu_relax()

    def setter() -> None:
        msleep(1)
        WRITE_ONCE(box["flag"], 1)

    m = Machine(cpus=2, policy="random", seed=0, timeout=0.5)
    m.run(setup)
    m.run(waiter, setter)
    m.run(lambda: kfree(box["flag"]))
    assert not m.reports


def test_slab_debug_initial_verifies_the_constructed_state_at_free() -> None:
    def ctor(obj: int, cache: Any, flags: int) -> None:
        if flags & SLAB_CTOR_VERIFY:
            if read_u32(obj) != 0:             # the object's list must be empty when freed
                BUG()
            return
        write_u32(obj, 0)                      # INIT_LIST_HEAD, once per object

    def use() -> None:
        cache = kmem_cache_create("pairs_ctor_verify", 64, 0, SLAB_DEBUG_INITIAL, ctor)
        obj = kmem_cache_alloc(cache, GFP_KERNEL)
        write_u32(obj, 7)                      # queued on a list ...
        kmem_cache_free(cache, obj)            # ... and freed without list_del_init()
        kmem_cache_destroy(cache)

    m = _run_one_cpu(use, slab_debug=True)
    assert m.reports_of("bug"), "the constructor's SLAB_CTOR_VERIFY call never came"


def test_a_handler_that_enables_interrupts_is_reported() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    lock = spin_lock_init("pairs_handler_lock")

    def card_interrupt(irq: int, dev: Any) -> None:
        spin_lock_irq(lock)                    # should be spin_lock(): irqs are off in a handler
        spin_unlock_irq(lock)                  # ... and this turns them on

    m.request_irq(5, card_interrupt, "card")
    m.run(lambda: raise_irq(5))
    assert any("irq 5 handler" in r.text and "enabled interrupts" in r.text for r in m.reports), m.dmesg


def test_a_campaign_runs_a_kasan_scenario() -> None:
    sc = PAIRS["list_node_freed_not_unlinked"].scenario(True)      # kasan=True, kmemleak="fail"
    result = run_campaign([sc], seeds=range(1))
    assert [o.failure for o in result.outcomes] == ["kasan_slab_use_after_free"]


def test_a_task_blocked_on_a_mutex_for_minutes_is_a_hung_task() -> None:
    m = Machine(cpus=2, policy="random", seed=0)
    dev_mutex = mutex_init("pairs_dev_mutex")

    def firmware_update() -> None:
        mutex_lock(dev_mutex)
        msleep(300_000)                        # waits for the flash under the device mutex
        mutex_unlock(dev_mutex)

    def ioctl() -> None:
        msleep(1)
        mutex_lock(dev_mutex)                  # TASK_UNINTERRUPTIBLE for 300 s
        mutex_unlock(dev_mutex)

    m.run(firmware_update, ioctl)
    assert any(r.text.startswith("INFO: task ioctl:") and "blocked for more than 120 seconds" in r.text
               for r in m.reports), [r.kind for r in m.reports]
