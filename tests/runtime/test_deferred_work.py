"""Timers, tasklets and work queues (LDD3 chapter 7): their semantics, and the classic
driver bugs of deferred work with their fixed twins, under every policy, three seeds each.

A bug must be reported with the kernel's wording on every run; its twin, identical but for
the fix, must get no report at all (``explore`` fails on any report and runs ``m.check()``).
"""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import (
    DECLARE_TASKLET_DISABLED,
    GFP_ATOMIC,
    GFP_KERNEL,
    HI_SOFTIRQ,
    INIT_DELAYED_WORK,
    INIT_WORK,
    TASKLET_SOFTIRQ,
    TIMER_SOFTIRQ,
    add_timer,
    cancel_delayed_work,
    cancel_delayed_work_sync,
    cancel_work_sync,
    cpu_relax,
    create_singlethread_workqueue,
    create_workqueue,
    current,
    del_timer,
    del_timer_sync,
    delayed_work,
    destroy_workqueue,
    flush_scheduled_work,
    flush_workqueue,
    free_irq,
    in_atomic,
    in_softirq,
    init_timer,
    init_waitqueue_head,
    jiffies,
    kfree,
    kmalloc,
    kthread_bind,
    kthread_run,
    local_bh_disable,
    local_bh_enable,
    mod_timer,
    msleep,
    preempt_disable,
    preempt_enable,
    queue_delayed_work,
    queue_work,
    raise_irq,
    raw_smp_processor_id,
    read_u32,
    request_irq,
    schedule_delayed_work,
    schedule_work,
    setup_timer,
    spin_lock,
    spin_lock_bh,
    spin_lock_init,
    spin_unlock,
    spin_unlock_bh,
    tasklet_disable,
    tasklet_enable,
    tasklet_hi_schedule,
    tasklet_init,
    tasklet_kill,
    tasklet_schedule,
    tasklet_setup,
    tasklet_struct,
    time_before,
    timer_list,
    timer_pending,
    timer_setup,
    udelay,
    wait_event,
    wake_up,
    work_pending,
    work_struct,
    write_u32,
)
from percpu_kmem.runtime.errors import KmemUsageError
from percpu_kmem.testing import explore

POLICIES = ("random", "pct", "free", "virtual")
SEEDS = range(3)
RUNS = [(p, s) for p in POLICIES for s in SEEDS]


def run_bug(scenario: Any, policy: str, seed: int, **kw: Any) -> Machine:
    m = Machine(cpus=kw.pop("cpus", 2), policy=policy, seed=seed, **kw)
    scenario(m)
    return m


# -- timers: semantics -------------------------------------------------------------------------
@pytest.mark.parametrize("policy,seed", RUNS)
def test_jitimer_rearms_itself_n_times_in_softirq_on_its_cpu(policy: str, seed: int) -> None:
    """LDD3's jit "jitimer": a timer re-armed from its own function N times, each a tick
    later; the reader sleeps until the last one has run."""
    out: dict[str, Any] = {"runs": [], "ctx": set()}

    def jitimer() -> None:
        out.update(runs=[], ctx=set())  # explore() may run the scenario more than once
        wq = init_waitqueue_head("jiq")
        tm = timer_list()
        loops = 5
        start = jiffies()

        def jit_timer_fn(data: Any) -> None:
            out["runs"].append(jiffies())
            out["ctx"].add((in_softirq(), in_atomic(), raw_smp_processor_id()))
            if len(out["runs"]) < loops:
                mod_timer(tm, jiffies() + 10)
            else:
                wake_up(wq)

        init_timer(tm)
        tm.function = jit_timer_fn
        tm.data = 7
        tm.expires = start + 10
        cpu = raw_smp_processor_id()
        add_timer(tm)
        assert timer_pending(tm)
        wait_event(wq, lambda: len(out["runs"]) >= loops)
        assert not timer_pending(tm)
        out["cpu"], out["start"] = cpu, start

    explore(lambda m: m.run(jitimer), policies=policy, seeds=[seed], cpus=2)
    assert len(out["runs"]) == 5
    assert out["ctx"] == {(True, True, out["cpu"])}
    assert all(b - a >= 10 for a, b in zip([out["start"], *out["runs"]], out["runs"]))


