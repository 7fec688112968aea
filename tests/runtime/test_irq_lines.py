"""request_irq/free_irq as the kernel answers them (kernel/irq/manage.c, kernel/irq/handle.c).

A busy line is -EBUSY unless both requests pass SA_SHIRQ (then the handlers share it),
freeing a free line is a WARN, free_irq() waits for the handler
running on another CPU (synchronize_irq) under every policy, and a handler that returns
with interrupts enabled is warned once. The misuse of the Python API stays a
KmemUsageError.
"""

from __future__ import annotations

from typing import Any

import pytest

from percpu_kmem import GFP_KERNEL, KmemUsageError, Machine
from percpu_kmem.linux import (
    READ_ONCE,
    SA_SHIRQ,
    WRITE_ONCE,
    cpu_relax,
    free_irq,
    get_cpu,
    irqs_disabled,
    kfree,
    kzalloc,
    put_cpu,
    raise_irq,
    read_u32,
    request_irq,
    spin_lock_init,
    spin_lock_irq,
    spin_lock_irqsave,
    spin_unlock_irq,
    spin_unlock_irqrestore,
    write_u32,
)

pytestmark = pytest.mark.timeout(60)

POLICIES = ("random", "pct", "virtual", "free")
CARD_IRQ = 11


def remove_while_the_handler_runs(m: Machine, bug: bool) -> None:
    """remove() raises the card's interrupt on the other CPU and lets its handler go on
    once it has started; then it frees the line and the device. free_irq() first is
    correct (it waits for the handler); kfree() first (``bug``) lets the handler write
    freed memory."""
    box: dict[str, int] = {}

    def handler(irq: int, dev: int) -> None:
        WRITE_ONCE(box["started"], 1)
        while not READ_ONCE(box["go"]):
            cpu_relax()
        for i in range(8):
            write_u32(dev + 4 * i, read_u32(dev + 4 * i) + 1)    # dev->stats[i]++

    def probe() -> None:
        box["dev"] = kzalloc(32, GFP_KERNEL)
        for flag in ("started", "go", "done"):
            box[flag] = kzalloc(4, GFP_KERNEL)
        assert request_irq(CARD_IRQ, handler, 0, "card", box["dev"]) == 0

    def remove() -> None:                     # preemption off: it stays on its CPU
        dev = box["dev"]
        raise_irq(CARD_IRQ, 1 - get_cpu())
        while not READ_ONCE(box["started"]):
            cpu_relax()
        if bug:
            kfree(dev)
        WRITE_ONCE(box["go"], 1)
        free_irq(CARD_IRQ, dev)
        if not bug:
            kfree(dev)
        WRITE_ONCE(box["done"], 1)
        put_cpu()

    def other() -> None:                      # the other CPU's task, interrupted by the card
        while not READ_ONCE(box["done"]):
            cpu_relax()

    m.run(probe)
    m.run(remove, other)
    m.run(lambda: [kfree(box[flag]) for flag in ("started", "go", "done")])


@pytest.mark.parametrize("policy", POLICIES)
def test_free_irq_waits_for_the_handler_on_another_cpu(policy: str) -> None:
    for seed in range(3):
        m = Machine(cpus=2, policy=policy, seed=seed, kasan=True, timeout=20)
        remove_while_the_handler_runs(m, bug=False)
        assert not m.reports, (policy, seed, m.reports[0].text)
        m.check()


@pytest.mark.parametrize("policy", POLICIES)
def test_kfree_before_free_irq_is_still_reported(policy: str) -> None:
    for seed in range(3):
        m = Machine(cpus=2, policy=policy, seed=seed, kasan=True, timeout=20)
        remove_while_the_handler_runs(m, bug=True)
        assert any("BUG: KASAN: slab-use-after-free in handler" in r.text for r in m.reports), (policy, seed)


def test_free_irq_from_its_own_handler_warns_and_does_not_hang() -> None:
    again: list[int] = []

    def handler(irq: int, dev: Any) -> None:
        free_irq(irq, dev)                    # the kernel would spin in synchronize_irq() here

    def driver() -> None:
        assert request_irq(5, handler, 0, "card", None) == 0
        raise_irq(5)
        again.append(request_irq(5, handler, 0, "card", None))   # the line was freed
        free_irq(5, None)

    for policy in ("random", "free"):
        m = Machine(cpus=2, policy=policy, seed=1, timeout=20)
        m.run(driver)
        texts = [r.text for r in m.reports]
        assert len(texts) == 1 and "Trying to free IRQ 5 from IRQ context!" in texts[0], texts
        assert m.reports[0].kind == "warning" and "__free_irq" in texts[0].splitlines()[0]
    assert again == [0, 0]


def test_free_irq_with_another_dev_id_warns_and_keeps_the_handler() -> None:
    ran: list[int] = []
    m = Machine(cpus=1, policy="random", seed=0)

    def driver() -> None:
        request_irq(5, lambda irq, dev: ran.append(dev), 0, "card", 0xC0001000)
        free_irq(5, 0xC0002000)               # not this device's dev_id
        raise_irq(5)
        free_irq(5, 0xC0001000)

    m.run(driver)
    assert ran == [0xC0001000]
    assert [r.kind for r in m.reports] == ["warning"]
    assert "Trying to free already-free IRQ 5" in m.reports[0].text


