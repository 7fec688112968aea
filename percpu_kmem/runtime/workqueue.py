"""Work queues (<linux/workqueue.h>): deferred work in process context, LDD3 chapter 7.

Kept (2.6's design, today's call forms): create_workqueue(name) starts one kernel thread per
CPU ("name/N", bound to CPU N), create_singlethread_workqueue(name) one thread ("name");
the system queue is keventd's "events" ("events/N"), started at the first
schedule_work() in a machine. A work item runs in process context on its queue's thread for
the CPU that queued it: it may sleep, so GFP_KERNEL is right there. INIT_WORK(work, func)
(today: ``func(work)``; the 2.6.10 form INIT_WORK(work, func, data) calls ``func(data)``),
DECLARE_WORK, INIT_DELAYED_WORK / DECLARE_DELAYED_WORK; queue_work() and schedule_work()
return 1, or 0 if the work was pending already (WORK_STRUCT_PENDING); queue_delayed_work()
and schedule_delayed_work() arm the work's timer (runtime/timer.py) to queue it after
``delay`` jiffies (0: at once); flush_workqueue() and flush_scheduled_work() wait until every
work queued before the call has run (2.6's insert and remove sequence numbers; a flush from
the queue's own thread runs nothing and returns, as 2.6's recursion would have run the
queue); destroy_workqueue() flushes, then stops the threads; cancel_work_sync() takes a
pending work off its queue and waits for a running one (1 if it was pending);
cancel_delayed_work() deletes the timer only (1 if it was pending, 2.6's form);
cancel_delayed_work_sync() also waits for the work; work_pending(), delayed_work_pending().

The threads are daemons, as kswapd: they end with the run's tasks, and the hung-task and
deadlock watchdogs do not wait for them. A queue's threads start with every later run of
the machine (destroy_workqueue() stops that). Work still queued when the run's tasks end
stays queued and runs in the next run.

Simplified: no CPU hotplug, no ordered or unbound queues, no max_active (one work at a time
per thread, as 2.6); no lockdep annotation of flush against the work's locks. KCSAN:
queue_work() happens before the work, the work before what follows a flush or a
cancel_work_sync() that waited for it.

Kernel files modelled: kernel/workqueue.c (2.6.10: worker_thread, run_workqueue,
flush_cpu_workqueue, __create_workqueue, queue_delayed_work, delayed_work_timer_fn).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from .errors import KmemUsageError
from .kernel import current, jiffies, might_sleep, preempt_point
from .locks import init_waitqueue_head, wait_event, wait_event_interruptible, wake_up_all
from .softirqd import DeferredState, deferred_state
from .task import Task, current_task
from .timer import ULONG_MAX, _mod_timer, del_timer, del_timer_sync, timer_list
from .validate import check_int, check_str

_NO_DATA: Final = object()


class work_struct:
    """struct work_struct: ``func`` (and 2.6.10's ``data``), the PENDING bit."""

    def __init__(self, func: Callable[[Any], Any] | None = None, data: Any = _NO_DATA) -> None:
        self.func = func
        self.data = data
        self.pending = False
        #: the queue and CPU it is queued on, or last ran on
        self.wq: workqueue_struct | None = None
        self.cpu = 0
        self.machine: Any = None

    def __repr__(self) -> str:
        fn = getattr(self.func, "__qualname__", self.func)
        return f"<{type(self).__name__} {fn}{' pending' if self.pending else ''}>"


class delayed_work(work_struct):
    """struct delayed_work: a work_struct and the timer that queues it."""

    def __init__(self, func: Callable[[Any], Any] | None = None, data: Any = _NO_DATA) -> None:
        super().__init__(func, data)
        self.timer = timer_list()
        #: the queue the timer will put it on
        self.target: workqueue_struct | None = None


class workqueue_struct:
    """A work queue: a list, a thread and two wait queues per CPU (cpu_workqueue_struct)."""

    def __init__(self, name: str, singlethread: bool, nr_cpus: int) -> None:
        self.name = name
        self.singlethread = singlethread
        n = 1 if singlethread else nr_cpus
        self.worklist: list[list[work_struct]] = [[] for _ in range(n)]
        self.more_work = [init_waitqueue_head(f"{name}/{i}.more_work") for i in range(n)]
        self.work_done = [init_waitqueue_head(f"{name}/{i}.work_done") for i in range(n)]
        self.insert_sequence = [0] * n
        self.remove_sequence = [0] * n
        self.current_work: list[work_struct | None] = [None] * n
        self.threads: list[Task | None] = [None] * n
        self.thread_fns: list[Callable[[], None]] = []
        self.destroyed = False
        self.machine: Any = None

    def slot(self, cpu: int) -> int:
        return 0 if self.singlethread else cpu

    def __repr__(self) -> str:
        return f"<workqueue_struct {self.name}{' destroyed' if self.destroyed else ''}>"


# -- arguments ------------------------------------------------------------------------------
def _work_arg(fn: str, work: Any, cls: type[work_struct] = work_struct) -> Task:
    t = current_task()
    if not isinstance(work, cls):
        current()  # NotInTaskError first, outside a task
        what = "a delayed_work (INIT_DELAYED_WORK())" if cls is delayed_work else "a work_struct (INIT_WORK())"
        raise KmemUsageError(f"{fn}: work(={work!r}) must be {what}")
    if work.machine is not None and work.machine is not t.machine:
        raise KmemUsageError(f"{fn}: work {work!r} belongs to another machine")
    return t


def _wq_arg(fn: str, wq: Any, t: Task) -> workqueue_struct:
    if not isinstance(wq, workqueue_struct):
        raise KmemUsageError(f"{fn}: wq(={wq!r}) must be a workqueue_struct (create_workqueue())")
    if wq.machine is not t.machine:
        raise KmemUsageError(f"{fn}: work queue {wq.name} belongs to another machine")
    if wq.destroyed:
        raise KmemUsageError(f"{fn}: work queue {wq.name} was destroyed (destroy_workqueue())")
    return wq


def _func_arg(fn: str, func: Any) -> None:
    if not callable(func):
        raise KmemUsageError(f"{fn}: func(={func!r}) must be callable (the work's function)")


def _delay_arg(fn: str, delay: Any) -> None:
    if delay.__class__ is not int or not 0 <= delay <= ULONG_MAX:
        check_int(fn, "delay", delay, 0, ULONG_MAX, "a number of jiffies")


# -- setting work up --------------------------------------------------------------------------
def INIT_WORK(work: work_struct, func: Callable[[Any], Any], data: Any = _NO_DATA) -> None:
    """Set up ``work`` to run ``func(work)`` (or 2.6.10's ``func(data)`` if ``data`` is given)."""
    _work_arg("INIT_WORK", work)
    _func_arg("INIT_WORK", func)
    if work.pending:
        raise KmemUsageError(f"INIT_WORK: {work!r} is pending: initialising it would corrupt its queue")
    work.func = func
    work.data = data


def DECLARE_WORK(name: str, func: Callable[[Any], Any], data: Any = _NO_DATA) -> work_struct:
    """A work_struct running ``func`` (returned: Python has no static declarations)."""
    check_str("DECLARE_WORK", "name", name)
    _func_arg("DECLARE_WORK", func)
    return work_struct(func, data)


def INIT_DELAYED_WORK(work: delayed_work, func: Callable[[Any], Any], data: Any = _NO_DATA) -> None:
    """Set up a delayed_work to run ``func(work)`` (or ``func(data)``)."""
    _work_arg("INIT_DELAYED_WORK", work, delayed_work)
    _func_arg("INIT_DELAYED_WORK", func)
    if work.pending:
        raise KmemUsageError(f"INIT_DELAYED_WORK: {work!r} is pending: initialising it would corrupt its queue")
    work.func = func
    work.data = data


def DECLARE_DELAYED_WORK(name: str, func: Callable[[Any], Any], data: Any = _NO_DATA) -> delayed_work:
    """A delayed_work running ``func`` (returned)."""
    check_str("DECLARE_DELAYED_WORK", "name", name)
    _func_arg("DECLARE_DELAYED_WORK", func)
    return delayed_work(func, data)


def work_pending(work: work_struct) -> bool:
    _work_arg("work_pending", work)
    return work.pending


def delayed_work_pending(work: delayed_work) -> bool:
    _work_arg("delayed_work_pending", work, delayed_work)
    return work.pending


# -- queues and their threads --------------------------------------------------------------------
def _worker_fn(st: DeferredState, wq: workqueue_struct, i: int) -> Callable[[], None]:
    def worker_thread() -> None:
        t = current_task()
        wq.threads[i] = t
        while not wq.destroyed:
            wait_event_interruptible(wq.more_work[i], lambda: bool(wq.worklist[i]) or wq.destroyed)
            while wq.worklist[i]:  # run_workqueue()
                with st.guard:
                    if not wq.worklist[i]:
                        break
                    work = wq.worklist[i].pop(0)
                    work.pending = False
                    wq.current_work[i] = work
                try:
                    func = work.func
                    if t.hb is not None:  # KCSAN
                        t.hb.acquire(t, ("work", id(work)))
                    if func is not None:
                        func(work if work.data is _NO_DATA else work.data)
                    if t.hb is not None:  # a flush or a cancel_work_sync() sees what it did
                        t.hb.release(t, ("work_done", id(work)))
                        t.hb.release(t, ("wq_done", id(wq)))
                finally:
                    with st.guard:
                        wq.current_work[i] = None
                        wq.remove_sequence[i] += 1
                    wake_up_all(wq.work_done[i])
                preempt_point("worker_thread")
    worker_thread.__name__ = f"worker_thread_{wq.name}_{i}"
    return worker_thread


def _create(fn: str, name: Any, singlethread: bool, at_boot: bool = False) -> workqueue_struct:
    """create_workqueue(); ``at_boot``: keventd's queue, which the kernel made at boot
    (the model makes it at the first schedule_work(), from any context: no might_sleep())."""
    t = current_task()
    current()  # NotInTaskError first, outside a task
    check_str(fn, "name", name, empty=False)
    if not at_boot:
        might_sleep()
    st = deferred_state(t)
    m = t.machine
    wq = workqueue_struct(name, singlethread, m.nr_cpus)
    wq.machine = m
    for i in range(len(wq.worklist)):
        wfn = _worker_fn(st, wq, i)
        wq.thread_fns.append(wfn)
        comm = name if singlethread else f"{name}/{i}"
        cpus = None if singlethread else [i]
        m.add_daemon(comm, wfn, cpus=cpus)
        wq.threads[i] = m._spawn(wfn, comm, daemon=True, cpus=frozenset(cpus) if cpus is not None else None)
    st.workqueues.append(wq)
    return wq


def create_workqueue(name: str) -> workqueue_struct:
    """A work queue with a thread per CPU ("name/N"). Process context (it may sleep)."""
    return _create("create_workqueue", name, False)


def create_singlethread_workqueue(name: str) -> workqueue_struct:
    """A work queue with one thread ("name")."""
    return _create("create_singlethread_workqueue", name, True)


def _keventd(t: Task) -> workqueue_struct:
    st = deferred_state(t)
    if st.keventd is None:
        st.keventd = _create("schedule_work", "events", False, at_boot=True)
    wq: workqueue_struct = st.keventd
    return wq


def _queue(st: DeferredState, wq: workqueue_struct, work: work_struct, cpu: int, t: Task) -> None:
    i = wq.slot(cpu)
    with st.guard:
        work.wq = wq
        work.cpu = i
        wq.worklist[i].append(work)
        wq.insert_sequence[i] += 1
    if t.hb is not None:  # KCSAN: the work sees what queued it
        t.hb.release(t, ("work", id(work)))
    wake_up_all(wq.more_work[i])


def queue_work(wq: workqueue_struct, work: work_struct) -> int:
    """Queue ``work`` on ``wq`` for this CPU; 1, or 0 if it was pending already."""
    t = _work_arg("queue_work", work)
    _wq_arg("queue_work", wq, t)
    return _queue_work("queue_work", t, wq, work, t.cpu.id)


def queue_work_on(cpu: int, wq: workqueue_struct, work: work_struct) -> int:
    """Queue ``work`` on ``wq`` for CPU ``cpu`` (its thread there runs it)."""
    t = _work_arg("queue_work_on", work)
    check_int("queue_work_on", "cpu", cpu, 0, t.machine.nr_cpus - 1, "a CPU number")
    _wq_arg("queue_work_on", wq, t)
    return _queue_work("queue_work_on", t, wq, work, cpu)


def schedule_work_on(cpu: int, work: work_struct) -> int:
    """queue_work_on() of the system queue."""
    t = _work_arg("schedule_work_on", work)
    check_int("schedule_work_on", "cpu", cpu, 0, t.machine.nr_cpus - 1, "a CPU number")
    return queue_work_on(cpu, _keventd(t), work)


def _queue_work(fn: str, t: Task, wq: workqueue_struct, work: work_struct, cpu: int) -> int:
    if work.func is None:
        raise KmemUsageError(f"{fn}: {work!r} has no function (INIT_WORK() first)")
    st = deferred_state(t)
    work.machine = t.machine
    with st.guard:
        if work.pending:
            return 0
        work.pending = True
    _queue(st, wq, work, cpu, t)
    return 1


def schedule_work(work: work_struct) -> int:
    """queue_work() on the system queue ("events")."""
    t = _work_arg("schedule_work", work)
    return queue_work(_keventd(t), work)


def _delayed_work_timer_fn(work: delayed_work) -> None:
    """delayed_work_timer_fn(): the timer expired: queue the work on this CPU."""
    t = current_task()
    wq = work.target
    if wq is None or wq.destroyed:
        return
    _queue(deferred_state(t), wq, work, t.cpu.id, t)


def queue_delayed_work(wq: workqueue_struct, work: delayed_work, delay: int) -> int:
    """Queue ``work`` on ``wq`` after ``delay`` jiffies (its timer); 1, or 0 if pending."""
    t = _work_arg("queue_delayed_work", work, delayed_work)
    _wq_arg("queue_delayed_work", wq, t)
    _delay_arg("queue_delayed_work", delay)
    if work.func is None:
        raise KmemUsageError(f"queue_delayed_work: {work!r} has no function (INIT_DELAYED_WORK() first)")
    st = deferred_state(t)
    work.machine = t.machine
    with st.guard:
        if work.pending:
            return 0
        work.pending = True
    if delay == 0:
        _queue(st, wq, work, t.cpu.id, t)
        return 1
    work.target = wq
    timer = work.timer
    timer.function = _delayed_work_timer_fn
    timer.data = work
    timer.callback_gets_timer = False
    _mod_timer(t, timer, jiffies() + delay, None)
    return 1


def schedule_delayed_work(work: delayed_work, delay: int) -> int:
    """queue_delayed_work() on the system queue."""
    t = _work_arg("schedule_delayed_work", work, delayed_work)
    _delay_arg("schedule_delayed_work", delay)
    return queue_delayed_work(_keventd(t), work, delay)


def _is_worker(wq: workqueue_struct, t: Task) -> bool:
    return any(u is t for u in wq.threads)


def flush_workqueue(wq: workqueue_struct) -> None:
    """Wait until every work queued on ``wq`` before this call has run. Process context."""
    t = current_task()
    current()
    _wq_arg("flush_workqueue", wq, t)
    might_sleep()
    _flush(wq, t)


def _flush(wq: workqueue_struct, t: Task) -> None:
    if _is_worker(wq, t):
        return  # 2.6 ran the queue from here; the work being flushed is this thread's own
    for i in range(len(wq.worklist)):
        seq = wq.insert_sequence[i]
        wait_event(wq.work_done[i], lambda i=i, seq=seq: wq.remove_sequence[i] >= seq)  # type: ignore[misc]
    if t.hb is not None:  # KCSAN: the flushed work happens before what follows
        t.hb.acquire(t, ("wq_done", id(wq)))


def flush_scheduled_work() -> None:
    """flush_workqueue() of the system queue."""
    t = current_task()
    current()
    might_sleep()
    st = deferred_state(t)
    if st.keventd is not None:
        _flush(st.keventd, t)


def destroy_workqueue(wq: workqueue_struct) -> None:
    """Flush ``wq``, then stop its threads (they do not start with later runs)."""
    t = current_task()
    current()
    _wq_arg("destroy_workqueue", wq, t)
    might_sleep()
    _flush(wq, t)
    st = deferred_state(t)
    wq.destroyed = True
    m = t.machine
    m._daemons = [d for d in m._daemons if d[1] not in wq.thread_fns]
    if wq in st.workqueues:
        st.workqueues.remove(wq)
    if st.keventd is wq:
        st.keventd = None
    for i, th in enumerate(wq.threads):
        wake_up_all(wq.more_work[i])
        _ = th


def _cancel_pending(st: DeferredState, work: work_struct) -> bool:
    with st.guard:
        wq = work.wq
        if not work.pending or wq is None:
            return False
        lst = wq.worklist[work.cpu]
        if work not in lst:
            return False
        lst.remove(work)
        work.pending = False
        wq.remove_sequence[work.cpu] += 1  # a flush does not wait for it any more
    wake_up_all(wq.work_done[work.cpu])
    return True


def _wait_running(work: work_struct) -> None:
    wq = work.wq
    if wq is None:
        return
    i = work.cpu
    t = current_task()
    if wq.threads[i] is t:
        return  # the work cancels itself: nothing to wait for
    wait_event(wq.work_done[i], lambda: wq.current_work[i] is not work)
    if t.hb is not None:  # KCSAN
        t.hb.acquire(t, ("work_done", id(work)))


def flush_work(work: work_struct) -> bool:
    """Wait until ``work`` has run, if it is queued or running (2.6.27 on); True if it
    waited. Process context."""
    t = _work_arg("flush_work", work)
    might_sleep()
    wq = work.wq
    if wq is None or (not work.pending and wq.current_work[work.cpu] is not work):
        return False
    i = work.cpu
    if wq.threads[i] is t:
        return False  # the work flushes itself: it would wait for ever
    wait_event(wq.work_done[i], lambda: not work.pending and wq.current_work[i] is not work)
    if t.hb is not None:  # KCSAN
        t.hb.acquire(t, ("work_done", id(work)))
    return True


def cancel_work_sync(work: work_struct) -> int:
    """Take ``work`` off its queue if pending and wait until it runs nowhere; 1 if it was
    pending. Process context."""
    t = _work_arg("cancel_work_sync", work)
    might_sleep()
    st = deferred_state(t)
    ret = _cancel_pending(st, work)
    _wait_running(work)
    return 1 if ret else 0


def cancel_delayed_work(work: delayed_work) -> int:
    """Delete the work's timer; 1 if it was pending there (2.6: a work already queued is left
    to run)."""
    _work_arg("cancel_delayed_work", work, delayed_work)
    ret = del_timer(work.timer)
    if ret:
        work.pending = False
    return ret


def cancel_delayed_work_sync(work: delayed_work) -> int:
    """Delete the timer, take the work off its queue, wait for it to finish; 1 if pending."""
    t = _work_arg("cancel_delayed_work_sync", work, delayed_work)
    might_sleep()
    ret = del_timer_sync(work.timer)
    if ret:
        work.pending = False
    st = deferred_state(t)
    ret = _cancel_pending(st, work) or ret
    _wait_running(work)
    return 1 if ret else 0


__all__ = ["work_struct", "delayed_work", "workqueue_struct", "INIT_WORK", "DECLARE_WORK", "INIT_DELAYED_WORK",
           "DECLARE_DELAYED_WORK", "work_pending", "delayed_work_pending", "create_workqueue",
           "create_singlethread_workqueue", "destroy_workqueue", "queue_work", "schedule_work",
           "queue_delayed_work", "schedule_delayed_work", "flush_workqueue", "flush_scheduled_work",
           "queue_work_on", "schedule_work_on", "flush_work", "cancel_work_sync", "cancel_delayed_work",
           "cancel_delayed_work_sync"]