def test_timer_api_return_values_and_timer_setup_callback() -> None:
    seen: list[Any] = []

    def task() -> None:
        tm = timer_list()
        timer_setup(tm, lambda t: seen.append(t), 0)
        assert mod_timer(tm, jiffies() + 5) == 0
        assert mod_timer(tm, jiffies() + 6) == 1
        assert del_timer(tm) == 1
        assert del_timer(tm) == 0
        assert del_timer_sync(tm) == 0
        tm.expires = jiffies() + 3
        add_timer(tm)
        msleep(10)
        assert seen == [tm] and not timer_pending(tm)
        old = timer_list()
        setup_timer(old, lambda d: seen.append(d), 42)
        mod_timer(old, jiffies())  # already due: runs at once
        msleep(1)
        assert seen[-1] == 42

    m = Machine(cpus=2, seed=1)
    m.run(task)
    assert not m.reports


def test_a_timer_armed_when_the_run_ends_does_not_hang_it_and_fires_in_the_next_run() -> None:
    fired: list[int] = []
    tm = timer_list(lambda d: fired.append(d), 5)

    def arm() -> None:
        tm.expires = jiffies() + 1000
        add_timer(tm)

    m = Machine(cpus=2, seed=0, timeout=20)
    m.run(arm)
    assert fired == [] and tm.pending
    m.run(lambda: msleep(2000))
    assert fired == [5] and not tm.pending
    assert not m.reports


def test_timer_misuse_is_answered_in_the_kernels_words() -> None:
    def task() -> None:
        tm = timer_list(lambda d: None)
        tm.expires = jiffies() + 100
        add_timer(tm)
        add_timer(tm)  # pending: WARN_ON_ONCE, nothing changes
        init_timer(tm)  # ODEBUG: init active, and it is deactivated
        assert not timer_pending(tm)
        with pytest.raises(KmemUsageError, match="add_timer: the timer's function"):
            add_timer(timer_list())
        with pytest.raises(KmemUsageError, match="mod_timer: expires"):
            mod_timer(tm, -1)
        with pytest.raises(KmemUsageError, match="del_timer: timer"):
            del_timer(object())  # type: ignore[arg-type]
        assert not timer_pending(tm)

    m = Machine(cpus=1, seed=0)
    m.run(task)
    texts = [r.text for r in m.reports]
    assert len(texts) == 2
    assert texts[0].startswith("WARNING: CPU: 0 PID: ") and "add_timer" in texts[0]
    assert texts[1].startswith("ODEBUG: init active (active state 0) object: ")
    assert "object type: timer_list" in texts[1]


def test_del_timer_sync_from_its_own_function_warns_and_returns() -> None:
    def task() -> None:
        tm = timer_list()
        done: list[int] = []

        def fn(data: Any) -> None:
            done.append(del_timer_sync(tm))

        setup_timer(tm, fn, 0)
        mod_timer(tm, jiffies() + 1)
        msleep(5)
        assert done == [0]

    m = Machine(cpus=1, seed=0)
    m.run(task)
    [rep] = m.reports
    assert rep.kind == "warning" and "__timer_delete_sync" in rep.text and "own function" in rep.text


def test_del_timer_sync_in_hardirq_context_warns() -> None:
    def task() -> None:
        tm = timer_list(lambda d: None)
        request_irq(5, lambda irq, dev: del_timer_sync(tm), 0, "dev", None)
        raise_irq(5)
        free_irq(5, None)

    m = Machine(cpus=1, seed=0)
    m.run(task)
    [rep] = m.reports
    assert "WARN_ON(in_hardirq())" in rep.text


