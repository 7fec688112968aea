"""A lost wake-up: the condition tested before the task is on the wait queue.

The reader checks whether data has arrived and only then puts itself on the
wait queue and sleeps. If the writer stores the data and calls wake_up()
between the test and prepare_to_wait(), the wake-up finds nobody to wake and
the reader sleeps for ever, a hung task (khungtaskd: "INFO: task ... blocked
for more than 120 seconds"; here every task is blocked and the model reports
the deadlock at once). The fix is the kernel's idiom: prepare_to_wait()
first, then test the condition, then schedule(). Found by the deadlock
(hung task) detector.
"""

from percpu_kmem.linux import (
    GFP_KERNEL,
    READ_ONCE,
    TASK_UNINTERRUPTIBLE,
    WRITE_ONCE,
    finish_wait,
    init_waitqueue_head,
    kfree,
    kmalloc,
    prepare_to_wait,
    schedule,
    wake_up,
)
from percpu_kmem.scenarios import stress

DETECTOR = "hung_task"
REPORTS = ("deadlock", "hung_task")


def _pipe(m, queue_first):
    wq = init_waitqueue_head()
    box = {}

    def setup():
        box["ready"] = kmalloc(4, GFP_KERNEL)
        WRITE_ONCE(box["ready"], 0)

    def reader():
        ready = box["ready"]
        if queue_first:
            while True:
                prepare_to_wait(wq, TASK_UNINTERRUPTIBLE)
                if READ_ONCE(ready):
                    break
                schedule()
            finish_wait(wq)
        else:
            while not READ_ONCE(ready):
                prepare_to_wait(wq, TASK_UNINTERRUPTIBLE)   # too late: a wake_up may have passed
                schedule()
                finish_wait(wq)

    def writer():
        WRITE_ONCE(box["ready"], 1)
        wake_up(wq)

    m.run(setup)
    m.run(reader, writer)
    m.run(lambda: kfree(box["ready"]))


@stress(cpus=2)
def buggy(m):
    """The condition is tested before prepare_to_wait()."""
    _pipe(m, False)


@stress(cpus=2)
def fixed(m):
    """prepare_to_wait() before testing the condition."""
    _pipe(m, True)
