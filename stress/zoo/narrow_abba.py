"""An ABBA deadlock with a narrow window, without lockdep.

Two paths of a driver nest the same two spinlocks in opposite orders: the
statistics path takes the queue lock then the stats lock, the reconfigure
path the stats lock then the queue lock. Each does most of its work outside
the locks, so the two only deadlock when one is preempted in the one step
between its two acquisitions while the other takes its first lock: a narrow
window. Without lockdep nothing reports the order; the run that hits the
window deadlocks, and the model reports it (every task blocked: "INFO: task
hung"). The fix takes the locks in one order everywhere. Found by the
deadlock detector.
"""

from percpu_kmem.linux import spin_lock, spin_lock_init, spin_unlock, udelay
from percpu_kmem.scenarios import stress

DETECTOR = "deadlock"
REPORTS = ("deadlock", "livelock")

ROUNDS = 2
STATS_WORK = 10                                 # register accesses outside the locks, per round
CONFIG_WORK = 23


def _dev(m, one_order):
    queue_lock = spin_lock_init("queue_lock")
    stats_lock = spin_lock_init("stats_lock")
    dev = {"queued": 0, "stats": 0}

    def work(steps):                             # talk to the hardware: 1 us per register access
        for _ in range(steps):
            udelay(1)

    def update_stats():
        for _ in range(ROUNDS):
            work(STATS_WORK)                     # read the frame counters
            spin_lock(queue_lock)
            spin_lock(stats_lock)
            dev["stats"] = dev["queued"]
            spin_unlock(stats_lock)
            spin_unlock(queue_lock)

    def reconfigure():
        for _ in range(ROUNDS):
            work(CONFIG_WORK)                    # program the new configuration
            first, second = (queue_lock, stats_lock) if one_order else (stats_lock, queue_lock)
            spin_lock(first)
            spin_lock(second)
            dev["queued"] += 1
            spin_unlock(second)
            spin_unlock(first)

    m.run(update_stats, reconfigure)


@stress(cpus=2)
def buggy(m):
    """reconfigure() takes stats_lock before queue_lock."""
    _dev(m, False)


@stress(cpus=2)
def fixed(m):
    """reconfigure() takes queue_lock before stats_lock, as update_stats() does."""
    _dev(m, True)
