"""LDD3's example drivers of chapters 3, 5, 6 and 7, each with a classic bug and its twin.

Each scenario is a driver of "Linux Device Drivers, 3rd edition" as its reader would
write it with this package: scull's read/write under its semaphore (ch. 3/5),
complete.c, a semaphore as a mutex, an rwsem, a spinlock and an rwlock shared with an
interrupt handler (ch. 5), scullpipe, sleepy, scullsingle, scullwuid and a kthread
(ch. 6), jit's busy-wait, schedule_timeout, timer, tasklet and work queue (ch. 7).
``body(m, bug)`` runs the buggy driver with ``bug=True`` and the fixed twin, identical
but for the fix, with ``bug=False``.

The verdicts checked, per pair, under random, pct, free and virtual, three seeds each:

- the buggy driver is reported with the report kind its detector gives and the
  kernel's first line; a bug that needs an unlucky schedule (``race=True``) must be
  found by at least one seed of each policy, every other bug by every seed, and any
  failure a buggy run shows must be the expected one (no wrong verdict on the way);
- the fixed twin is clean: no report, no exception, ``m.check()`` passes.

The pairs of tests/test_driver_pairs.py are not repeated here. The end of the file
holds the model problems found, each the smallest test that shows it, marked
``xfail(strict=True)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from percpu_kmem.campaign import Outcome, plan, run_one
from percpu_kmem.linux import (
    BUG,
    DECLARE_MUTEX,
    GFP_ATOMIC,
    GFP_KERNEL,
    HZ,
    INIT_WORK,
    TASK_INTERRUPTIBLE,
    __clear_bit,
    __test_and_set_bit,
    add_timer_on,
    atomic_dec_and_test,
    atomic_inc,
    atomic_set,
    complete,
    complete_all,
    copy_from_user,
    copy_to_user,
    cpu_relax,
    create_singlethread_workqueue,
    del_timer,
    del_timer_sync,
    destroy_workqueue,
    down,
    down_interruptible,
    down_read,
    down_write,
    finish_wait,
    flush_workqueue,
    init_completion,
    init_rwsem,
    init_waitqueue_head,
    jiffies,
    kfree,
    kmalloc,
    kthread_run,
    kthread_should_stop,
    kthread_stop,
    kzalloc,
    mod_timer,
    msleep,
    prepare_to_wait,
    queue_work,
    raise_irq,
    raw_smp_processor_id,
    read_lock,
    read_lock_irqsave,
    read_u32,
    read_unlock,
    read_unlock_irqrestore,
    rwlock_init,
    schedule,
    schedule_timeout,
    set_current_state,
    setup_timer,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_unlock,
    spin_unlock_irqrestore,
    tasklet_init,
    tasklet_kill,
    tasklet_schedule,
    tasklet_struct,
    test_and_clear_bit,
    test_and_set_bit,
    time_before,
    timer_list,
    up,
    up_read,
    up_write,
    wait_event_interruptible,
    wait_event_interruptible_timeout,
    wait_for_completion,
    wake_up_interruptible,
    work_struct,
    write_lock,
    write_u32,
    write_unlock,
)
from percpu_kmem.machine import Machine
from percpu_kmem.scenarios import StressScenario

pytestmark = pytest.mark.timeout(120)

#: The detectors a pair runs with unless it names its own (KCSAN pairs: kcsan=True).
DETECTORS: dict[str, Any] = {"lockdep": True, "kasan": True, "kmemleak": "fail"}
KCSAN: dict[str, Any] = {"kcsan": True, "lockdep": True}
POLICIES = ("random", "pct", "free", "virtual")
SEEDS = range(3)

# -- ch. 3/5: scull_read / scull_write under the device semaphore ---------------------------
#
# struct scull_dev { char *data; unsigned long size; }: one quantum of SCULL_QUANTUM bytes
# (the qset array is test_driver_pairs.py's business).

SCULL_QUANTUM = 64


def _scull_setup(box: dict[str, Any]) -> None:
    dev = kzalloc(8, GFP_KERNEL)
    quantum = kzalloc(SCULL_QUANTUM, GFP_KERNEL)
    assert dev is not None and quantum is not None
    write_u32(dev, quantum)
    box["dev"] = dev
    box["sem"] = DECLARE_MUTEX("scull_sem")      # init_MUTEX(&dev->sem)
    box["lock"] = spin_lock_init("scull_lock")


def _scull_release(box: dict[str, Any]) -> None:
    kfree(read_u32(box["dev"]))
    kfree(box["dev"])


def scull_write(box: dict[str, Any], f_pos: int, data: bytes, *, sem: bool = True,
                clamp: bool = True) -> int:
    """scull_write(): down_interruptible(&dev->sem), clamp count to the quantum,
    copy_from_user(), dev->size = max(size, f_pos + count), up(&dev->sem)."""
    dev = box["dev"]
    if sem and down_interruptible(box["sem"]):
        return -512                                # -ERESTARTSYS
    count = len(data)
    if clamp and count > SCULL_QUANTUM - f_pos:
        count = SCULL_QUANTUM - f_pos
    if copy_from_user(read_u32(dev) + f_pos, data, count):
        count = -14                                # -EFAULT
    elif read_u32(dev + 4) < f_pos + count:
        write_u32(dev + 4, f_pos + count)          # dev->size
    if sem:
        up(box["sem"])
    return count


def scull_read(box: dict[str, Any], f_pos: int, user: bytearray, *, spin: bool = False) -> int:
    """scull_read(): under the semaphore (or, the bug, a spinlock), copy_to_user() what lies
    between f_pos and dev->size."""
    dev = box["dev"]
    if spin:
        spin_lock(box["lock"])
    elif down_interruptible(box["sem"]):
        return -512
    count = max(0, min(len(user), read_u32(dev + 4) - f_pos))
    if count and copy_to_user(user, read_u32(dev) + f_pos, count):
        count = -14
    if spin:
        spin_unlock(box["lock"])
    else:
        up(box["sem"])
    return count


def scull_read_under_spinlock(m: Machine, bug: bool) -> None:
    """scull with its semaphore replaced by a spinlock: copy_to_user() may fault the user
    page in, so it may sleep, and it does so in atomic context."""
    box: dict[str, Any] = {}
    users = [bytearray(16), bytearray(16)]
    m.run(lambda: _scull_setup(box))
    m.run(lambda: scull_write(box, 0, b"s" * 32))
    m.run(lambda: scull_read(box, 0, users[0], spin=bug), lambda: scull_read(box, 8, users[1], spin=bug))
    m.run(lambda: _scull_release(box))
    assert users == [bytearray(b"s" * 16)] * 2


def scull_read_bad_user_address(m: Machine, bug: bool) -> None:
    """No bug: scull_read() into a NULL user buffer is -EFAULT (copy_to_user() copies
    nothing and returns the count), with no report, and the semaphore is released."""
    box: dict[str, Any] = {}
    res: list[int] = []

    def read_bad() -> None:
        dev = box["dev"]
        down_interruptible(box["sem"])
        left = copy_to_user(None, read_u32(dev), 16)
        up(box["sem"])
        res.append(-14 if left else 16)

    m.run(lambda: _scull_setup(box))
    m.run(lambda: scull_write(box, 0, b"s" * 32))
    m.run(read_bad, lambda: res.append(scull_read(box, 0, bytearray(8))))
    m.run(lambda: _scull_release(box))
    assert sorted(res) == [-14, 8], res


def scull_write_without_semaphore(m: Machine, bug: bool) -> None:
    """Two writers of scull without down_interruptible(): dev->size is read and written
    by both at once (KCSAN)."""
    box: dict[str, Any] = {}
    m.run(lambda: _scull_setup(box))
    m.run(lambda: scull_write(box, 0, b"a" * 16, sem=not bug),
          lambda: scull_write(box, 16, b"b" * 16, sem=not bug))
    m.run(lambda: _scull_release(box))


def scull_write_count_not_clamped(m: Machine, bug: bool) -> None:
    """scull_write() without "if (count > quantum - q_pos) count = quantum - q_pos":
    copy_from_user() runs past the quantum's end (KASAN)."""
    box: dict[str, Any] = {}
    m.run(lambda: _scull_setup(box))
    m.run(lambda: scull_write(box, 40, b"x" * 40, clamp=not bug), lambda: scull_write(box, 0, b"y" * 16))
    m.run(lambda: _scull_release(box))