# -- bugs and twins: sleeping allocations in softirq context ----------------------------------------
def _alloc_in_timer(flags: int) -> Any:
    def scenario(m: Machine) -> None:
        def driver() -> None:
            wq = init_waitqueue_head("done")
            box = {"done": False}

            def timer_fn(data: Any) -> None:
                p = kmalloc(128, flags)  # the bug: GFP_KERNEL in a timer function
                kfree(p)
                box["done"] = True
                wake_up(wq)

            tm = timer_list()
            setup_timer(tm, timer_fn, 0)
            mod_timer(tm, jiffies() + 2)
            wait_event(wq, lambda: box["done"])
        m.run(driver)
    return scenario


def _alloc_in_tasklet(flags: int) -> Any:
    def scenario(m: Machine) -> None:
        def driver() -> None:
            wq = init_waitqueue_head("done")
            box = {"done": False}

            def tasklet_fn(data: Any) -> None:
                p = kmalloc(128, flags)
                kfree(p)
                box["done"] = True
                wake_up(wq)

            tl = tasklet_struct()
            tasklet_init(tl, tasklet_fn, 0)
            tasklet_schedule(tl)
            wait_event(wq, lambda: box["done"])
            tasklet_kill(tl)
        m.run(driver)
    return scenario


def _alloc_in_work(m: Machine) -> None:
    def driver() -> None:
        done: list[str] = []

        def work_fn(work: Any) -> None:
            p = kmalloc(128, GFP_KERNEL)  # process context: may sleep
            msleep(1)
            kfree(p)
            done.append(current().comm)

        w = work_struct()
        INIT_WORK(w, work_fn)
        assert schedule_work(w) == 1
        flush_scheduled_work()
        assert done and done[0].startswith("events/")
    m.run(driver)


def _assert_sleep_in_softirq(m: Machine) -> None:
    reps = m.reports_of("sleep_in_atomic")
    assert reps, [r.kind for r in m.reports]
    lines = reps[0].text.splitlines()
    assert lines[0].startswith("BUG: sleeping function called from invalid context at ")
    assert lines[1].startswith("in_atomic(): 1, irqs_disabled(): 0")
    assert "preempt_count: 100, expected: 0" in lines[2]
    assert {r.kind for r in m.reports} == {"sleep_in_atomic"}


@pytest.mark.parametrize("policy,seed", RUNS)
def test_kmalloc_gfp_kernel_in_a_timer_function_is_reported(policy: str, seed: int) -> None:
    _assert_sleep_in_softirq(run_bug(_alloc_in_timer(GFP_KERNEL), policy, seed))


@pytest.mark.parametrize("policy", POLICIES)
def test_kmalloc_gfp_atomic_in_a_timer_function_is_clean(policy: str) -> None:
    explore(_alloc_in_timer(GFP_ATOMIC), policies=policy, seeds=SEEDS, cpus=2)


@pytest.mark.parametrize("policy,seed", RUNS)
def test_kmalloc_gfp_kernel_in_a_tasklet_is_reported(policy: str, seed: int) -> None:
    _assert_sleep_in_softirq(run_bug(_alloc_in_tasklet(GFP_KERNEL), policy, seed))


@pytest.mark.parametrize("policy", POLICIES)
def test_kmalloc_gfp_atomic_in_a_tasklet_is_clean(policy: str) -> None:
    explore(_alloc_in_tasklet(GFP_ATOMIC), policies=policy, seeds=SEEDS, cpus=2)


@pytest.mark.parametrize("policy", POLICIES)
def test_kmalloc_gfp_kernel_moved_to_a_work_queue_is_clean(policy: str) -> None:
    explore(_alloc_in_work, policies=policy, seeds=SEEDS, cpus=2)


def _timer_defers_to_work(m: Machine) -> None:
    """The classic fix in full: the timer function (softirq context) only schedules the
    work, the work allocates with GFP_KERNEL. The system queue's first schedule_work()
    comes from the timer: keventd exists from boot in the kernel, so nothing may sleep."""
    def driver() -> None:
        done = init_waitqueue_head("done")
        box: dict[str, Any] = {"n": 0}
        w = work_struct()
        tm = timer_list()

        def work_fn(work: Any) -> None:
            kfree(kmalloc(128, GFP_KERNEL))
            box["n"] += 1
            wake_up(done)

        INIT_WORK(w, work_fn)
        setup_timer(tm, lambda data: schedule_work(w), 0)
        mod_timer(tm, jiffies() + 2)
        wait_event(done, lambda: box["n"] == 1)
    m.run(driver)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_timer_function_may_schedule_work_the_first_time(policy: str) -> None:
    explore(_timer_defers_to_work, policies=policy, seeds=SEEDS, cpus=2)


