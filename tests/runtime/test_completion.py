"""Completions (runtime/completion.py): the done counter, complete_all, the timeouts, the
contexts, and LDD3's classic completion bugs with their fixed twins under every policy."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine, NotInTaskError
from percpu_kmem.linux import (
    DECLARE_COMPLETION,
    DECLARE_COMPLETION_ONSTACK,
    INIT_COMPLETION,
    complete,
    complete_all,
    completion,
    completion_done,
    init_completion,
    jiffies,
    kthread_run,
    mem_read,
    mem_write,
    msleep,
    raise_irq,
    reinit_completion,
    request_irq,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    try_wait_for_completion,
    wait_for_completion,
    wait_for_completion_interruptible,
    wait_for_completion_interruptible_timeout,
    wait_for_completion_killable,
    wait_for_completion_timeout,
)
from percpu_kmem.runtime.completion import UINT_MAX

from .synccases import RACE, assert_reported, assert_silent, free_buffer, shared_buffer

pytestmark = pytest.mark.timeout(120)


# -- semantics ----------------------------------------------------------------------------------
def test_done_counts_completes_and_each_wait_takes_one() -> None:
    m = Machine(cpus=1, seed=1)

    def task() -> list[object]:
        x = init_completion("x")
        out: list[object] = [completion_done(x), try_wait_for_completion(x)]
        complete(x)
        complete(x)
        out += [x.done, completion_done(x)]
        wait_for_completion(x)  # returns at once: done was 2
        out.append(try_wait_for_completion(x))
        out += [x.done, try_wait_for_completion(x)]
        return out

    assert m.run(task)[0] == [False, False, 2, True, True, 0, False]
    assert m.reports == []


def test_complete_all_releases_every_waiter_until_reinit() -> None:
    m = Machine(cpus=2, seed=3)
    x = DECLARE_COMPLETION("go")
    woke: list[str] = []

    def waiter(name: str) -> None:
        wait_for_completion(x)
        woke.append(name)

    def starter() -> list[int]:
        for name in ("w1", "w2", "w3"):
            kthread_run(waiter, name, name)
        msleep(1)
        complete_all(x)
        wait_for_completion(x)  # UINT_MAX is never consumed
        msleep(5)  # the woken waiters take their turn before the reinit (else they sleep again)
        seen = [x.done]
        reinit_completion(x)
        seen.append(x.done)
        INIT_COMPLETION(x)  # 2.6's name
        return seen

    assert m.run(starter)[0] == [UINT_MAX, 0]
    assert sorted(woke) == ["w1", "w2", "w3"]
    assert m.reports == []


def test_init_completion_reinitialises_an_existing_one() -> None:
    x = completion("again")
    x.done = 3
    assert init_completion(x) is x and x.done == 0
    assert init_completion().name.startswith("completion#")
    assert DECLARE_COMPLETION_ONSTACK("on_stack").describe() == "completion on_stack (done 0)"


def test_wait_for_completion_timeout_returns_zero_or_the_jiffies_left() -> None:
    m = Machine(cpus=2, seed=2)
    x = init_completion("late")
    y = init_completion("early")

    def waiter() -> tuple[int, int, int, int]:
        t0 = jiffies()
        late = wait_for_completion_timeout(x, 10)  # nobody completes x in time
        waited = jiffies() - t0
        early = wait_for_completion_timeout(y, 100)
        return late, waited, early, wait_for_completion_interruptible_timeout(x, 0)

    def completer() -> None:
        msleep(30)
        complete(y)

    late, waited, early, zero = m.run(waiter, completer)[0]
    assert late == 0 and waited >= 10
    assert 1 <= early <= 100 - 19  # completed about 20 jiffies into the wait
    assert zero == 0
    assert m.reports == []


def test_interruptible_and_killable_waits_return_zero() -> None:
    m = Machine(cpus=2, seed=4)
    x = init_completion("sig")

    def waiter() -> tuple[int, int]:
        return wait_for_completion_interruptible(x), wait_for_completion_killable(x)

    def completer() -> None:
        complete(x)
        msleep(2)
        complete(x)

    assert m.run(waiter, completer)[0] == (0, 0)


@pytest.mark.parametrize("policy", ["random", "pct", "free", "virtual"])
def test_complete_from_an_interrupt_handler_wakes_the_waiter(policy: str) -> None:
    for seed in range(3):
        m = Machine(cpus=2, policy=policy, seed=seed, timeout=60)
        x = init_completion("irq_done")

        def driver() -> None:
            request_irq(9, lambda irq, dev: complete(x), 0, "dev")
            raise_irq(9, 1)
            wait_for_completion(x)

        m.run(driver)
        assert m.reports == [] and x.done == 0


def test_bad_arguments_are_refused_before_any_side_effect() -> None:
    m = Machine(cpus=1, seed=1)
    x = init_completion("arg")

    def task() -> None:
        with pytest.raises(KmemUsageError, match=r"complete: x\(=None\) must be a struct completion"):
            complete(None)  # type: ignore[arg-type]
        with pytest.raises(KmemUsageError, match=r"wait_for_completion_timeout: timeout\(=-1\)"):
            wait_for_completion_timeout(x, -1)
        with pytest.raises(KmemUsageError, match=r"wait_for_completion_timeout: timeout\(=None\)"):
            wait_for_completion_timeout(x, None)  # type: ignore[arg-type]
        with pytest.raises(KmemUsageError, match="init_completion: name"):
            init_completion(5)
        assert x.waiters == [] and x.done == 0

    m.run(task)
    with pytest.raises(NotInTaskError):
        complete(x)
    m2 = Machine(cpus=1, seed=1)
    with pytest.raises(KmemUsageError, match="belongs to another machine"):
        m2.run(lambda: complete(x))


# -- the classic bugs and their fixed twins ----------------------------------------------------
#: what may follow a sleep with a spinlock held: the sleep itself, and an unlock on the CPU the
#: task migrated to while it slept
AFTERMATH = frozenset({"scheduling_while_atomic", "spinlock_wrong_CPU"})

def _wait_under(lock_held: bool) -> object:
    def scenario(m: Machine) -> None:
        lock = spin_lock_init("dev_lock")
        x = init_completion("cmd_done")

        def device() -> None:
            msleep(1)
            complete(x)

        def driver() -> None:
            kthread_run(device)
            spin_lock(lock)
            if lock_held:
                wait_for_completion(x)  # BUG: sleeps with the spinlock held
                spin_unlock(lock)
            else:
                spin_unlock(lock)
                wait_for_completion(x)

        m.run(driver)
    return scenario


def test_wait_for_completion_under_a_spinlock_is_a_sleep_in_atomic() -> None:
    assert_reported(_wait_under(True), "sleep_in_atomic",
                    lambda ln: ln.startswith("BUG: sleeping function called from invalid context at ")
                    and "test_completion.py:" in ln,
                    allowed=AFTERMATH)


def test_wait_for_completion_after_the_unlock_is_silent() -> None:
    assert_silent(_wait_under(False))


def _reinit(after_complete: bool) -> object:
    """A driver starts a command whose completion a device thread signals at once; the
    buggy driver re-initialises the completion after starting the command, losing it."""
    def scenario(m: Machine) -> None:
        x = init_completion("io_done")
        started = init_completion("started")

        def device() -> None:
            complete(x)
            complete(started)

        def driver() -> None:
            if not after_complete:
                reinit_completion(x)
            kthread_run(device)
            wait_for_completion(started)  # the driver did other work meanwhile
            if after_complete:
                reinit_completion(x)  # BUG: forgets the complete() that came first
            wait_for_completion(x)

        m.run(driver)
    return scenario


def test_a_complete_lost_to_reinit_completion_is_a_hung_waiter() -> None:
    ms = assert_reported(_reinit(True), "deadlock",
                         lambda ln: ln == "INFO: task hung: every task is blocked and nothing can wake one "
                                         "(deadlock)")
    for m in ms:
        assert "driver/" in m.reports_of("deadlock")[0].text
        assert "sleeps on completion io_done (done 0)" in m.reports_of("deadlock")[0].text


def test_reinit_completion_before_starting_the_command_is_silent() -> None:
    assert_silent(_reinit(False))


def test_khungtaskd_reports_a_wait_for_completion_of_over_120_seconds() -> None:
    m = Machine(cpus=2, seed=5)
    x = init_completion("slow")

    def waiter() -> None:
        wait_for_completion(x)

    def slow() -> None:
        msleep(200_000)
        complete(x)

    m.run(waiter, slow)
    (rep,) = m.reports
    assert rep.kind == "hung_task"
    assert rep.lines[0] == f"INFO: task waiter:{rep.pid} blocked for more than 120 seconds."
    assert "waits on completion slow (done 0)" in rep.text


def _handoff(waits: bool) -> object:
    """complete() -> wait_for_completion() orders the producer's writes before the
    consumer's reads (KCSAN); a consumer that only sleeps a while races."""
    def scenario(m: Machine) -> None:
        p = shared_buffer(m)
        x = init_completion("data_ready")

        def producer() -> None:
            mem_write(p, b"ready!")
            complete(x)

        def consumer() -> None:
            if waits:
                wait_for_completion(x)
            else:
                msleep(1)  # BUG: hopes the producer is done by now
            mem_read(p, 6)

        m.run(producer, consumer)
        free_buffer(m, p)
    return scenario


def test_complete_then_wait_is_a_happens_before_edge_for_kcsan() -> None:
    assert_silent(_handoff(True), kcsan=True)


def test_a_consumer_that_does_not_wait_races_with_the_producer() -> None:
    assert_reported(_handoff(False), RACE, lambda ln: ln.startswith("=" * 10), kcsan=True)