def test_a_busy_line_keeps_its_first_handler() -> None:
    ran: list[str] = []
    m = Machine(cpus=1, policy="random", seed=0)

    def driver() -> None:
        assert request_irq(5, lambda irq, dev: ran.append("card0"), 0, "card0") == 0
        assert request_irq(5, lambda irq, dev: ran.append("card1"), 0, "card1") == -16
        raise_irq(5)
        free_irq(5)

    m.run(driver)
    assert ran == ["card0"] and not m.reports


def test_misuse_of_the_python_api_stays_a_usage_error() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    with pytest.raises(KmemUsageError, match="no handler registered"):
        m.free_irq(5)
    with pytest.raises(KmemUsageError, match=r"free_irq: irq\(='5'\)"):
        m.free_irq("5")                       # type: ignore[arg-type]
    with pytest.raises(KmemUsageError, match="free_irq"):
        m.run(lambda: free_irq("5"))          # type: ignore[arg-type]
    with pytest.raises(KmemUsageError, match="request_irq"):
        m.run(lambda: request_irq(5, lambda irq, dev: None, "card"))   # type: ignore[arg-type]
    assert not m.reports


def test_a_handler_that_enables_interrupts_is_warned_once_per_handler() -> None:
    lock = spin_lock_init("irq_lines_lock")
    seen: list[bool] = []

    def card_interrupt(irq: int, dev: Any) -> None:
        spin_lock_irq(lock)
        spin_unlock_irq(lock)                 # turns interrupts on in hardirq context

    def disk_interrupt(irq: int, dev: Any) -> None:
        spin_lock_irq(lock)
        spin_unlock_irq(lock)

    def good_interrupt(irq: int, dev: Any) -> None:
        flags = spin_lock_irqsave(lock)
        spin_unlock_irqrestore(lock, flags)
        seen.append(irqs_disabled())

    def driver() -> None:
        for _ in range(3):
            raise_irq(5)
            raise_irq(6)
            raise_irq(7)
        seen.append(irqs_disabled())          # the interrupted task's state is its own again

    m = Machine(cpus=1, policy="random", seed=0)
    m.request_irq(5, card_interrupt, "card")
    m.request_irq(6, disk_interrupt, "disk")
    m.request_irq(7, good_interrupt, "good")
    m.run(driver)
    texts = [r.text.splitlines() for r in m.reports]
    assert [r.kind for r in m.reports] == ["warning", "warning"], texts
    assert texts[0][1] == "irq 5 handler test_a_handler_that_enables_interrupts_is_warned_once_per_handler." \
                          "<locals>.card_interrupt enabled interrupts", texts[0]
    assert "__handle_irq_event_percpu" in texts[0][0] and "irq 6 handler" in texts[1][1]
    assert m.reports[0].count == 1 and seen == [True, True, True, False]


def test_an_unhashable_handler_that_enables_interrupts_is_warned() -> None:
    class Card:                               # a callable that compares by value: no hash
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Card)

        def __call__(self, irq: int, dev: Any) -> None:
            spin_lock_irq(lock)
            spin_unlock_irq(lock)

    lock = spin_lock_init("irq_lines_card_lock")
    m = Machine(cpus=1, policy="random", seed=0)
    m.request_irq(5, Card(), "card")
    m.run(lambda: (raise_irq(5), raise_irq(5)))
    assert [r.kind for r in m.reports] == ["warning"] and "irq 5 handler" in m.reports[0].text


def test_a_shared_line_runs_every_handler_and_frees_them_one_by_one() -> None:
    ran: list[int] = []
    got: list[int] = []
    m = Machine(cpus=1, policy="random", seed=0)

    def handler(irq: int, dev: int) -> None:
        ran.append(dev)

    def driver() -> None:
        got.append(request_irq(5, handler, SA_SHIRQ, "uhci_hcd", 0xC0001000))
        got.append(request_irq(5, handler, SA_SHIRQ, "uhci_hcd", 0xC0002000))
        got.append(request_irq(5, handler, 0, "ide0", 0xC0003000))          # does not agree to share
        got.append(request_irq(5, handler, SA_SHIRQ, "ide0", None))         # shared needs a dev_id
        raise_irq(5)
        free_irq(5, 0xC0001000)
        raise_irq(5)
        free_irq(5, None)                     # no handler of the line has dev_id NULL
        free_irq(5, 0xC0002000)
        got.append(request_irq(5, handler, 0, "ide0", 0xC0003000))          # the line is free again
        free_irq(5, 0xC0003000)

    m.run(driver)
    assert got == [0, 0, -16, -22, 0]
    assert ran == [0xC0001000, 0xC0002000, 0xC0002000]
    assert [r.text.splitlines()[1] for r in m.reports] == ["Trying to free already-free IRQ 5"]


def test_a_line_taken_without_sa_shirq_is_busy_for_a_shared_request() -> None:
    m = Machine(cpus=1, policy="random", seed=0)
    got = m.run(lambda: (request_irq(5, lambda irq, dev: None, 0, "card", 1),
                         request_irq(5, lambda irq, dev: None, SA_SHIRQ, "card", 2)))
    assert got == [(0, -16)]
    with pytest.raises(KmemUsageError, match="already has a handler"):
        m.request_irq(5, lambda irq, dev: None, "card", 3, flags=SA_SHIRQ)
    with pytest.raises(KmemUsageError, match="needs a dev_id"):
        m.request_irq(6, lambda irq, dev: None, "card", flags=SA_SHIRQ)
    m.free_irq(5)                             # the Python API frees the line
    assert not m.irq.actions and not m.reports