# -- bugs and twins: freeing what a timer or tasklet still uses -------------------------------------
def _del_timer_then_kfree(sync: bool) -> Any:
    """remove(): the timer function runs on another CPU when the driver deletes the timer
    and frees its device; del_timer() does not wait for it, del_timer_sync() does."""
    def scenario(m: Machine) -> None:
        box: dict[str, Any] = {}

        started = init_waitqueue_head("started")

        def timer_fn(dev: int) -> None:
            box["started"] = True
            wake_up(started)
            for _ in range(15000):  # the rest of its work, on its CPU, until remove() deletes it
                if box.get("deleting"):
                    break
                cpu_relax()
            for _ in range(2000):
                if box.get("freed"):
                    break
                cpu_relax()
            read_u32(dev)  # dev->status

        def driver() -> None:
            dev = kmalloc(64, GFP_KERNEL)
            write_u32(dev, 0)
            tm = timer_list()
            setup_timer(tm, timer_fn, dev)
            mod_timer(tm, jiffies() + 1)
            wait_event(started, lambda: box.get("started"))  # remove() comes while it runs
            box["deleting"] = True
            (del_timer_sync if sync else del_timer)(tm)
            kfree(dev)
            box["freed"] = True
            msleep(5)
        m.run(driver)
    return scenario


@pytest.mark.parametrize("policy,seed", RUNS)
def test_del_timer_then_kfree_while_the_function_runs_is_a_use_after_free(policy: str, seed: int) -> None:
    m = run_bug(_del_timer_then_kfree(False), policy, seed, kasan=True)
    reps = m.reports_of("kasan_slab_use_after_free")
    assert reps, [r.kind for r in m.reports]
    assert reps[0].text.splitlines()[1].startswith("BUG: KASAN: slab-use-after-free in ")


@pytest.mark.parametrize("policy", POLICIES)
def test_del_timer_sync_then_kfree_is_clean(policy: str) -> None:
    explore(_del_timer_then_kfree(True), policies=policy, seeds=SEEDS, cpus=2, kasan=True)


def _tasklet_then_kfree(kill: bool) -> Any:
    """LDD3's jitasklet: a tasklet that reschedules itself while its count lasts; remove()
    frees the device with or without tasklet_kill() first."""
    def scenario(m: Machine) -> None:
        def driver() -> None:
            dev = kmalloc(64, GFP_KERNEL)
            write_u32(dev, 1)  # dev->status
            tl = tasklet_struct()
            box = {"loops": 200}

            def jit_tasklet_fn(d: int) -> None:
                read_u32(d)  # dev->status
                box["loops"] -= 1
                if box["loops"] > 0:
                    tasklet_schedule(tl)

            tasklet_init(tl, jit_tasklet_fn, dev)
            tasklet_schedule(tl)
            if kill:
                tasklet_kill(tl)
            kfree(dev)
            msleep(5)
        m.run(driver)
    return scenario


@pytest.mark.parametrize("policy,seed", RUNS)
def test_kfree_of_a_tasklets_data_without_tasklet_kill_is_a_use_after_free(policy: str, seed: int) -> None:
    m = run_bug(_tasklet_then_kfree(False), policy, seed, kasan=True)
    assert m.reports_of("kasan_slab_use_after_free"), [r.kind for r in m.reports]


@pytest.mark.parametrize("policy", POLICIES)
def test_tasklet_kill_before_kfree_is_clean(policy: str) -> None:
    explore(_tasklet_then_kfree(True), policies=policy, seeds=SEEDS, cpus=2, kasan=True)


