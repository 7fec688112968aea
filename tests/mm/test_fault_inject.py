"""Fault injection with the kernel's knobs: failslab and fail_page_alloc (lib/fault-inject.c)."""

from __future__ import annotations

import pytest

from percpu_kmem import KmemUsageError, Machine
from percpu_kmem.linux import GFP_ATOMIC, GFP_KERNEL, GFP_NOWARN, __free_pages, alloc_pages, current, kfree, kmalloc

pytestmark = pytest.mark.timeout(60)


def _kmallocs(m: Machine, n: int, gfp: int = GFP_ATOMIC) -> list[bool]:
    """Which of ``n`` kmallocs failed, in order."""
    def body() -> list[bool]:
        out = []
        for _ in range(n):
            p = kmalloc(64, gfp)
            out.append(p is None)
            kfree(p)
        return out
    return m.run(body)[0]  # type: ignore[no-any-return]


def test_failslab_fails_times_calls_and_says_so() -> None:
    m = Machine(cpus=1, fault_inject={"failslab": {"probability": 100, "times": 2, "verbose": 1}})
    assert _kmallocs(m, 5) == [True, True, False, False, False]
    text = "\n".join(m.dmesg)
    assert text.count("FAULT_INJECTION: forcing a failure.") == 2
    assert "name failslab, interval 1, probability 100, space 0, times 0" in text
    assert m.failslab.failures == 2


def test_allocations_that_may_sleep_are_skipped_unless_asked() -> None:
    m = Machine(cpus=1, fault_inject={"failslab": {"probability": 100, "times": -1}})
    assert _kmallocs(m, 3, GFP_KERNEL) == [False] * 3  # ignore_gfp_wait, the default
    m.failslab.configure(ignore_gfp_wait=False)
    assert _kmallocs(m, 3, GFP_KERNEL) == [True] * 3


def test_interval_and_space_as_the_kernel_counts_them() -> None:
    m = Machine(cpus=1, fault_inject={"failslab": {"probability": 100, "times": -1, "interval": 3}})
    assert _kmallocs(m, 7) == [False, False, True, False, False, True, False]
    m2 = Machine(cpus=1, fault_inject={"failslab": {"probability": 100, "times": -1, "space": 150}})
    assert _kmallocs(m2, 4) == [False, False, True, True]  # 150 bytes of budget: two 64-byte objects pass


def test_fail_page_alloc_spares_order_zero_and_highmem_by_default() -> None:
    m = Machine(cpus=1, fault_inject="fail_page_alloc=1,100,0,-1")

    def body() -> tuple[bool, bool, bool]:
        p0 = alloc_pages(GFP_ATOMIC, 0)
        p1 = alloc_pages(GFP_ATOMIC, 1)
        p2 = alloc_pages(GFP_ATOMIC | GFP_NOWARN, 2)
        __free_pages(p0, 0)
        return p0 is None, p1 is None, p2 is None

    assert m.run(body)[0] == (False, True, True)
    assert "\n".join(m.dmesg).count("FAULT_INJECTION") == 1  # __GFP_NOWARN: no message


def test_the_task_filter_and_fail_nth() -> None:
    m = Machine(cpus=2, fault_inject={"failslab": {"probability": 100, "times": -1, "task_filter": True}})

    def marked() -> bool:
        current().make_it_fail = True
        return kmalloc(32, GFP_ATOMIC) is None

    def unmarked() -> bool:
        return kmalloc(32, GFP_ATOMIC) is None

    assert m.run(marked, unmarked) == [True, False]
    m2 = Machine(cpus=1)

    def nth() -> list[bool]:
        current().fail_nth = 3  # /proc/self/fail-nth: the third call fails, whatever the probability
        return [kmalloc(32, GFP_ATOMIC) is None for _ in range(5)]  # (may-sleep calls stay skipped)

    assert m2.run(nth)[0] == [False, False, True, False, False]


def test_which_calls_fail_is_a_function_of_the_seed() -> None:
    def pattern(seed: int) -> list[bool]:
        m = Machine(cpus=1, seed=seed, fault_inject={"failslab": {"probability": 50, "times": -1, "verbose": 0}})
        return _kmallocs(m, 40)

    assert pattern(3) == pattern(3)
    assert len({tuple(pattern(s)) for s in range(4)}) > 1
    m = Machine(cpus=1, seed=3, fault_inject={"failslab": {"probability": 50, "times": -1, "verbose": 0}})
    _kmallocs(m, 40)
    assert "fault_inject={'failslab'" in m.replay_hint()


@pytest.mark.parametrize("spec, match", [
    ("failslab=1,2,3", "failed to parse arguments"), ("oops=1,2,3,4", "failed to parse arguments"),
    ({"failslab": {"probability": 101}}, "percentage"), ({"failslab": {"interval": 0}}, "interval"),
    ({"failslab": {"nope": 1}}, "no knob"), ({"kasan": {}}, "not failslab"), (42, "must be a dict"),
])
def test_bad_knobs_are_refused(spec: object, match: str) -> None:
    with pytest.raises(KmemUsageError, match=match):
        Machine(cpus=1, fault_inject=spec)  # type: ignore[arg-type]
