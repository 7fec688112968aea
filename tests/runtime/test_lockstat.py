"""/proc/lock_stat in the kernel's layout (kernel/locking/lockdep_proc.c), for every lock class."""

from __future__ import annotations

import sys

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import GFP_KERNEL, __free_pages, alloc_pages, charge, spin_lock, spin_lock_init, spin_unlock

pytestmark = pytest.mark.timeout(60)

HEADER = ("                              class name    con-bounces    contentions   waittime-min   waittime-max "
          "waittime-total   waittime-avg    acq-bounces   acquisitions   holdtime-min   holdtime-max "
          "holdtime-total   holdtime-avg")


def _run() -> Machine:
    m = Machine(cpus=4, policy="virtual", seed=1)
    lk = spin_lock_init("driver_lock")

    def worker() -> None:
        for _ in range(20):
            spin_lock(lk)
            charge(500)
            spin_unlock(lk)
            __free_pages(alloc_pages(GFP_KERNEL, 1), 1)

    m.run(worker, worker, worker, worker)
    return m


def test_the_header_and_rules_are_the_kernels() -> None:
    lines = _run().proc("lock_stat").splitlines()
    assert lines[0] == "lock_stat version 0.4"
    assert lines[1] == "-" * 221 and lines[3] == "-" * 221 and lines[4] == ""
    assert lines[2] == HEADER


def test_every_lock_class_has_a_row_sorted_by_contentions_with_its_contention_points() -> None:
    m = _run()
    text = m.proc("lock_stat")
    rows = [ln for ln in text.splitlines() if ln[:41].rstrip().endswith(":") and len(ln) == 220]  # "%40s:" + 12 columns
    names = [r[:40].strip() for r in rows]
    contended = [int(r.split()[2]) for r in rows]
    assert contended == sorted(contended, reverse=True)  # the most contended first
    assert "driver_lock" in names
    assert any(n.startswith("zone->lock") for n in names)  # the model's own locks too
    first = rows[names.index("driver_lock")].split()
    contentions, acquisitions = int(first[2]), int(first[8])
    assert acquisitions == 80 and 0 < contentions <= 80
    assert float(first[10]) == pytest.approx(0.5, abs=0.01)  # holdtime-max: 500 ns = 0.50 us
    assert "                             -----------" in text  # the rule under the class name
    assert "tests/runtime/test_lockstat.py" in text and " worker" in text  # where it was contended
    assert "." * 221 in text


def test_an_unused_machine_lists_no_class() -> None:
    m = Machine(cpus=1, boot=False)
    m.run(lambda: None)
    assert m.proc("lock_stat").splitlines()[5:] == []


@pytest.mark.parametrize("lockdep", [False, True])
def test_locks_created_without_a_name_at_one_site_are_one_class_named_by_the_site(lockdep: bool) -> None:
    """A class is the initialisation site of an unnamed lock, with lockdep on (its class)
    or off: three locks of one loop are one row, named file:line as lockdep prints them."""
    m = Machine(cpus=1, boot=False, lockdep=lockdep)
    locks = [spin_lock_init() for _ in range(3)]
    line = sys._getframe().f_lineno - 1  # the line of the loop above

    def body() -> None:
        for lk in locks:
            spin_lock(lk)
            spin_unlock(lk)

    m.run(body)
    rows = [ln for ln in m.proc("lock_stat").splitlines()[5:] if ln]
    assert len(rows) == 1
    columns = rows[0].split()
    assert rows[0][:41].strip() == f"tests/runtime/test_lockstat.py:{line}:"
    assert int(columns[8]) == 3  # acquisitions of the three instances