# -- bugs and twins: a lock shared with a timer function ------------------------------------------
def _lock_shared_with_timer(bh: bool) -> Any:
    def scenario(m: Machine) -> None:
        lock = spin_lock_init("dev_lock")
        box = {"n": 0}

        def driver() -> None:
            wq = init_waitqueue_head("fired")

            def timer_fn(data: Any) -> None:
                spin_lock(lock)  # softirq context: IN-SOFTIRQ-W
                box["n"] += 1
                spin_unlock(lock)
                wake_up(wq)

            tm = timer_list()
            setup_timer(tm, timer_fn, 0)
            mod_timer(tm, jiffies() + 1)
            wait_event(wq, lambda: box["n"] > 0)
            for _ in range(3):
                if bh:
                    spin_lock_bh(lock)
                    box["n"] += 1
                    spin_unlock_bh(lock)
                else:
                    spin_lock(lock)  # the bug: softirqs stay enabled (SOFTIRQ-ON-W)
                    box["n"] += 1
                    spin_unlock(lock)
            del_timer_sync(tm)
        m.run(driver)
    return scenario


@pytest.mark.parametrize("policy,seed", RUNS)
def test_spin_lock_of_a_lock_a_timer_takes_is_inconsistent_lock_state(policy: str, seed: int) -> None:
    m = run_bug(_lock_shared_with_timer(False), policy, seed, lockdep=True)
    [rep] = m.reports_of("lockdep_inconsistent")
    assert "inconsistent {IN-SOFTIRQ-W} -> {SOFTIRQ-ON-W} usage." in rep.text.splitlines()


@pytest.mark.parametrize("policy", POLICIES)
def test_spin_lock_bh_of_a_lock_a_timer_takes_is_clean(policy: str) -> None:
    explore(_lock_shared_with_timer(True), policies=policy, seeds=SEEDS, cpus=2, lockdep=True)


# -- tasklets: semantics ---------------------------------------------------------------------
@pytest.mark.parametrize("policy", POLICIES)
def test_tasklet_runs_once_per_scheduling_on_its_cpu_hi_first_never_on_two_cpus(policy: str) -> None:
    def scenario(m: Machine) -> None:
        box = {"running": 0, "overlap": False, "shared": 0}

        def driver() -> None:
            log: list[tuple[str, int]] = []
            lo, hi = tasklet_struct(), tasklet_struct()
            tasklet_init(lo, lambda name: log.append((name, raw_smp_processor_id())), "lo")
            tasklet_setup(hi, lambda t: log.append(("hi", raw_smp_processor_id())))
            local_bh_disable()  # no migration, no softirq until local_bh_enable()
            cpu = raw_smp_processor_id()
            tasklet_schedule(lo)
            tasklet_schedule(lo)  # scheduled already: a no-op
            tasklet_hi_schedule(hi)
            assert log == []
            local_bh_enable()  # both run here, on this CPU, HI_SOFTIRQ first
            assert log == [("hi", cpu), ("lo", cpu)], log
            tasklet_kill(lo)
            tasklet_kill(hi)
            assert log == [("hi", cpu), ("lo", cpu)], log

        def shared_fn(data: Any) -> None:
            box["running"] += 1
            if box["running"] > 1:
                box["overlap"] = True
            assert in_softirq()
            cpu_relax()
            box["shared"] += 1
            box["running"] -= 1

        shared = tasklet_struct(shared_fn, 0)

        def scheduler() -> None:  # the same tasklet scheduled from both CPUs
            for _ in range(4):
                tasklet_schedule(shared)
                msleep(1)
            tasklet_kill(shared)

        m.run(driver, scheduler, scheduler)
        assert not box["overlap"] and box["shared"] >= 1

    explore(scenario, policies=policy, seeds=SEEDS, cpus=2)


