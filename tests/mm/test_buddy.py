"""The zone buddy allocator: split, merge, double-free detection, buddyinfo, invariants."""

from __future__ import annotations

import random

import pytest

pytestmark = pytest.mark.timeout(60)

from hypothesis import settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from percpu_kmem.mm.buddy import BuddyCorruption, BuddyZone  # noqa: E402
from percpu_kmem.mm.physmem import (  # noqa: E402
    MAX_ORDER,
    InconsistentState,
    PG_private,
    PhysMem,
)

BOOT_DMA_64M = "Node 0, zone      DMA      0      0      0      0      0      0      0      0      0      0      4 \n"


def booted(size: str = "64M", nr_nodes: int = 1) -> PhysMem:
    m = PhysMem(size, nr_nodes)
    m.free_all_to_buddy()
    return m


def dma_64m() -> BuddyZone:
    return booted().zones[0].buddy


def snapshot(b: BuddyZone) -> tuple[object, ...]:
    return (
        [list(area) for area in b.free_lists],
        list(b.nr_free),
        b.free_pages,
        bytes(b.mem.flags[b.start_pfn : b.end_pfn]),
        bytes(b.mem.order[b.start_pfn : b.end_pfn]),
    )


def blocks(b: BuddyZone) -> set[tuple[int, int]]:
    return set(b.iter_free_blocks())


# ---- format -------------------------------------------------------------------------


def test_boot_state_and_buddyinfo_format() -> None:
    b = dma_64m()
    assert b.buddyinfo_line(0) == BOOT_DMA_64M
    assert b.buddyinfo_line() == BOOT_DMA_64M
    assert list(b.free_lists[10]) == [0, 1024, 2048, 3072]  # 3072 is the head
    assert b.free_pages == 4096 and b.nr_free[10] == 4
    assert b.largest_free_order() == 10
    b.check()


def test_buddyinfo_wide_counts_keep_the_kernel_spacing() -> None:
    b = dma_64m()
    b.nr_free[0] = 123456  # wider than %6lu: the field grows, as printf does
    assert b.buddyinfo_line(3).startswith("Node 3, zone      DMA 123456      0 ")


def test_buddyinfo_matches_the_host_kernel_byte_for_byte() -> None:
    """Re-print a real /proc/buddyinfo line through our formatter."""
    try:
        with open("/proc/buddyinfo") as f:
            lines = f.readlines()
    except OSError:
        pytest.skip("no /proc/buddyinfo on this host")
    m = booted("64M")
    zones = {z.name: z for z in m.zones}
    compared = 0
    for line in lines:
        head, _, rest = line.partition(", zone ")
        name, *counts = rest.split()
        if name not in zones or len(counts) != MAX_ORDER:
            continue  # DMA32, Movable, ... or a kernel with another MAX_ORDER
        b = zones[name].buddy
        b.nr_free = [int(c) for c in counts]
        assert b.buddyinfo_line(int(head.split()[1])) == line
        compared += 1
    if not compared:
        pytest.skip("the host has no DMA or Normal zone line with 11 orders")


# ---- allocation -------------------------------------------------------------------------


def test_split_puts_upper_halves_on_lower_lists() -> None:
    b = dma_64m()
    pfn = b.rmqueue(0)
    assert pfn == 3072  # the head of the order-10 list: the block freed last
    for order in range(10):
        assert list(b.free_lists[order]) == [3072 + (1 << order)]
        assert b.mem.order[3072 + (1 << order)] == order
        assert b.mem.flags[3072 + (1 << order)] & PG_private
    assert list(b.free_lists[10]) == [0, 1024, 2048]
    assert not b.mem.flags[3072] & PG_private and b.mem.order[3072] == 0
    assert not b.is_free(3072) and b.is_free(3073) and b.is_free(4095)
    assert b.free_pages == 4095
    b.check()