# -- ch. 5: complete.c, a semaphore as a mutex, an rwsem, locks shared with a handler -----------

def complete_c_one_complete_for_two_readers(m: Machine, bug: bool) -> None:
    """complete.c: readers wait_for_completion(); the writer's complete() wakes one.
    Two readers and one complete() leave one asleep for ever; complete_all() wakes both."""
    box: dict[str, Any] = {}

    def complete_read() -> None:
        wait_for_completion(box["comp"])

    def complete_write() -> None:
        msleep(2)
        (complete if bug else complete_all)(box["comp"])

    m.run(lambda: box.update(comp=init_completion("comp")))
    m.run(complete_read, complete_read, complete_write)


def semaphore_error_path_keeps_it(m: Machine, bug: bool) -> None:
    """A semaphore as a mutex (DECLARE_MUTEX): an ioctl's error path returns -ENOMEM
    without up(); the next caller sleeps in down() for ever."""
    box: dict[str, Any] = {}

    def ioctl(fail: bool) -> int:
        down(box["sem"])
        buf = kmalloc(32, GFP_KERNEL)
        if fail:
            kfree(buf)
            if not bug:
                up(box["sem"])
            return -12                             # -ENOMEM
        kfree(buf)
        up(box["sem"])
        return 0

    m.run(lambda: box.update(sem=DECLARE_MUTEX("ioctl_sem")))
    m.run(lambda: ioctl(True))
    m.run(lambda: ioctl(False))