def test_a_disabled_tasklet_waits_for_tasklet_enable() -> None:
    ran: list[int] = []

    def task() -> None:
        tl = DECLARE_TASKLET_DISABLED("dis", lambda d: ran.append(d), 3)
        tasklet_schedule(tl)
        msleep(5)
        assert ran == []
        tasklet_enable(tl)
        msleep(5)
        assert ran == [3]
        tasklet_disable(tl)
        tasklet_schedule(tl)
        msleep(2)
        assert ran == [3]
        tasklet_enable(tl)
        tasklet_kill(tl)
        assert ran == [3, 3]
        with pytest.raises(KmemUsageError, match="tasklet_enable"):
            tasklet_enable(tl)

    for policy in POLICIES:
        ran.clear()
        m = Machine(cpus=2, policy=policy, seed=0)
        m.run(task)
        assert not m.reports
    assert (HI_SOFTIRQ, TIMER_SOFTIRQ, TASKLET_SOFTIRQ) == (0, 1, 6)


def test_a_tasklet_scheduled_from_a_hardirq_handler_runs_at_irq_exit() -> None:
    seen: list[tuple[bool, bool]] = []

    def task() -> None:
        from percpu_kmem.linux import in_irq
        tl = tasklet_struct()
        tasklet_init(tl, lambda d: seen.append((in_softirq(), in_irq())), 0)

        def handler(irq: int, dev: Any) -> None:
            tasklet_schedule(tl)
            assert seen == []

        request_irq(6, handler, 0, "dev", None)
        raise_irq(6)
        assert seen == [(True, False)]
        free_irq(6, None)

    m = Machine(cpus=1, seed=0)
    m.run(task)
    assert not m.reports


# -- work queues: semantics -------------------------------------------------------------------
@pytest.mark.parametrize("policy", POLICIES)
def test_work_queue_flush_cancel_delayed_and_destroy(policy: str) -> None:
    def scenario(m: Machine) -> None:
        def driver() -> None:
            log: list[str] = []
            w = work_struct()
            INIT_WORK(w, lambda work: log.append("w"))
            wq = create_workqueue("mydrv")
            assert queue_work(wq, w) == 1
            assert queue_work(wq, w) in (0, 1)  # 0 while still pending
            flush_workqueue(wq)
            assert log and not work_pending(w)
            n = len(log)
            dw = delayed_work()
            INIT_DELAYED_WORK(dw, lambda work: log.append("d"))
            t0 = jiffies()
            assert queue_delayed_work(wq, dw, 20) == 1
            assert cancel_delayed_work(dw) == 1
            assert queue_delayed_work(wq, dw, 20) == 1
            while "d" not in log:
                msleep(5)
            assert jiffies() - t0 >= 20
            assert schedule_delayed_work(dw, 5) == 1
            assert cancel_delayed_work_sync(dw) == 1
            st = create_singlethread_workqueue("single")
            blocker = work_struct()
            INIT_WORK(blocker, lambda work: msleep(3))
            later = work_struct()
            INIT_WORK(later, lambda work: log.append("later"))
            queue_work(st, blocker)
            queue_work(st, later)
            assert cancel_work_sync(later) in (0, 1)
            assert cancel_work_sync(blocker) in (0, 1)
            destroy_workqueue(st)
            destroy_workqueue(wq)
            with pytest.raises(KmemUsageError, match="destroyed"):
                queue_work(wq, w)
            assert log.count("d") == 1 and n >= 1
        m.run(driver)
    explore(scenario, policies=policy, seeds=SEEDS, cpus=2)


def test_work_runs_in_process_context_on_the_queuing_cpus_thread() -> None:
    seen: list[tuple[str, bool, int]] = []

    def driver() -> None:
        kthread_bind(current(), 1)
        msleep(1)
        w = work_struct()
        INIT_WORK(w, lambda work: seen.append((current().comm, in_atomic(), raw_smp_processor_id())))
        schedule_work(w)
        flush_scheduled_work()

    m = Machine(cpus=2, policy="free", seed=0)
    m.run(driver)
    assert seen == [("events/1", False, 1)]


def test_deferred_work_starts_no_thread_until_used_and_kthread_run_still_works() -> None:
    m = Machine(cpus=2, seed=0)
    m.run(lambda: kthread_run(lambda: None))
    assert not any(t.comm.startswith(("ksoftirqd", "events")) for t in m.engine.tasks)  # type: ignore[union-attr]


