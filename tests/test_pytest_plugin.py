"""The pytest plugin: the kmem_machine fixture, the kmem marker, verdicts and replays, xdist."""

from __future__ import annotations

import importlib.util

import pytest

pytest_plugins = ["pytester"]

DRIVER = '''
import pytest
from percpu_kmem.linux import spin_lock_init, spin_lock, spin_unlock, might_sleep, kmalloc, kfree, GFP_KERNEL

def sleepy(m):
    lock = spin_lock_init("drv_lock")
    def worker():
        spin_lock(lock)
        might_sleep()
        spin_unlock(lock)
    m.run(worker, worker)

def test_plain(kmem_machine):
    assert kmem_machine.nr_cpus == 2 and kmem_machine.policy_name == "random"
    kmem_machine.run(lambda: kfree(kmalloc(64, GFP_KERNEL)))

@pytest.mark.kmem(seeds=3, cpus=(1, 4), policies="pct", memory="32M")
def test_grid(kmem_machine):
    assert kmem_machine.nr_cpus in (1, 4) and kmem_machine.policy_name == "pct"

@pytest.mark.kmem(seeds=[5], policies=None)
def test_buggy(kmem_machine):
    sleepy(kmem_machine)

@pytest.mark.kmem(seeds=2, expect="sleep_in_atomic")
def test_expected(kmem_machine):
    sleepy(kmem_machine)
    assert kmem_machine.reports_of("sleep_in_atomic")

@pytest.mark.kmem(seeds=[2], policies="random")
def test_raises(kmem_machine):
    sleepy(kmem_machine)
    assert False, "the driver's own assertion"
'''


def test_fixture_marker_and_verdicts(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_drv=DRIVER)
    res = pytester.runpytest("-v", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=1 + 6 + 2, failed=2)
    out = res.stdout.str()
    for case in ("test_grid[cpus1-pct-seed0]", "test_grid[cpus4-pct-seed2]", "test_expected[cpus2-pct-depth2-seed1]"):
        assert case in out
    # the failure names the report, the run and how to repeat it
    assert "unexpected 'sleep_in_atomic' report" in out
    assert "BUG: sleeping function called from invalid context" in out
    assert "failed under cpus=2 policy='pct' seed=5" in out  # seed 5 of the default campaign: PCT at depth 2
    assert "rerun this case with: pytest 'test_drv.py::test_buggy[cpus2-pct-depth2-seed5]'" in out
    assert "replay with Machine(cpus=2, policy='pct', seed=5" in out
    # an exception of the test itself keeps its own message and gains the notes
    assert "the driver's own assertion" in out and "failed under cpus=2 policy='random' seed=2" in out


def test_rerun_from_the_failure_message_repeats_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_drv=DRIVER)
    res = pytester.runpytest("-p", "no:cacheprovider",
                             "test_drv.py::test_buggy[cpus2-pct-depth2-seed5]")
    res.assert_outcomes(failed=1)
    assert "BUG: sleeping function called from invalid context" in res.stdout.str()


@pytest.mark.parametrize("marker, words", [
    ("seeds=0", "must be positive"),
    ("cpus=(-1,)", "takes ints >= 0"),
    ("policies='nope'", "policy 'nope'"),
    ("seed=3", "chooses the seed"),
    ("cpus='two'", "takes ints >= 0, got 'two'"),  # was: got 't'
    ("expect=5", "(expect=5) takes a report kind"),  # was: a TypeError traceback
    ("seeds=1, cpus=300", "the machine is refused: Machine: cpus(=300) must be an int from 1 to 256"),
    ("seeds=1, bogus=1", "the machine is refused: policy 'random' takes the options"),
])
def test_bad_marker_arguments_are_usage_errors(pytester: pytest.Pytester, marker: str, words: str) -> None:
    pytester.makepyfile(test_bad=f"""
import pytest
@pytest.mark.kmem({marker})
def test_x(kmem_machine):
    pass
""")
    # in process, without the plugins that cost a second a run and add nothing here
    res = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:hypothesispytest",
                                       "-p", "no:benchmark")
    assert res.ret != 0
    out = res.stdout.str() + res.stderr.str()
    assert words in out
    # the message alone: no frames of pytest's hooks or of the model (a bad machine argument
    # printed a KmemUsageError traceback of ~40 lines per parametrized case)
    assert "pluggy/" not in out and "percpu_kmem/" not in out and "During handling" not in out


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist not installed")
def test_items_spread_over_xdist_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_drv=DRIVER)
    res = pytester.runpytest("-p", "no:cacheprovider", "-n", "2", "-k", "grid or buggy")
    res.assert_outcomes(passed=6, failed=1)
    assert "BUG: sleeping function called from invalid context" in res.stdout.str()