def rwsem_counter_under_down_read(m: Machine, bug: bool) -> None:
    """Readers of a table under down_read() count their lookups in a plain counter: readers
    are not ordered by the rwsem (KCSAN). The fix is an atomic_t."""
    box: dict[str, Any] = {}

    def setup() -> None:
        box["rw"] = init_rwsem("table_rwsem")
        box["hits"] = kzalloc(4, GFP_KERNEL)

    def lookup() -> None:
        for _ in range(2):
            down_read(box["rw"])
            if bug:
                write_u32(box["hits"], read_u32(box["hits"]) + 1)
            else:
                atomic_inc(box["hits"])
            up_read(box["rw"])

    m.run(setup)
    m.run(lookup, lookup)
    m.run(lambda: kfree(box["hits"]))


def rwsem_recursive_down_read(m: Machine, bug: bool) -> None:
    """A reader of the table calls a helper that takes down_read() again: behind a waiting
    writer (2.6's fair rwsem) the inner down_read() waits for the writer, which waits for
    the outer read lock. Lockdep reports the recursion at once."""
    rw: dict[str, Any] = {}

    def lookup() -> None:
        down_read(rw["sem"])
        msleep(2)                                  # a writer comes meanwhile
        if bug:
            down_read(rw["sem"])                   # the helper's own down_read()
            up_read(rw["sem"])
        up_read(rw["sem"])

    def update() -> None:
        msleep(1)
        down_write(rw["sem"])
        up_write(rw["sem"])

    m.run(lambda: rw.update(sem=init_rwsem("table_rwsem")))
    m.run(lookup, update)


def bit_lock_not_atomic(m: Machine, bug: bool) -> None:
    """LDD3's bit lock, "while (test_and_set_bit(nr, addr)) wait_for_a_while();" around a
    shared counter, written with the non-atomic __test_and_set_bit()/__clear_bit(): both
    CPUs may get the bit, and the word and the counter race (KCSAN). The twin is LDD3's
    own: test_and_set_bit(), then "if (test_and_clear_bit(nr, addr) == 0) BUG()"; both are
    fully ordered. (A plain clear_bit() is relaxed: KCSAN reports the counter, as the
    kernel's memory model says; clear_bit_unlock() is today's release.)"""
    box: dict[str, Any] = {}

    def setup() -> None:
        box["word"] = kzalloc(8, GFP_KERNEL)      # { unsigned long flags; u32 count; }

    def critical() -> None:
        w = box["word"]
        for _ in range(2):
            while (__test_and_set_bit(0, w) if bug else test_and_set_bit(0, w)):
                cpu_relax()                        # wait_for_a_while()
            write_u32(w + 4, read_u32(w + 4) + 1)
            if bug:
                __clear_bit(0, w)
            elif not test_and_clear_bit(0, w):
                BUG()                              # something_went_wrong()

    m.run(setup)
    m.run(critical, critical)
    m.run(lambda: kfree(box["word"]))


DEV_IRQ = 5


def completion_waited_in_the_handler(m: Machine, bug: bool) -> None:
    """The device's interrupt handler ends a command with complete(), which any context
    may call; the buggy handler instead waits there for the next command's completion
    (wait_for_completion() may sleep: in hardirq context, a BUG)."""
    box: dict[str, Any] = {}

    def handler(irq: int, dev: Any) -> None:
        if bug:
            wait_for_completion(box["next"])
        complete(box["done"])

    def submit() -> None:
        box.update(done=init_completion("cmd_done"), next=init_completion("cmd_next"))
        complete(box["next"])
        raise_irq(DEV_IRQ, 1 - raw_smp_processor_id())   # the device answers on the other CPU
        wait_for_completion(box["done"])

    m.request_irq(DEV_IRQ, handler, "ldd3cmd")
    m.run(submit)



def spinlock_shared_with_handler(m: Machine, bug: bool) -> None:
    """The interrupt handler takes the device's spinlock; process context takes it with
    spin_lock() (interrupts on) instead of spin_lock_irqsave() (lockdep)."""
    lock = spin_lock_init("dev_irq_lock")
    box: dict[str, int] = {"count": 0}

    def handler(irq: int, dev: Any) -> None:
        spin_lock(lock)
        box["count"] += 1
        spin_unlock(lock)

    def ioctl() -> None:
        raise_irq(DEV_IRQ)                         # served at once: interrupts are on
        if bug:
            spin_lock(lock)
            box["count"] += 1
            spin_unlock(lock)
        else:
            flags = spin_lock_irqsave(lock)
            box["count"] += 1
            spin_unlock_irqrestore(lock, flags)

    m.request_irq(DEV_IRQ, handler, "ldd3dev")
    m.run(ioctl)


def rwlock_reader_interrupted_by_writer(m: Machine, bug: bool) -> None:
    """Readers take an rwlock with read_lock(); the interrupt handler writes it with
    write_lock(). The interrupt coming to a reader's CPU spins for ever: readers must use
    read_lock_irqsave() when a handler writes (2.6's "write-lock lockup")."""
    rw = rwlock_init("dev_rwlock")
    box: dict[str, int] = {"gen": 0}

    def handler(irq: int, dev: Any) -> None:
        write_lock(rw)
        box["gen"] += 1
        write_unlock(rw)

    def reader() -> None:
        if bug:
            read_lock(rw)
        else:
            flags = read_lock_irqsave(rw)
        raise_irq(DEV_IRQ)                         # the device interrupts the reader's CPU
        _ = box["gen"]
        if bug:
            read_unlock(rw)
        else:
            read_unlock_irqrestore(rw, flags)

    m.request_irq(DEV_IRQ, handler, "ldd3dev")
    m.run(reader)