@pytest.mark.parametrize("policy", ("random", "pct", "virtual"))
@pytest.mark.parametrize("seed", range(6))
def test_a_bound_task_never_runs_on_another_cpu(policy: str, seed: int) -> None:
    """A task bound to a busy CPU waits for it (the deterministic policies dispatched it
    on the other, idle CPU)."""
    seen: set[int] = set()

    def bound() -> None:
        for _ in range(50):
            seen.add(raw_smp_processor_id())
            msleep(1)

    def starter() -> None:
        t = kthread_run(bound)
        kthread_bind(t, 0)                 # before it first runs: no scheduling point between
        for _ in range(200):
            cpu_relax()

    m = Machine(cpus=2, policy=policy, seed=seed)
    m.run(starter)
    assert seen == {0}


@pytest.mark.parametrize("policy", ("random", "virtual"))
def test_a_timer_rearming_for_ever_does_not_hide_a_deadlock(policy: str) -> None:
    def task() -> None:
        tm = timer_list()
        setup_timer(tm, lambda d: mod_timer(tm, jiffies() + 100), 0)
        mod_timer(tm, jiffies() + 100)
        never = init_waitqueue_head("never")
        wait_event(never, lambda: False)

    m = Machine(cpus=2, policy=policy, seed=0, timeout=20)
    m.run(task)
    assert [r.kind for r in m.reports] == ["hung_task", "deadlock"]


def test_a_timer_function_leaking_a_preempt_count_is_warned_and_repaired() -> None:
    from percpu_kmem.linux import preempt_disable

    def task() -> None:
        tm = timer_list()
        setup_timer(tm, lambda d: preempt_disable(), 0)
        mod_timer(tm, jiffies() + 1)
        msleep(5)

    m = Machine(cpus=1, seed=0)
    m.run(task)
    [rep] = m.reports
    assert "call_timer_fn" in rep.text and "preempt leak: 00000100 -> 00000101" in rep.text


def _kcsan_timer() -> None:
    dev = kmalloc(64, GFP_KERNEL)
    write_u32(dev, 5)
    tm = timer_list()
    setup_timer(tm, lambda d: write_u32(d, read_u32(d) + 1), dev)
    mod_timer(tm, jiffies() + 1)
    msleep(3)
    del_timer_sync(tm)
    write_u32(dev, 0)
    kfree(dev)


def _kcsan_tasklet() -> None:
    dev = kmalloc(64, GFP_KERNEL)
    write_u32(dev, 5)
    tl = tasklet_struct(lambda d: write_u32(d, read_u32(d) + 1), dev)
    tasklet_schedule(tl)
    tasklet_kill(tl)
    write_u32(dev, 0)
    kfree(dev)


def _kcsan_work() -> None:
    dev = kmalloc(64, GFP_KERNEL)
    write_u32(dev, 5)
    w = work_struct(lambda work: write_u32(dev, read_u32(dev) + 1))
    schedule_work(w)
    flush_scheduled_work()
    write_u32(dev, 1)
    schedule_work(w)
    cancel_work_sync(w)
    write_u32(dev, 0)
    kfree(dev)


@pytest.mark.parametrize("policy", POLICIES)
def test_kcsan_sees_arming_before_the_function_and_the_function_before_the_sync(policy: str) -> None:
    """No data race is reported where the deferred-work API orders the accesses: arming or
    queueing happens before the function, the function before del_timer_sync(),
    tasklet_kill(), flush_scheduled_work() and cancel_work_sync() return."""
    for case in (_kcsan_timer, _kcsan_tasklet, _kcsan_work):
        explore(lambda m, case=case: m.run(case), policies=policy, seeds=SEEDS, cpus=2, kcsan=True)