def test_fixed_sequence_buddyinfo_by_hand() -> None:
    b = dma_64m()
    a = b.rmqueue(0)  # splits 3072/10: 3584/9 3328/8 3200/7 3136/6 3104/5 3088/4 3080/3 3076/2 3074/1 3073/0
    p3 = b.rmqueue(3)  # 3080 straight off the order-3 list
    c = b.rmqueue(3)  # order 3 empty: splits 3088/4, 3096 goes to order 3
    d = b.rmqueue(10)  # 2048, the new head of order 10
    e = b.rmqueue(0)  # 3073
    f = b.rmqueue(1)  # 3074
    assert (a, p3, c, d, e, f) == (3072, 3080, 3088, 2048, 3073, 3074)
    b.free(a, 0)  # buddy 3073 is held: no merge
    b.free(p3, 3)  # buddy 3088 is held: no merge; order 3 now holds 3096 and 3080 (head)
    g = b.rmqueue(2)  # 3076
    assert g == 3076
    assert list(b.free_lists[3]) == [3096, 3080]
    assert b.buddyinfo_line(0) == (
        "Node 0, zone      DMA      1      0      0      2      0      1      1      1      1      1      2 \n"
    )
    assert b.free_pages == 4096 - (8 + 1024 + 1 + 2 + 4)
    b.check()

    for pfn, order in [(c, 3), (d, 10), (e, 0), (f, 1), (g, 2)]:
        b.free(pfn, order)
        b.check()
    assert b.buddyinfo_line(0) == BOOT_DMA_64M
    assert blocks(b) == {(0, 10), (1024, 10), (2048, 10), (3072, 10)}


def test_rmqueue_returns_none_when_nothing_fits() -> None:
    b = booted("6000K", 2).zones[0].buddy  # 750 pages: largest block order 9
    assert b.rmqueue(10) is None
    assert b.rmqueue(9) == 0
    assert b.rmqueue(9) is None
    assert b.largest_free_order() == 7
    taken = b.rmqueue_bulk(0, 10_000)
    assert len(taken) == 750 - 512 and b.free_pages == 0
    assert b.rmqueue(0) is None and b.largest_free_order() == -1
    assert b.rmqueue_bulk(0, 5) == []
    b.check()


@pytest.mark.parametrize(
    ("order", "message"),
    [(11, r"order\(=11\) must be < MAX_ORDER\(=11\)"), (-1, r"order\(=-1\) must be >= 0")],
)
def test_bad_orders(order: int, message: str) -> None:
    b = dma_64m()
    with pytest.raises(ValueError, match=message):
        b.rmqueue(order)
    with pytest.raises(ValueError, match=message):
        b.free(0, order)


def test_free_refuses_misaligned_and_foreign_blocks() -> None:
    m = booted()
    dma, normal = m.zones[0].buddy, m.zones[1].buddy
    pfn = normal.rmqueue(1)
    with pytest.raises(ValueError, match="not aligned"):
        normal.free(pfn + 1, 1)
    with pytest.raises(ValueError, match="not inside zone DMA"):
        dma.free(pfn, 1)
    normal.free(pfn, 1)
    m.check()


def test_bulk_helpers() -> None:
    b = dma_64m()
    taken = b.rmqueue_bulk(0, 16)
    assert taken[:3] == [3072, 3073, 3074]  # LIFO: each refill takes the newest upper half
    assert len(set(taken)) == 16
    assert b.free_bulk(reversed(taken), 0) == 16
    assert b.buddyinfo_line(0) == BOOT_DMA_64M
    b.check()


def test_coalescing_back_to_boot_state_in_random_order() -> None:
    m = booted()
    b = m.zones[1].buddy
    boot = blocks(b)
    rng = random.Random(5)
    held = []
    while (pfn := b.rmqueue(order := rng.randrange(0, 4))) is not None:
        held.append((pfn, order))
    held += [(p, 0) for p in b.rmqueue_bulk(0, b.free_pages)]
    assert b.free_pages == 0
    rng.shuffle(held)
    for pfn, order in held:
        b.free(pfn, order)
    assert blocks(b) == boot
    m.check()


def test_buddy_outside_the_zone_is_never_merged() -> None:
    m = booted("6000K", 2)  # node 0 DMA is pfn 0-750, node 1 DMA is pfn 750-1500
    node0, node1 = m.zones[0].buddy, m.zones[1].buddy
    boot1 = {(750, 1), (752, 4), (768, 8), (1024, 8), (1280, 7), (1408, 6), (1472, 4), (1488, 3), (1496, 2)}
    assert blocks(node1) == boot1
    assert (748, 1) in blocks(node0)  # 750's buddy is free, but in another zone
    held = node1.rmqueue_bulk(0, 750)
    for pfn in held:
        node1.free(pfn, 0)
    assert blocks(node1) == boot1
    m.check()


# ---- double free -------------------------------------------------------------------------


def test_double_free_raises_and_changes_nothing() -> None:
    b = dma_64m()
    a = b.rmqueue(0)
    b.free(a, 0)
    before = snapshot(b)
    with pytest.raises(BuddyCorruption) as info:
        b.free(a, 0)
    assert (info.value.pfn, info.value.order) == (a, 0)
    assert (info.value.free_pfn, info.value.free_order) == (3072, 10)  # merged back whole
    assert "double free" in str(info.value) and info.value.zone is b.zone
    assert snapshot(b) == before
    b.check()