# -- ch. 6: scullpipe, sleepy, scullsingle, scullwuid, a kthread ------------------------------

PIPE_SIZE = 1                                      # a one-slot pipe: the writer must wait


def scullpipe_lost_wakeup(m: Machine, bug: bool) -> None:
    """scull_getwritespace() with the test of spacefree() before prepare_to_wait(): the
    reader's wake_up_interruptible(&dev->outq) between the test and the sleep is lost, and
    the writer sleeps for ever. LDD3 tests after prepare_to_wait()."""
    box: dict[str, Any] = {}
    items = 16

    def setup() -> None:
        box.update(sem=DECLARE_MUTEX("scullpipe_sem"), inq=init_waitqueue_head("inq"),
                   outq=init_waitqueue_head("outq"), buf=[])

    def getwritespace() -> None:
        while len(box["buf"]) >= PIPE_SIZE:
            if bug:
                full = len(box["buf"]) >= PIPE_SIZE   # tested under the semaphore, then
                up(box["sem"])                        # the reader may empty it and wake
                prepare_to_wait(box["outq"], TASK_INTERRUPTIBLE)   # nobody yet
            else:
                up(box["sem"])
                prepare_to_wait(box["outq"], TASK_INTERRUPTIBLE)
                full = len(box["buf"]) >= PIPE_SIZE
            if full:
                schedule()
            finish_wait(box["outq"])
            down(box["sem"])

    def p_write() -> None:
        for _ in range(items):
            down(box["sem"])
            getwritespace()
            box["buf"].append(kmalloc(16, GFP_KERNEL))
            up(box["sem"])
            wake_up_interruptible(box["inq"])

    def p_read() -> None:
        for _ in range(items):
            down(box["sem"])
            while not box["buf"]:
                up(box["sem"])
                wait_event_interruptible(box["inq"], lambda: bool(box["buf"]))
                down(box["sem"])
            kfree(box["buf"].pop(0))
            up(box["sem"])
            wake_up_interruptible(box["outq"])

    m.run(setup)
    m.run(p_write, p_read)


def scullpipe_sleeps_holding_semaphore(m: Machine, bug: bool) -> None:
    """scull_p_read() waits for data without up(&dev->sem) first: the writer sleeps in
    down() for ever and nobody can ever fill the pipe."""
    box: dict[str, Any] = {}

    def setup() -> None:
        box.update(sem=DECLARE_MUTEX("scullpipe_sem"), inq=init_waitqueue_head("inq"), buf=[])

    def p_read() -> None:
        down(box["sem"])
        while not box["buf"]:
            if not bug:
                up(box["sem"])
            wait_event_interruptible(box["inq"], lambda: bool(box["buf"]))
            if not bug:
                down(box["sem"])
        kfree(box["buf"].pop())
        up(box["sem"])

    def p_write() -> None:
        msleep(2)                                  # the reader finds the pipe empty
        down(box["sem"])
        box["buf"].append(kmalloc(16, GFP_KERNEL))
        up(box["sem"])
        wake_up_interruptible(box["inq"])

    m.run(setup)
    m.run(p_read, p_write)


def sleepy_wakes_before_the_flag(m: Machine, bug: bool) -> None:
    """sleepy: the reader sleeps in wait_event_interruptible(wq, flag != 0). The buggy
    writer wakes it before setting the flag: the reader finds it 0 and sleeps again, and
    the flag set after finds nobody to wake."""
    box: dict[str, Any] = {"flag": 0}

    def sleepy_read() -> None:
        wait_event_interruptible(box["wq"], lambda: box["flag"] != 0)
        box["flag"] = 0

    def sleepy_write() -> None:
        msleep(2)                                  # the reader is asleep
        if bug:
            wake_up_interruptible(box["wq"])
            msleep(1)                              # the rest of the write
            box["flag"] = 1
        else:
            box["flag"] = 1
            wake_up_interruptible(box["wq"])

    m.run(lambda: box.update(wq=init_waitqueue_head("wq")))
    m.run(sleepy_read, sleepy_write)


def scullsingle_open_not_atomic(m: Machine, bug: bool) -> None:
    """scull_s_open(): "if (!atomic_dec_and_test(&scull_s_available))". The buggy open
    tests and clears a plain int: two openers race on it (KCSAN) and both get in."""
    box: dict[str, Any] = {}

    def setup() -> None:
        box["avail"] = kzalloc(4, GFP_KERNEL)
        atomic_set(box["avail"], 1)

    def s_open_release() -> None:
        v = box["avail"]
        if bug:
            if read_u32(v) != 1:
                return                             # -EBUSY
            write_u32(v, 0)
        elif not atomic_dec_and_test(v):
            atomic_inc(v)
            return                                 # -EBUSY
        msleep(1)                                  # the device is used
        if bug:
            write_u32(v, 1)
        else:
            atomic_inc(v)                          # scull_s_release()

    m.run(setup)
    m.run(s_open_release, s_open_release)
    m.run(lambda: kfree(box["avail"]))