def test_jiffies_helpers_flush_work_and_queue_work_on() -> None:
    from percpu_kmem.linux import (
        HZ,
        flush_work,
        jiffies_to_msecs,
        msecs_to_jiffies,
        queue_work_on,
        schedule_work_on,
        time_after,
        time_after_eq,
        time_before,
        time_before_eq,
        timer_delete,
        timer_delete_sync,
    )
    seen: list[str] = []

    def task() -> None:
        big = (1 << 64) - 2
        assert time_after(3, big) and time_before(big, 3)  # across the counter's wrap
        assert time_after_eq(5, 5) and time_before_eq(5, 5) and not time_after(5, 6)
        assert msecs_to_jiffies(10) == 10 * HZ // 1000 and jiffies_to_msecs(HZ) == 1000
        w = work_struct(lambda work: seen.append(current().comm))
        assert flush_work(w) is False
        wq = create_workqueue("on")
        assert queue_work_on(1, wq, w) == 1
        assert flush_work(w) is True or seen
        assert schedule_work_on(0, w) == 1
        flush_scheduled_work()
        destroy_workqueue(wq)
        tm = timer_list(lambda d: None)
        mod_timer(tm, jiffies() + 50)
        assert timer_delete(tm) == 1 and timer_delete_sync(tm) == 0

    m = Machine(cpus=2, policy="free", seed=0)
    m.run(task)
    assert seen == ["on/1", "events/0"] and not m.reports


@pytest.mark.parametrize("policy", POLICIES)
def test_a_timer_interrupts_the_busy_task_on_its_cpu(policy: str) -> None:
    """LDD3's jitbusy with a timer armed: the CPU never idles, and the timer still runs on
    it, when its clock passes ``expires``, on top of the busy task (its timer interrupt)."""
    def scenario(m: Machine) -> None:
        box: dict[str, Any] = {}

        def busy() -> None:
            tm = timer_list()
            setup_timer(tm, lambda d: box.update(cpu=raw_smp_processor_id(), pid=current().pid,
                                                 softirq=in_softirq()), 0)
            preempt_disable()  # stay on this CPU: the timer must come here
            cpu = raw_smp_processor_id()
            mod_timer(tm, jiffies() + 3)
            j1 = jiffies() + 10
            while time_before(jiffies(), j1) and not box:
                udelay(50)  # busy: the CPU never idles
            preempt_enable()
            assert box == {"cpu": cpu, "pid": current().pid, "softirq": True}, box

        m.run(busy)
    explore(scenario, policies=policy, seeds=SEEDS, cpus=2)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_timer_taking_a_spinlock_its_cpus_task_holds_is_spinlock_recursion(policy: str) -> None:
    """Without lockdep too: the timer interrupts the holder on its own CPU."""
    for seed in SEEDS:
        m = Machine(cpus=2, policy=policy, seed=seed)
        lock = spin_lock_init("dev_lock")

        def holder() -> None:
            tm = timer_list()
            setup_timer(tm, lambda d: (spin_lock(lock), spin_unlock(lock)), 0)
            spin_lock(lock)  # the bug: spin_lock_bh() keeps the timer off this CPU
            mod_timer(tm, jiffies() + 1)
            j1 = jiffies() + 5
            while time_before(jiffies(), j1):
                udelay(50)
            spin_unlock(lock)
            del_timer_sync(tm)

        m.run(holder)
        kinds = [r.kind for r in m.reports]
        assert "spinlock_recursion" in kinds or "spin_bug" in kinds or any(
            r.text.startswith("BUG: spinlock recursion") for r in m.reports), kinds


@pytest.mark.parametrize("policy", POLICIES)
def test_a_tasklet_scheduled_by_a_task_that_keeps_its_cpu_runs_there_at_the_next_tick(policy: str) -> None:
    def scenario(m: Machine) -> None:
        box: dict[str, Any] = {}

        def busy() -> None:
            tl = tasklet_struct(lambda d: box.update(cpu=raw_smp_processor_id(), at=jiffies()), 0)
            preempt_disable()  # ksoftirqd cannot have this CPU
            cpu, j0 = raw_smp_processor_id(), jiffies()
            tasklet_schedule(tl)
            while time_before(jiffies(), j0 + 10) and not box:
                udelay(50)
            preempt_enable()
            assert box and box["cpu"] == cpu and box["at"] - j0 <= 2, box
            tasklet_kill(tl)

        m.run(busy)
    explore(scenario, policies=policy, seeds=SEEDS, cpus=2)