def test_free_overlapping_a_smaller_free_block_raises() -> None:
    b = dma_64m()
    a = b.rmqueue(0)  # 3072; 3073 stays free at order 0
    before = snapshot(b)
    with pytest.raises(BuddyCorruption) as info:
        b.free(a, 1)  # would cover 3072-3073, but 3073 is free
    assert (info.value.free_pfn, info.value.free_order) == (3073, 0)
    assert snapshot(b) == before
    with pytest.raises(BuddyCorruption):
        b.free(512, 3)  # inside the free order-10 block at 0
    assert snapshot(b) == before
    b.free(a, 0)
    b.check()


def test_check_catches_unmerged_buddies_and_bad_counters() -> None:
    b = dma_64m()
    a = b.rmqueue(0)
    b.free_lists[0][a] = None  # hand-made corruption: a free buddy pair left unmerged
    b.nr_free[0] += 1
    b.mem.flags[a] |= PG_private
    with pytest.raises(InconsistentState, match="unmerged|free_pages"):
        b.check()
    b2 = dma_64m()
    b2.nr_free[3] = 7
    with pytest.raises(InconsistentState, match=r"nr_free\[3\]"):
        b2.check()
    b3 = dma_64m()
    b3.mem.count[5] = 1
    with pytest.raises(InconsistentState, match="reference count"):
        b3.check()


# ---- stateful ---------------------------------------------------------------------------

#: (size, nodes, zone index): an aligned zone, unaligned ones on either side of a node
#: boundary, and a small zone starting at 16 MiB.
LAYOUTS = [("64M", 1, 0), ("6000K", 2, 0), ("6000K", 2, 1), ("17M", 1, 1)]


class BuddyMachine(RuleBasedStateMachine):
    """Random allocations and frees against one zone; free + held must tile the zone."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[int, int]] = []

    @initialize(layout=st.sampled_from(LAYOUTS))
    def boot(self, layout: tuple[str, int, int]) -> None:
        size, nodes, zone = layout
        self.mem = booted(size, nodes)
        self.b = self.mem.zones[zone].buddy
        self.total = self.b.zone.present_pages

    @rule(order=st.integers(0, MAX_ORDER - 1))
    def alloc(self, order: int) -> None:
        could = any(self.b.nr_free[o] for o in range(order, MAX_ORDER))
        pfn = self.b.rmqueue(order)
        if pfn is None:
            assert not could
            return
        size = 1 << order
        assert pfn % size == 0 and self.b.start_pfn <= pfn and pfn + size <= self.b.end_pfn
        assert not any(self.b.is_free(p) for p in range(pfn, pfn + size))
        self.held.append((pfn, order))

    @rule(count=st.integers(0, 8))
    def alloc_bulk(self, count: int) -> None:
        self.held += [(p, 0) for p in self.b.rmqueue_bulk(0, count)]

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 1 << 16))
    def free(self, i: int) -> None:
        pfn, order = self.held.pop(i % len(self.held))
        self.b.free(pfn, order)

    @precondition(lambda self: self.held)
    @rule(i=st.integers(0, 1 << 16))
    def free_again(self, i: int) -> None:
        """Free a held block, then free it (or a piece of it) a second time."""
        pfn, order = self.held.pop(i % len(self.held))
        self.b.free(pfn, order)
        k = i % (order + 1)
        piece = pfn + ((i >> 4) % (1 << (order - k))) * (1 << k)
        before = snapshot(self.b)
        try:
            self.b.free(piece, k)
        except BuddyCorruption as e:
            assert e.pfn == piece and e.order == k
        else:
            raise AssertionError(f"second free of pfn {piece:#x} order {k} was accepted")
        assert snapshot(self.b) == before

    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "b"):
            return
        self.b.check()
        held_pages = sum(1 << o for _, o in self.held)
        assert self.b.free_pages + held_pages == self.total
        # Held and free blocks tile the zone exactly: no overlap, nothing lost.
        owner = bytearray(self.total)
        for pfn, order in list(self.held) + list(self.b.iter_free_blocks()):
            off = pfn - self.b.start_pfn
            size = 1 << order
            assert owner.find(1, off, off + size) == -1, f"block {pfn:#x}/{order} overlaps another"
            owner[off : off + size] = b"\x01" * size
        assert owner.count(1) == self.total


BuddyMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestBuddyMachine = BuddyMachine.TestCase