def scullwuid_owner_unlocked(m: Machine, bug: bool) -> None:
    """scull_w_open(): the owner's uid and the open count under scull_w_lock. Without the
    spinlock the two fields race (KCSAN)."""
    box: dict[str, Any] = {}

    def setup() -> None:
        box["w"] = kzalloc(8, GFP_KERNEL)         # { scull_w_count, scull_w_owner }
        box["lock"] = spin_lock_init("scull_w_lock")

    def w_open(uid: int) -> Callable[[], None]:
        def do_open() -> None:
            w = box["w"]
            if not bug:
                spin_lock(box["lock"])
            busy = read_u32(w) and read_u32(w + 4) != uid
            if not busy:
                if not read_u32(w):
                    write_u32(w + 4, uid)          # scull_w_owner = current->uid
                write_u32(w, read_u32(w) + 1)      # scull_w_count++
            if not bug:
                spin_unlock(box["lock"])
            if busy:
                return                             # -EBUSY
            if not bug:
                spin_lock(box["lock"])
            write_u32(w, read_u32(w) - 1)          # scull_w_release()
            if not bug:
                spin_unlock(box["lock"])
        return do_open

    m.run(setup)
    m.run(w_open(500), w_open(500))
    m.run(lambda: kfree(box["w"]))


def kthread_never_tests_should_stop(m: Machine, bug: bool) -> None:
    """A worker thread waits for work in wait_event_interruptible() on a condition that
    ignores kthread_should_stop(): kthread_stop() wakes it, it sleeps again, and the
    stopper waits for its exit for ever."""
    box: dict[str, Any] = {"work": 0, "done": 0}

    def worker() -> int:
        while True:
            if bug:
                wait_event_interruptible(box["wq"], lambda: box["work"] > 0)
            else:
                wait_event_interruptible(box["wq"], lambda: box["work"] > 0 or kthread_should_stop())
                if kthread_should_stop() and not box["work"]:
                    return box["done"]
            box["work"] -= 1
            kfree(kmalloc(32, GFP_KERNEL))
            box["done"] += 1

    def driver() -> None:
        t = kthread_run(worker, namefmt="ldd3_worker")
        box["work"] += 2
        wake_up_interruptible(box["wq"])
        msleep(5)
        assert kthread_stop(t) == 2

    m.run(lambda: box.update(wq=init_waitqueue_head("worker_wq")))
    m.run(driver)


# -- ch. 7: jit (jitbusy, jitsched, jitimer, jitasklet, jiq) ---------------------------------

JIT_LOOPS = 4
JIT_DELAY = 5                                      # jiffies: 5 ms at HZ = 1000


