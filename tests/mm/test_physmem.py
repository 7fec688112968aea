"""Physical memory: sizes, orders, the zone layout, addresses, bytes and struct page."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)

from percpu_kmem.mm.physmem import (  # noqa: E402
    MAX_ORDER,
    PAGE_OFFSET,
    PAGE_SIZE,
    ZONE_DMA,
    ZONE_HIGHMEM,
    ZONE_NORMAL,
    BadPhysAddress,
    InconsistentState,
    Page,
    PG_highmem,
    PG_private,
    PG_reserved,
    PG_slab,
    PhysMem,
    format_page_flags,
    get_order,
    parse_size,
)

MiB = 1 << 20


@pytest.fixture
def mem() -> PhysMem:
    m = PhysMem("64M")
    m.free_all_to_buddy()
    return m


# ---- constants, get_order, parse_size -------------------------------------------------


def test_constants() -> None:
    assert PAGE_SIZE == 4096
    assert MAX_ORDER == 11
    assert PAGE_OFFSET == 0xC0000000
    assert (ZONE_DMA, ZONE_NORMAL, ZONE_HIGHMEM) == (0, 1, 2)


@pytest.mark.parametrize(
    ("size", "order"),
    [(1, 0), (4096, 0), (4097, 1), (8192, 1), (8193, 2), (16384, 2), (16385, 3),
     (65536, 4), (131072, 5), (4 * MiB, 10)],
)
def test_get_order_reference_examples(size: int, order: int) -> None:
    assert get_order(size) == order


@pytest.mark.parametrize("size", [0, -1, -4096])
def test_get_order_refuses_non_positive(size: int) -> None:
    with pytest.raises(ValueError, match="undefined for 0"):
        get_order(size)


@pytest.mark.parametrize(
    ("text", "value"),
    [(4096, 4096), ("4096", 4096), ("64K", 64 << 10), ("64k", 64 << 10), ("64M", 64 * MiB),
     ("64MB", 64 * MiB), ("4G", 4 << 30), ("16GiB", 16 << 30), (" 16 GiB ", 16 << 30),
     ("4096B", 4096), ("0x1000", 4096), ("1T", 1 << 40), ("0", 0)],
)
def test_parse_size(text: int | str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "1.5G", "-1", "64X", "64 M B", "sixty", "64MiBs"])
def test_parse_size_rejects_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="cannot parse size"):
        parse_size(text)


def test_parse_size_rejects_bad_types_and_negatives() -> None:
    with pytest.raises(ValueError, match="must be >= 0"):
        parse_size(-5)
    with pytest.raises(TypeError):
        parse_size(4.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        parse_size(True)  # type: ignore[arg-type]


# ---- layout -----------------------------------------------------------------------


def zone_ranges(m: PhysMem) -> list[tuple[int, str, int, int]]:
    return [(z.node, z.name, z.start_pfn, z.end_pfn) for z in m.zones]


def test_layout_64m() -> None:
    m = PhysMem("64M")
    assert m.nr_pages == 16384
    assert zone_ranges(m) == [(0, "DMA", 0, 4096), (0, "Normal", 4096, 16384)]
    assert m.zones[0].present_pages == 4096
    assert m.nodes[0].zones[ZONE_HIGHMEM] is None
    assert m.highmem_pages == 0
    m.check()


def test_layout_1g_pc_split() -> None:
    m = PhysMem("1G")
    dma, normal, high = m.zones
    assert [z.present_pages * PAGE_SIZE // MiB for z in m.zones] == [16, 880, 128]
    assert (dma.idx, normal.idx, high.idx) == (ZONE_DMA, ZONE_NORMAL, ZONE_HIGHMEM)
    assert high.start_pfn == 896 * MiB // PAGE_SIZE
    assert m.nodes[0].zones == [dma, normal, high]
    assert [z.id for z in m.zones] == [0, 1, 2]
    m.check()


def test_layout_four_nodes_discontigmem() -> None:
    m = PhysMem("4G", nr_nodes=4)
    per = (1 << 30) // PAGE_SIZE
    assert [(n.start_pfn, n.end_pfn) for n in m.nodes] == [(i * per, (i + 1) * per) for i in range(4)]
    assert [z.name for z in m.nodes[0].populated_zones()] == ["DMA", "Normal", "HighMem"]
    for node in m.nodes[1:]:
        assert node.zones[ZONE_DMA] is None and node.zones[ZONE_NORMAL] is None
        assert node.zones[ZONE_HIGHMEM] is not None
    assert m.pfn_to_zone(per + 5) is m.nodes[1].zones[ZONE_HIGHMEM]
    assert m.page(3 * per).node == 3
    assert m.pfn_to_zone(0).name == "DMA"
    m.check()


def test_uneven_nodes_are_max_order_aligned_and_last_takes_the_rest() -> None:
    m = PhysMem("100M", nr_nodes=4)  # 25600 pages: 6400 per node, rounded down to 6144
    assert [(n.start_pfn, n.end_pfn) for n in m.nodes] == [
        (0, 6144), (6144, 12288), (12288, 18432), (18432, 25600)]
    m.check()


def test_tiny_nodes_split_on_pages() -> None:
    m = PhysMem("6000K", nr_nodes=2)  # 1500 pages: nodes of 750, not MAX_ORDER aligned
    assert zone_ranges(m) == [(0, "DMA", 0, 750), (1, "DMA", 750, 1500)]
    m.check()


def test_bad_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="nr_nodes"):
        PhysMem("64M", nr_nodes=0)
    with pytest.raises(ValueError, match="one page per node"):
        PhysMem(4096, nr_nodes=2)
    with pytest.raises(ValueError, match="uninit_byte"):
        PhysMem("64M", uninit_byte=256)
    with pytest.raises(ValueError, match="PAE"):
        PhysMem("128G")


def test_boot_of_a_large_machine_builds() -> None:
    m = PhysMem("4G", nr_nodes=4)
    assert m.free_all_to_buddy() == m.nr_pages
    assert m.nr_free_pages() == m.nr_pages
    assert m.materialized_pages == 0
    m.check()


# ---- boot state and free_all_to_buddy ------------------------------------------------------


def test_boot_state_is_reserved_until_freed() -> None:
    m = PhysMem("1G")
    assert m.flags[0] == PG_reserved and m.count[0] == 1
    assert m.flags[m.nr_pages - 1] == PG_reserved | PG_highmem
    assert m.nr_free_pages() == 0
    assert m.free_all_to_buddy() == m.nr_pages
    assert m.count[0] == 0 and not m.flags[1] & PG_reserved
    assert m.flags[m.nr_pages - 1] == PG_highmem
    assert m.buddyinfo() == (
        "Node 0, zone      DMA      0      0      0      0      0      0      0      0      0      0      4 \n"
        "Node 0, zone   Normal      0      0      0      0      0      0      0      0      0      0    220 \n"
        "Node 0, zone  HighMem      0      0      0      0      0      0      0      0      0      0     32 \n"
    )
    with pytest.raises(RuntimeError, match="already ran"):
        m.free_all_to_buddy()
    m.check()


@pytest.mark.parametrize("as_predicate", [False, True])
def test_free_all_skips_reserved_pages(as_predicate: bool) -> None:
    m = PhysMem("64M")
    held = {0, 5, 4096}
    assert m.free_all_to_buddy(held.__contains__ if as_predicate else held) == m.nr_pages - 3
    # DMA: runs [1,5) and [6,4096); Normal: [4097,16384), largest aligned blocks each.
    assert m.buddyinfo() == (
        "Node 0, zone      DMA      2      2      0      1      1      1      1      1      1      1      3 \n"
        "Node 0, zone   Normal      1      1      1      1      1      1      1      1      1      1     11 \n"
    )
    for pfn in held:
        assert m.flags[pfn] & PG_reserved and m.count[pfn] == 1
        assert not m.zones[0].buddy.is_free(pfn) and not m.zones[1].buddy.is_free(pfn)
    m.check()


def test_free_all_rejects_invalid_reserved_pfn() -> None:
    with pytest.raises(ValueError, match="not valid"):
        PhysMem("64M").free_all_to_buddy([1 << 20])


# ---- addresses ------------------------------------------------------------------------


def test_page_address_round_trip() -> None:
    m = PhysMem("1G")
    for pfn in (0, 1, 4095, 4096, m.max_low_pfn - 1):
        addr = m.page_address(pfn)
        assert addr == PAGE_OFFSET + pfn * PAGE_SIZE
        assert m.virt_to_pfn(addr) == pfn
        assert m.virt_to_pfn(addr + PAGE_SIZE - 1) == pfn
        assert m.virt_to_page(addr + 17) is m.page(pfn)
        assert m.phys_to_virt(m.virt_to_phys(addr + 3)) == addr + 3


def test_highmem_has_no_page_address() -> None:
    m = PhysMem("1G")
    assert m.max_low_pfn == 229376
    assert m.page_address(m.max_low_pfn) is None
    assert m.page(m.nr_pages - 1).address is None
    assert m.page(m.nr_pages - 1).highmem
    assert not m.page(0).highmem


@pytest.mark.parametrize("addr", [0, PAGE_OFFSET - 1, PAGE_OFFSET + (896 << 20), 0xFFFFFFFF])
def test_virt_to_pfn_outside_direct_map(addr: int) -> None:
    with pytest.raises(ValueError, match="direct map"):
        PhysMem("1G").virt_to_pfn(addr)


def test_virt_to_pfn_beyond_small_machine() -> None:
    m = PhysMem("64M")
    with pytest.raises(ValueError):
        m.virt_to_pfn(PAGE_OFFSET + (64 << 20))
    with pytest.raises(ValueError):
        m.page_address(m.nr_pages)


def test_pfn_valid() -> None:
    m = PhysMem("64M")
    assert m.pfn_valid(0) and m.pfn_valid(16383)
    assert not m.pfn_valid(16384) and not m.pfn_valid(-1) and not m.pfn_valid(True)


# ---- struct page handles ------------------------------------------------------------------


def test_page_identity_equality_and_repr(mem: PhysMem) -> None:
    assert mem.pfn_to_page(0x1234) is mem.pfn_to_page(0x1234)
    assert mem.page(7) == Page(mem, 7) and hash(mem.page(7)) == hash(Page(mem, 7))
    assert mem.page(7) != mem.page(8)
    assert mem.page(7) != PhysMem("64M").page(7)
    mem.page(0x1234).count = 1
    assert repr(mem.page(0x1234)) == "<page pfn=0x1234 zone=Normal count=1>"
    with pytest.raises(ValueError):
        mem.page(mem.nr_pages)


def test_page_properties_read_the_arrays(mem: PhysMem) -> None:
    p = mem.page(100)
    p.flags |= PG_slab
    p.owner = 42
    p.private = 7
    assert mem.flags[100] & PG_slab and mem.owner[100] == 42 and mem.private[100] == 7
    assert p.zone is mem.zones[0] and p.node == 0 and p.paddr == 100 * PAGE_SIZE
    head = mem.page(0)  # a free order-10 block's head
    assert head.flags & PG_private and head.order == 10
    assert format_page_flags(p.flags) == "slab"


def test_page_handles_are_small() -> None:
    assert Page.__slots__ == ("mem", "pfn")
    assert not hasattr(PhysMem("64M").page(1), "__dict__")


# ---- bytes --------------------------------------------------------------------------


def test_unwritten_memory_reads_as_uninit_byte() -> None:
    assert PhysMem("64M").read(12345, 3) == b"\xcc\xcc\xcc"
    assert PhysMem("64M", uninit_byte=0x5A).read_u32(0) == 0x5A5A5A5A


def test_write_read_across_page_boundary(mem: PhysMem) -> None:
    data = bytes(range(200))
    mem.write(PAGE_SIZE - 100, data)
    assert mem.read(PAGE_SIZE - 100, 200) == data
    assert mem.read(PAGE_SIZE - 101, 1) == b"\xcc"
    assert mem.read(PAGE_SIZE + 100, 1) == b"\xcc"
    assert mem.materialized_pages == 2


def test_write_spanning_several_pages(mem: PhysMem) -> None:
    data = bytes(i % 251 for i in range(3 * PAGE_SIZE + 10))
    mem.write(5, data)
    assert mem.read(5, len(data)) == data
    assert mem.read(0, 5) == b"\xcc" * 5


def test_typed_accessors_little_endian_across_pages(mem: PhysMem) -> None:
    mem.write_u64(PAGE_SIZE - 3, 0x0102030405060708)
    assert mem.read(PAGE_SIZE - 3, 8) == bytes.fromhex("0807060504030201")
    assert mem.read_u64(PAGE_SIZE - 3) == 0x0102030405060708
    mem.write_u32(64, 0xDEADBEEF)
    assert mem.read_u32(64) == 0xDEADBEEF and mem.read_u16(64) == 0xBEEF and mem.read_u8(67) == 0xDE
    mem.write_u16(PAGE_SIZE - 1, 0xABCD)
    assert mem.read_u16(PAGE_SIZE - 1) == 0xABCD
    mem.write_u32(128, -1)
    assert mem.read_u32(128) == 0xFFFFFFFF
    with pytest.raises(ValueError, match="does not fit"):
        mem.write_u8(0, 256)


def test_zeroing_is_cheap_and_visible(mem: PhysMem) -> None:
    mem.write(10 * PAGE_SIZE + 7, b"hello")
    assert mem.page_fill(10) is None
    mem.zero_page(10)
    assert mem.read(10 * PAGE_SIZE, PAGE_SIZE) == bytes(PAGE_SIZE)
    assert mem.page_fill(10) == 0 and mem.page_fill(11) == 0xCC
    mem.clear_pages(0, mem.nr_pages)
    assert mem.materialized_pages == 0
    assert mem.read(mem.total_bytes - 8, 8) == bytes(8)
    with pytest.raises(ValueError):
        mem.clear_pages(mem.nr_pages - 1, 2)


def test_memset_partial_and_whole_pages(mem: PhysMem) -> None:
    mem.memset(PAGE_SIZE - 2, 0x6B, 2 * PAGE_SIZE + 4)
    assert mem.read(PAGE_SIZE - 3, 1) == b"\xcc"
    assert mem.read(PAGE_SIZE - 2, 2 * PAGE_SIZE + 4) == b"\x6b" * (2 * PAGE_SIZE + 4)
    assert mem.read(3 * PAGE_SIZE + 2, 1) == b"\xcc"
    assert mem.page_fill(2) == 0x6B  # the whole page in the middle was not materialized
    assert mem.materialized_pages == 2
    mem.memset(50, 0, 10)
    assert mem.read(49, 12) == b"\xcc" + bytes(10) + b"\xcc"
    with pytest.raises(ValueError):
        mem.memset(0, 300, 1)


def test_copy_overlapping_and_whole_pages(mem: PhysMem) -> None:
    mem.write(100, b"abcdefgh")
    mem.copy(102, 100, 8)
    assert mem.read(100, 10) == b"ababcdefgh"
    mem.write(PAGE_SIZE, b"x" * PAGE_SIZE)
    mem.zero_page(2)
    mem.copy(5 * PAGE_SIZE, PAGE_SIZE, 3 * PAGE_SIZE)  # pages 1, 2, 3 -> 5, 6, 7
    assert mem.read(5 * PAGE_SIZE, PAGE_SIZE) == b"x" * PAGE_SIZE
    assert mem.page_fill(6) == 0 and mem.page_fill(7) == 0xCC
    mem.copy(2 * PAGE_SIZE, PAGE_SIZE, 2 * PAGE_SIZE)  # forward overlap: memmove semantics
    assert mem.read(2 * PAGE_SIZE, PAGE_SIZE) == b"x" * PAGE_SIZE
    assert mem.page_fill(3) == 0


def test_out_of_range_access(mem: PhysMem) -> None:
    with pytest.raises(BadPhysAddress) as info:
        mem.read(mem.total_bytes - 2, 4)
    assert info.value.paddr == mem.total_bytes - 2 and info.value.size == 4
    with pytest.raises(BadPhysAddress):
        mem.write(-1, b"x")
    with pytest.raises(BadPhysAddress):
        mem.read_u32(mem.total_bytes)


# ---- check() ----------------------------------------------------------------------------


def test_check_names_a_wrong_zone_id(mem: PhysMem) -> None:
    mem.zone_id[5] = 1
    with pytest.raises(InconsistentState, match="zone_id"):
        mem.check()


def test_check_names_a_missing_highmem_flag() -> None:
    m = PhysMem("1G")
    m.flags[m.nr_pages - 1] &= ~PG_highmem
    with pytest.raises(InconsistentState, match="PG_highmem"):
        m.check()


def test_check_walks_the_buddy_zones(mem: PhysMem) -> None:
    mem.flags[1024] &= ~PG_private
    with pytest.raises(InconsistentState, match="PG_private"):
        mem.check()


def test_count_flag_and_any_flags() -> None:
    m = PhysMem("1G")
    assert m.count_flag(PG_highmem) == m.highmem_pages
    assert m.count_flag(PG_reserved, 0, 10) == 10
    m.free_all_to_buddy()
    assert not m.any_flags(PG_reserved | PG_slab, 0, m.nr_pages)
    m.flags[77] |= PG_slab
    assert m.any_flags(PG_reserved | PG_slab, 0, m.nr_pages)
    assert not m.any_flags(PG_slab, 78, m.nr_pages)
    with pytest.raises(ValueError):
        m.count_flag(PG_slab | PG_reserved)
