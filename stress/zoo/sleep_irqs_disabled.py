"""Sleeping with interrupts disabled.

A reset routine disables local interrupts so the device's handler cannot
run while the registers are rewritten, and then waits for the hardware with
msleep(). Sleeping with interrupts off is a bug: might_sleep() reports "BUG:
sleeping function called from invalid context" (irqs_disabled(): 1) and the
scheduler "bad: schedule() with irqs disabled!". The fix busy-waits with
udelay() for the short settle time (or sleeps after re-enabling
interrupts). Found by might_sleep.
"""

from percpu_kmem.linux import local_irq_restore, local_irq_save, msleep, udelay
from percpu_kmem.scenarios import stress

DETECTOR = "might_sleep"
REPORTS = ("sleep_in_atomic", "schedule_irqs_disabled")


def _reset(m, busy_wait):
    regs = {"ctrl": 0}

    def chip_reset():
        flags = local_irq_save()
        regs["ctrl"] = 1                         # assert reset
        if busy_wait:
            udelay(50)
        else:
            msleep(1)                            # wait for the chip: sleeps with irqs off
        regs["ctrl"] = 0
        local_irq_restore(flags)

    m.run(chip_reset)


@stress(cpus=2)
def buggy(m):
    """msleep() between local_irq_save() and local_irq_restore()."""
    _reset(m, False)


@stress(cpus=2)
def fixed(m):
    """udelay() for the settle time."""
    _reset(m, True)