def jitbusy(m: Machine, bug: bool) -> None:
    """jitbusy: "while (time_before(jiffies, j1)) cpu_relax();" for a tenth of a second,
    on two CPUs at once (no bug: the delay must pass and end)."""
    seen: list[int] = []

    def busy() -> None:
        j0 = jiffies()
        j1 = j0 + HZ // 50
        while time_before(jiffies(), j1):
            cpu_relax()
        seen.append(jiffies() - j0)

    m.run(busy, busy)
    assert len(seen) == 2 and all(d >= HZ // 50 for d in seen), seen


def jitsched(m: Machine, bug: bool) -> None:
    """jitqueue/jitschedto: set_current_state(TASK_INTERRUPTIBLE); schedule_timeout(delay),
    on two CPUs (no bug: the delay must pass). jitsched's schedule() loop is a test of its own below."""
    seen: list[int] = []

    def timeout() -> None:
        j0 = jiffies()
        set_current_state(TASK_INTERRUPTIBLE)
        left = schedule_timeout(HZ // 10)
        assert left == 0
        wq = init_waitqueue_head("jitqueue")
        assert wait_event_interruptible_timeout(wq, lambda: False, 10) == 0   # jitqueue
        seen.append(jiffies() - j0)

    m.run(timeout, timeout)
    assert len(seen) == 2 and all(d >= HZ // 10 for d in seen), seen


def _jit_data(box: dict[str, Any]) -> None:
    """struct jit_data: the loop count and the jiffies of each turn, kmalloc'ed."""
    box["data"] = kzalloc(4 * (JIT_LOOPS + 1), GFP_KERNEL)
    box["wq"] = init_waitqueue_head("jit_wait")


def _jit_turn(box: dict[str, Any], gfp_kernel: bool, sleeps: bool = False) -> bool:
    """One turn of the deferred function: record jiffies; True while turns are left."""
    d = box["data"]
    n = read_u32(d)
    write_u32(d + 4 + 4 * n, jiffies())
    write_u32(d, n + 1)
    kfree(kmalloc(64, GFP_KERNEL if gfp_kernel else GFP_ATOMIC))   # "a buffer for the line"
    if sleeps:
        msleep(1)
    if n + 1 < JIT_LOOPS:
        return True
    box["done"] = True
    wake_up_interruptible(box["wq"])
    return False


def jitimer_gfp_kernel(m: Machine, bug: bool) -> None:
    """jitimer: the timer function re-arms itself JIT_LOOPS times, then wakes the reader.
    The bug allocates with GFP_KERNEL in the timer function (softirq context)."""
    box: dict[str, Any] = {}
    tm = timer_list()

    def jit_timer_fn(data: Any) -> None:
        if _jit_turn(box, bug):
            mod_timer(tm, jiffies() + JIT_DELAY)

    def jit_timer_read() -> None:
        _jit_data(box)
        setup_timer(tm, jit_timer_fn, 0)
        mod_timer(tm, jiffies() + JIT_DELAY)
        wait_event_interruptible(box["wq"], lambda: box.get("done", False))
        del_timer_sync(tm)
        kfree(box["data"])

    m.run(jit_timer_read)


def jitimer_del_timer_then_kfree(m: Machine, bug: bool) -> None:
    """jitimer's data freed on release after del_timer(): del_timer() does not wait for the
    timer function running on another CPU, which writes the freed data and re-arms;
    del_timer_sync() does (KASAN slab-use-after-free, when release races the timer)."""
    box: dict[str, Any] = {}
    tm = timer_list()

    def jit_timer_fn(data: Any) -> None:
        d = box["data"]
        for i in range(JIT_LOOPS):                 # one line of /proc/jitimer per turn
            write_u32(d + 4 + 4 * i, jiffies())
        write_u32(d, read_u32(d) + 1)
        mod_timer(tm, jiffies() + 1)

    def jit_timer_open_release() -> None:
        _jit_data(box)
        setup_timer(tm, jit_timer_fn, 0)
        tm.expires = jiffies() + 1
        add_timer_on(tm, 1 - raw_smp_processor_id())   # the timer runs on the other CPU
        msleep(3)
        (del_timer if bug else del_timer_sync)(tm)
        kfree(box["data"])

    m.run(jit_timer_open_release, lambda: msleep(5))
    if bug:
        m.run(lambda: del_timer_sync(tm))          # the module's last chance


def _jitasklet(m: Machine, bug_gfp: bool = False, bug_sleep: bool = False, kill: bool = True) -> None:
    box: dict[str, Any] = {}
    t = tasklet_struct()

    def jit_tasklet_fn(data: Any) -> None:
        if "data" not in box:
            return
        if _jit_turn(box, bug_gfp, bug_sleep):
            tasklet_schedule(t)                    # reschedules itself

    def jit_tasklet_read() -> None:
        _jit_data(box)
        tasklet_init(t, jit_tasklet_fn, 0)
        tasklet_schedule(t)
        wait_event_interruptible(box["wq"], lambda: box.get("done", False))
        tasklet_kill(t)
        kfree(box["data"])

    m.run(jit_tasklet_read)


def jitasklet_gfp_kernel(m: Machine, bug: bool) -> None:
    """jitasklet: the tasklet reschedules itself JIT_LOOPS times; the bug allocates with
    GFP_KERNEL in it (softirq context)."""
    _jitasklet(m, bug_gfp=bug)


def jitasklet_msleep(m: Machine, bug: bool) -> None:
    """jitasklet with an msleep(1) in the tasklet "to pace it": sleeping in softirq context."""
    _jitasklet(m, bug_sleep=bug)


def jitasklet_data_freed_before_kill(m: Machine, bug: bool) -> None:
    """The release of jitasklet frees the tasklet's data without tasklet_kill() while the
    tasklet, rescheduling itself, still has turns to run: it writes freed memory (KASAN)."""
    box: dict[str, Any] = {}
    t = tasklet_struct()

    def jit_tasklet_fn(data: Any) -> None:
        box["turns"] = box.get("turns", 0) + 1
        d = box["data"]
        write_u32(d, read_u32(d) + 1)
        if box["turns"] < JIT_LOOPS:
            tasklet_schedule(t)

    def jit_tasklet_open_release() -> None:
        _jit_data(box)
        tasklet_init(t, jit_tasklet_fn, 0)
        tasklet_schedule(t)
        if not bug:
            tasklet_kill(t)
        kfree(box["data"])

    m.run(jit_tasklet_open_release)
    if bug:
        m.run(lambda: tasklet_kill(t))


def jiq_free_without_flush(m: Machine, bug: bool) -> None:
    """jiq: a work requeues itself on its queue JIT_LOOPS times, sleeping and allocating
    with GFP_KERNEL as process context may. The buggy release frees the data and destroys
    nothing before the work is done: no flush_workqueue() (KASAN)."""
    box: dict[str, Any] = {}
    w = work_struct()

    def jiq_print_wq(work: Any) -> None:
        d = box["data"]
        n = read_u32(d)
        write_u32(d + 4 + 4 * n, jiffies())
        write_u32(d, n + 1)
        kfree(kmalloc(128, GFP_KERNEL))
        msleep(1)
        if n + 1 < JIT_LOOPS:
            queue_work(box["wq_struct"], w)

    def jiq_read() -> None:
        _jit_data(box)
        box["wq_struct"] = create_singlethread_workqueue("jiq")
        INIT_WORK(w, jiq_print_wq)
        queue_work(box["wq_struct"], w)
        msleep(1)
        if not bug:
            while read_u32(box["data"]) < JIT_LOOPS:
                flush_workqueue(box["wq_struct"])
        kfree(box["data"])
        msleep(10)                                 # the module is still loaded
        destroy_workqueue(box["wq_struct"])

    m.run(jiq_read)


# -- the verdicts ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Pair:
    """A buggy driver and its fixed twin (``body(m, bug)``), the report kinds the bug must
    be reported as (a kind also matches its extensions after '_'), the start of the
    report's first line in the kernel's words, and whether it needs an unlucky schedule."""

    body: Callable[[Machine, bool], None]
    reports: tuple[str, ...]
    first_line: str
    machine: dict[str, Any] = field(default_factory=lambda: dict(DETECTORS))
    race: bool = False
    also: tuple[str, ...] = ()        # kinds lockdep may print first (fs_reclaim, rwlock reads)

    def scenario(self, bug: bool) -> StressScenario:
        twin = "buggy" if bug else "fixed"
        return StressScenario(f"ldd3_{self.body.__name__}::{twin}", lambda m: self.body(m, bug),
                              machine={"cpus": 2, **self.machine})

    def matches(self, kind: str) -> bool:
        return any(kind == r or kind.startswith(r + "_") for r in self.reports)


SLEEP_IN_ATOMIC = "BUG: sleeping function called from invalid context at "
DEADLOCK = "INFO: task hung: every task is blocked"
#: Today's might_alloc() runs fs_reclaim_acquire() before might_sleep_if(): with lockdep on,
#: GFP_KERNEL in softirq context is first lockdep's "inconsistent {SOFTIRQ-ON-W} ->
#: {IN-SOFTIRQ-W} usage" on fs_reclaim, then the sleeping-function BUG (both are required).
FS_RECLAIM = ("lockdep_inconsistent",)

PAIRS: dict[str, Pair] = {p.body.__name__: p for p in [
    Pair(scull_read_under_spinlock, ("sleep_in_atomic",), SLEEP_IN_ATOMIC),
    Pair(scull_write_without_semaphore, ("kcsan_data_race",), "BUG: KCSAN: data-race in ", KCSAN),
    Pair(scull_write_count_not_clamped, ("kasan",), "BUG: KASAN: slab-out-of-bounds in "),
    Pair(complete_c_one_complete_for_two_readers, ("deadlock",), DEADLOCK),
    Pair(bit_lock_not_atomic, ("kcsan_data_race",), "BUG: KCSAN: data-race in ", KCSAN),
    Pair(completion_waited_in_the_handler, ("sleep_in_atomic",), SLEEP_IN_ATOMIC),
    Pair(semaphore_error_path_keeps_it, ("deadlock",), DEADLOCK),
    Pair(rwsem_recursive_down_read, ("lockdep_recursive",), "WARNING: possible recursive locking detected"),
    Pair(rwsem_counter_under_down_read, ("kcsan_data_race",), "BUG: KCSAN: data-race in ", KCSAN),
    Pair(spinlock_shared_with_handler, ("lockdep_inconsistent",), "WARNING: inconsistent lock state"),
    Pair(rwlock_reader_interrupted_by_writer, ("rwlock_write_lock_lockup",), "BUG: write-lock lockup on CPU#",
         also=("lockdep_inconsistent",)),      # lockdep's read side: {HARDIRQ-ON-R} -> {IN-HARDIRQ-W}
    Pair(scullpipe_lost_wakeup, ("deadlock",), DEADLOCK, race=True),
    Pair(scullpipe_sleeps_holding_semaphore, ("deadlock",), DEADLOCK),
    Pair(sleepy_wakes_before_the_flag, ("deadlock",), DEADLOCK),
    Pair(scullsingle_open_not_atomic, ("kcsan_data_race",), "BUG: KCSAN: data-race in ", KCSAN),
    Pair(scullwuid_owner_unlocked, ("kcsan_data_race",), "BUG: KCSAN: data-race in ", KCSAN),
    Pair(kthread_never_tests_should_stop, ("deadlock",), DEADLOCK),
    Pair(jitimer_gfp_kernel, ("sleep_in_atomic",), SLEEP_IN_ATOMIC, also=FS_RECLAIM),
    Pair(jitimer_del_timer_then_kfree, ("kasan",), "BUG: KASAN: slab-use-after-free in ", race=True),
    Pair(jitasklet_gfp_kernel, ("sleep_in_atomic",), SLEEP_IN_ATOMIC, also=FS_RECLAIM),
    Pair(jitasklet_msleep, ("sleep_in_atomic", "scheduling_while_atomic"), SLEEP_IN_ATOMIC),
    Pair(jitasklet_data_freed_before_kill, ("kasan",), "BUG: KASAN: slab-use-after-free in "),
    Pair(jiq_free_without_flush, ("kasan",), "BUG: KASAN: slab-use-after-free in "),
]}

#: Drivers with no bug of their own (jit's delays): only the clean verdict applies.
CLEAN: dict[str, Callable[[Machine, bool], None]] = {f.__name__: f for f in [
    jitbusy, jitsched, scull_read_bad_user_address]}


def _headline(text: str) -> str:
    return next(line for line in text.splitlines() if line.strip(" =-"))   # KASAN, lockdep: after a rule


def _describe(out: Outcome) -> str:
    first = _headline(out.reports[0]) if out.reports else ""
    return f"{out.policy} seed {out.seed}: {out.failure} {out.error[:300]!r} {first!r}"


def _buggy_runs(name: str, policies: tuple[str, ...]) -> list[Outcome]:
    """The buggy driver's runs; asserts each failure is the expected verdict in the
    kernel's words (no wrong verdict); returns the runs that found the bug."""
    p = PAIRS[name]
    sc = p.scenario(True)
    found, wrong = [], []
    for pol, opts, seed in plan(SEEDS, policies):
        out = run_one(sc, pol, opts, seed)
        if not out.failed:
            continue
        hit = next((t for t, k in zip(out.reports, out.kinds) if p.matches(k)), None)
        first = out.failure or ""
        if hit is None or not (p.matches(first) or first in p.also):
            wrong.append(out)
            continue
        assert _headline(hit).startswith(p.first_line), f"{name} {_describe(out)}: the report reads\n{hit}"
        found.append(out)
    assert not wrong, f"{name}: a wrong verdict: {[_describe(o) for o in wrong]}"
    return found


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_the_buggy_driver_is_reported(name: str, policy: str) -> None:
    """Every seed of every policy reports a deterministic bug; a race's runs that fail
    fail with its verdict (test_a_race_is_found checks it is found at all)."""
    found = _buggy_runs(name, (policy,))
    if not PAIRS[name].race:
        assert len(found) == len(SEEDS), f"{name}: found by {len(found)} of {len(SEEDS)} seeds under {policy}"


@pytest.mark.parametrize("name", sorted(n for n, p in PAIRS.items() if p.race))
def test_a_race_is_found(name: str) -> None:
    """A race (an unlucky schedule) is found by some run of the four policies' seeds."""
    assert _buggy_runs(name, POLICIES), f"{name}: not found in {len(POLICIES) * len(SEEDS)} runs"


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(PAIRS) + sorted(CLEAN))
def test_the_fixed_twin_is_clean(name: str, policy: str) -> None:
    body = PAIRS[name].body if name in PAIRS else CLEAN[name]
    machine = PAIRS[name].machine if name in PAIRS else dict(DETECTORS)
    sc = StressScenario(f"ldd3_{name}::fixed", lambda m: body(m, False), machine={"cpus": 2, **machine})
    for pol, opts, seed in plan(SEEDS, (policy,)):
        out = run_one(sc, pol, opts, seed)
        assert not out.failed, f"{name} fixed, {_describe(out)}"


# -- model problems this audit found (outside this file's scope) -----------------------------

def test_jitsched_schedule_loop_lets_jiffies_pass() -> None:
    """LDD3's jitsched, "while (time_before(jiffies, j1)) schedule();", must end: jiffies
    advance while a task yields, as the timer tick advances them in the kernel."""
    m = Machine(cpus=2, policy="random", seed=0, timeout=1)

    def jitsched() -> None:
        j1 = jiffies() + 20
        while time_before(jiffies(), j1):
            schedule()

    m.run(jitsched)
    assert not m.reports


@pytest.mark.xfail(strict=True, reason="a self-rescheduling tasklet starves its CPU's task and time: tasklet_kill/msleep never return (RunTimeout)")
def test_tasklet_kill_stops_a_tasklet_that_reschedules_itself() -> None:
    """tasklet_kill() of a tasklet whose function always reschedules it must return (the
    kernel's and docs/deferred-work.md's promise), and msleep() beside it must end."""
    m = Machine(cpus=2, policy="random", seed=0, timeout=1)
    t = tasklet_struct()
    turns = [0]

    def fn(data: Any) -> None:
        turns[0] += 1
        tasklet_schedule(t)

    def release() -> None:
        tasklet_init(t, fn, 0)
        tasklet_schedule(t)
        msleep(2)
        tasklet_kill(t)

    m.run(release)
    assert turns[0] >= 1 and not m.reports


@pytest.mark.xfail(strict=True, reason="a work asleep when its run ends is dropped: flush_workqueue() in the next run returns, 2 of 4 turns ran")
def test_a_work_asleep_when_the_run_ends_finishes_in_the_next_run() -> None:
    """A work function still running (asleep in msleep) when a run's tasks end must go on
    in the next run: a later flush_workqueue() waits for it and its requeues. The model
    drops it, so a use-after-free by the rest of the work is never seen."""
    m = Machine(cpus=2, policy="random", seed=0, timeout=5)
    w = work_struct()
    box: dict[str, Any] = {"turns": 0}

    def fn(work: Any) -> None:
        box["turns"] += 1
        msleep(1)
        if box["turns"] < JIT_LOOPS:
            queue_work(box["wq"], w)

    def start() -> None:
        box["wq"] = create_singlethread_workqueue("jiq")
        INIT_WORK(w, fn)
        queue_work(box["wq"], w)
        msleep(1)

    m.run(start)
    m.run(lambda: flush_workqueue(box["wq"]))
    assert box["turns"] == JIT_LOOPS
