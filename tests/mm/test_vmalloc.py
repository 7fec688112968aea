"""vmalloc/vfree, vmap, ioremap/iounmap, /proc/vmallocinfo, the accessors through the page tables."""

from __future__ import annotations

import re

import pytest

from percpu_kmem import (
    __GFP_HIGHMEM,
    __GFP_NOWARN,
    GFP_ATOMIC,
    GFP_KERNEL,
    Machine,
    alloc_page,
    mem_read,
    mem_write,
    memset,
    nr_free_pages,
    page_address,
    raise_irq,
    read_u8,
    read_u32,
    read_u64,
    request_irq,
    spin_lock,
    spin_lock_init,
    spin_unlock,
    write_u32,
    write_u64,
)
from percpu_kmem.mm.mmio import (
    memcpy_fromio,
    memcpy_toio,
    memset_io,
    readb,
    readl,
    readw,
    register_io_device,
    unregister_io_device,
    writeb,
    writel,
    writew,
)
from percpu_kmem.mm.physmem import InconsistentState
from percpu_kmem.mm.vmalloc import (
    IOREMAP_MAX_ORDER,
    PAGE_KERNEL,
    VM_IOREMAP,
    __vmalloc,
    ioremap,
    ioremap_nocache,
    iounmap,
    vfree,
    vmalloc,
    vmalloc_32,
    vmalloc_to_page,
    vmap,
    vunmap,
)
from percpu_kmem.runtime.errors import KmemUsageError, NotInTaskError
from percpu_kmem.testing import explore

pytestmark = pytest.mark.timeout(60)
PAGE = 4096
LINE = re.compile(r"^0x([0-9a-f]{8})-0x([0-9a-f]{8}) +(\d+) ([^\s@]+)@(\S+):(\d+)( pages=\d+)?( phys=0x[0-9a-f]{8})?"
                  r"( ioremap)?( vmalloc)?( vmap)?( N\d+=\d+)*$")


def run1(m: Machine, fn) -> None:
    m.run(fn)


def areas(m: Machine) -> list[tuple[int, int]]:
    """(start, end) of every /proc/vmallocinfo line, checking the format on the way."""
    out = []
    for ln in m.proc("vmallocinfo").splitlines():
        mt = LINE.match(ln)
        assert mt, ln
        start, end, size = int(mt[1], 16), int(mt[2], 16), int(mt[3])
        assert end - start == size
        out.append((start, end))
    return out


# -- the window ----------------------------------------------------------------------------------
@pytest.mark.parametrize("memory, start", [("64M", 0xC4800000), ("512M", 0xE0800000), ("1G", 0xF8800000)])
def test_window_follows_i386_formulas(memory: str, start: int) -> None:
    m = Machine(cpus=1, memory=memory)
    sp = m.vmalloc
    # high_memory + 8 MB hole, rounded to 8 MB; END = PKMAP_BASE - 2 pages (boot-log value 0xff7fe000)
    assert (sp.start, sp.end) == (start, 0xFF7FE000)
    assert sp.end < 2 ** 32
    total = dict((ln.split(":")[0], int(ln.split()[1])) for ln in m.proc("meminfo").splitlines())
    assert total["VmallocTotal"] == (0xFF7FE000 - start) >> 10
    assert total["VmallocUsed"] == 0 and total["VmallocChunk"] == total["VmallocTotal"]


# -- vmalloc / vfree -----------------------------------------------------------------------------
def test_many_pages_read_back_across_page_boundaries() -> None:
    m = Machine(cpus=1, memory="1G")
    free0: list[int] = []

    def body() -> None:
        free0.append(nr_free_pages())
        n = 9 * PAGE + 123
        a = vmalloc(n)
        assert a is not None and a % PAGE == 0 and m.vmalloc.start <= a < m.vmalloc.end
        pattern = bytes((i * 7 + 3) & 0xFF for i in range(n))
        mem_write(a, pattern)
        assert mem_read(a, n) == pattern
        for k in range(1, 10):  # an unaligned u32 and u64 straddling each boundary
            write_u32(a + k * PAGE - 2, 0xA1B2C3D4 + k)
            assert read_u32(a + k * PAGE - 2) == 0xA1B2C3D4 + k
            write_u64(a + k * PAGE - 5, 0x0102030405060708 * k)
            assert read_u64(a + k * PAGE - 5) == 0x0102030405060708 * k
        memset(a + PAGE - 10, 0x5A, 20)
        assert mem_read(a + PAGE - 11, 22) == bytes([(((PAGE - 11) * 7 + 3) & 0xFF)]) + b"\x5a" * 20 + \
            bytes([(((PAGE + 10) * 7 + 3) & 0xFF)])
        # the bytes live in the pages the page tables name (vmalloc uses highmem on a 1G machine)
        pages = [vmalloc_to_page(a + i * PAGE) for i in range(10)]
        assert all(p is not None and p.count == 1 for p in pages)
        assert any(p.highmem for p in pages)  # type: ignore[union-attr]
        assert m.mem.read(pages[3].paddr + 5, 4) == pattern[3 * PAGE + 5:3 * PAGE + 9]  # type: ignore[union-attr]
        assert vmalloc_to_page(a + 10 * PAGE) is None  # the guard page
        vfree(a)
        assert nr_free_pages() == free0[0]

    run1(m, body)
    assert m.reports == []
    m.check()


def test_vmalloc_32_stays_in_lowmem_and_the_direct_map_sees_the_same_bytes() -> None:
    m = Machine(cpus=1, memory="1G")

    def body() -> None:
        a = vmalloc_32(4 * PAGE)
        mem_write(a + PAGE - 1, b"xyz")
        p0, p1 = vmalloc_to_page(a), vmalloc_to_page(a + PAGE)
        assert not p0.highmem and not p1.highmem  # type: ignore[union-attr]
        assert mem_read(page_address(p0) + PAGE - 1, 1) == b"x"  # type: ignore[arg-type]
        assert mem_read(page_address(p1), 2) == b"yz"  # type: ignore[arg-type]
        vfree(a)

    run1(m, body)
    assert m.reports == []
    m.check()


def test_first_fit_with_guard_pages_reuses_holes() -> None:
    m = Machine(cpus=1, memory="64M")
    got: dict[str, int] = {}

    def body() -> None:
        got["a"] = vmalloc(PAGE)
        got["b"] = vmalloc(3 * PAGE)
        got["c"] = vmalloc(PAGE)
        vfree(got["b"])
        got["d"] = vmalloc(2 * PAGE)  # fits in b's hole (2 pages + guard <= 4 pages)
        got["e"] = vmalloc(4 * PAGE)  # does not: goes after c

    run1(m, body)
    s = m.vmalloc.start
    assert got["a"] == s and got["b"] == s + 2 * PAGE and got["c"] == s + 6 * PAGE
    assert got["d"] == s + 2 * PAGE and got["e"] == s + 8 * PAGE
    assert areas(m) == [(s, s + 2 * PAGE), (s + 2 * PAGE, s + 5 * PAGE), (s + 6 * PAGE, s + 8 * PAGE),
                        (s + 8 * PAGE, s + 13 * PAGE)]
    m.check()


def test_guard_page_and_freed_area_fault() -> None:
    m = Machine(cpus=1, memory="64M")
    addr: dict[str, int] = {}

    def overrun() -> None:
        a = vmalloc(2 * PAGE)
        addr["a"] = a
        write_u32(a + 2 * PAGE - 4, 1)  # the last word: fine
        write_u32(a + 2 * PAGE - 2, 1)  # runs into the guard page: Oops, nothing written

    def after_free() -> None:
        b = vmalloc(PAGE)
        addr["b"] = b
        vfree(b)
        read_u8(b + 7)

    m.run(overrun, after_free)
    faults = m.reports_of("page_fault")
    a, b = addr["a"], addr["b"]
    assert sorted(r.lines[0] for r in faults) == sorted([
        f"BUG: unable to handle page fault for address: {a + 2 * PAGE:08x}",  # CR2: the first byte that faulted
        f"BUG: unable to handle page fault for address: {b + 7:08x}"])
    assert all(r.lines[1].startswith("#PF: supervisor") for r in faults)
    # the faulting write to the guard page left the mapped part untouched
    pfn = m.vmalloc.ptes[(a >> 12) + 1]
    assert m.mem.read((pfn << 12) + PAGE - 4, 4) == b"\x01\x00\x00\x00"  # the first write only
    m.check()


def test_zero_too_big_and_out_of_window() -> None:
    m = Machine(cpus=1, memory="64M")
    dev_base = 0xC0000000
    register_io_device(m, dev_base, 1 << 30, name="huge-bar")
    res: list = []

    def body() -> None:
        res.append(vmalloc(0))
        res.append(vmalloc(65 << 20))  # more pages than the machine has
        res.append(ioremap(dev_base, 1 << 30))  # more than the ~944 MB window
        res.append(ioremap(dev_base, 4 << 20))

    run1(m, body)
    assert res[:3] == [None, None, None] and res[3] is not None
    assert any("allocation failed: out of vmalloc space - use vmalloc=<size> to increase size." in ln
               for ln in m.dmesg)
    assert m.reports == []
    m.check()


def test_page_allocation_failure_part_way_gives_everything_back() -> None:
    m = Machine(cpus=1, memory="16M")  # 4096 pages: asking for all of them passes the size check
    res: list = []

    def body() -> None:
        free0 = nr_free_pages()
        res.append(__vmalloc(16 << 20, GFP_ATOMIC | __GFP_HIGHMEM | __GFP_NOWARN, PAGE_KERNEL))
        res.append(nr_free_pages() == free0)
        res.append(__vmalloc(16 << 20, GFP_ATOMIC | __GFP_HIGHMEM, PAGE_KERNEL))
        res.append(nr_free_pages() == free0)

    run1(m, body)
    assert res == [None, True, None, True]
    fails = m.reports_of("vmalloc_failure")
    assert len(fails) == 1
    assert re.match(r"body: vmalloc error: size \d+, failed to allocate pages, mode:0x22\(__GFP_HIGHMEM\|"
                    r"__GFP_HIGH\), nodemask=\(null\)$", fails[0].lines[0]), fails[0].lines[0]
    assert m.reports_of("page_alloc_failure")
    assert m.proc("vmallocinfo") == "" and m.vmalloc.ptes == {}
    m.check()


def test_vmalloc_inside_spin_lock_is_reported() -> None:
    m = Machine(cpus=1, memory="64M")
    lock = spin_lock_init("drv_lock")

    def body() -> None:
        spin_lock(lock)
        a = vmalloc(PAGE)
        spin_unlock(lock)
        vfree(a)

    run1(m, body)
    rep = m.reports_of("sleep_in_atomic")
    assert rep and re.match(r"BUG: sleeping function called from invalid context at tests/mm/test_vmalloc\.py:\d+$",
                            rep[0].lines[0])
    assert rep[0].lines[1].startswith("in_atomic(): 1, irqs_disabled(): 0")
    m.check()


def test_vfree_from_interrupt_is_reported_and_refused() -> None:
    m = Machine(cpus=1, memory="64M")
    box: dict[str, int] = {}

    def handler(irq: int, dev: object) -> None:
        vfree(box["a"])

    def body() -> None:
        free0 = nr_free_pages()
        request_irq(5, handler, 0, "drv")
        box["a"] = vmalloc(3 * PAGE)
        mem_write(box["a"], b"keep")
        raise_irq(5, 0)
        assert mem_read(box["a"], 4) == b"keep"  # still mapped, still ours
        box["infos"] = len(areas(m))
        vfree(box["a"])  # from process context it works
        box["leak"] = free0 - nr_free_pages()

    run1(m, body)
    bugs = m.reports_of("bug")
    assert len(bugs) == 1
    assert re.match(r"kernel BUG at percpu_kmem/mm/vmalloc\.py:\d+!$", bugs[0].lines[0])
    assert "BUG_ON(in_interrupt())" in bugs[0].lines[1]
    assert box["infos"] == 1 and box["leak"] == 0
    m.check()


def test_vfree_diagnostics_and_null() -> None:
    m = Machine(cpus=1, memory="64M")

    def body() -> None:
        vfree(None)
        a = vmalloc(PAGE)
        vfree(a + 4)
        vfree(a + 0x10000)
        vfree(a)
        vfree(a)  # again: nonexistent now

    run1(m, body)
    lines = [r.lines[0] for r in m.reports_of("bad_vfree")]
    a = m.vmalloc.start
    assert lines == [f"Trying to vfree() bad address ({a + 4:08x})",
                     f"Trying to vfree() nonexistent vm area ({a + 0x10000:08x})",
                     f"Trying to vfree() nonexistent vm area ({a:08x})"]
    assert all(r.lines[1].startswith("WARNING: CPU: 0 PID: ") for r in m.reports_of("bad_vfree"))
    m.check()


def test_vmap_maps_caller_pages_and_vunmap_leaves_them() -> None:
    m = Machine(cpus=1, memory="64M")

    def body() -> None:
        pages = [alloc_page(GFP_KERNEL) for _ in range(3)]
        v = vmap(pages, 3)
        mem_write(v + PAGE - 2, b"abcd")
        assert mem_read(page_address(pages[1]), 2) == b"cd"  # type: ignore[arg-type]
        assert "vmap" in m.proc("vmallocinfo")
        vunmap(v)
        assert pages[1].count == 1
        assert mem_read(page_address(pages[0]) + PAGE - 2, 2) == b"ab"  # type: ignore[arg-type]

    run1(m, body)
    assert m.reports == []
    m.check()


# -- /proc/vmallocinfo, meminfo, the checker ---------------------------------------------------------
def test_vmallocinfo_lines_match_the_areas() -> None:
    m = Machine(cpus=1, memory="64M")
    register_io_device(m, 0xFEB00000, 0x20000, name="nic")
    keep: dict[str, int] = {}

    def body() -> None:
        keep["v1"] = vmalloc(5 * PAGE)
        keep["io"] = ioremap(0xFEB00000, 0x20000)
        keep["v2"] = vmalloc_32(PAGE + 1)

    run1(m, body)
    text = m.proc("vmallocinfo").splitlines()
    io = keep["io"]
    assert io % (1 << 18) == 0  # 0x20000 bytes: fls() = 18, so 256 KB aligned (below the 512 KB cap)
    byaddr = sorted([(keep["v1"], 6 * PAGE, "pages=5 vmalloc"), (keep["v2"], 3 * PAGE, "pages=2 vmalloc"),
                     (io, 0x21000, "phys=0xfeb00000 ioremap")])
    assert len(text) == 3
    for ln, (a, size, tail) in zip(text, byaddr):
        assert ln.startswith(f"0x{a:08x}-0x{a + size:08x} {size:7d} body@tests/mm/test_vmalloc.py:")
        assert ln.endswith(tail), ln
    assert areas(m) == [(a, a + size) for a, size, _ in byaddr]
    meminfo = dict((ln.split(":")[0], int(ln.split()[1])) for ln in m.proc("meminfo").splitlines())
    assert meminfo["VmallocUsed"] == (6 * PAGE + 3 * PAGE + 0x21000) >> 10
    end = max(a + size for a, size, _ in byaddr)
    assert meminfo["VmallocChunk"] == (m.vmalloc.end - end) >> 10
    m.check()


def test_ioremap_alignment_rule() -> None:
    m = Machine(cpus=1, memory="64M")
    register_io_device(m, 0xF0000000, 1 << 24, name="bar")
    got: list[int] = []

    def body() -> None:
        vmalloc(PAGE)  # something at VMALLOC_START first
        got.append(ioremap(0xF0000000, 3 * PAGE))  # fls(12K) = 14 -> 16 KB aligned
        got.append(ioremap(0xF0100000, 8 << 20))  # capped at 1 << IOREMAP_MAX_ORDER = 512 KB

    run1(m, body)
    assert got[0] % (1 << 14) == 0 and got[0] != m.vmalloc.start + 2 * PAGE  # the next free page is not aligned
    assert got[1] % (1 << IOREMAP_MAX_ORDER) == 0
    assert [a.flags & VM_IOREMAP for a in m.vmalloc.vmlist][1:] == [VM_IOREMAP, VM_IOREMAP]
    m.check()


def test_checker_names_corruption() -> None:
    m = Machine(cpus=1, memory="64M")
    box: dict[str, int] = {}

    def body() -> None:
        box["a"] = vmalloc(2 * PAGE)

    run1(m, body)
    m.check()
    vpn = box["a"] >> 12
    m.vmalloc.ptes[vpn + 2] = 5  # map the guard page
    with pytest.raises(InconsistentState, match="guard page"):
        m.check()
    del m.vmalloc.ptes[vpn + 2]
    m.vmalloc.ptes[vpn + 1] = m.vmalloc.ptes[vpn]  # one frame at two addresses
    with pytest.raises(InconsistentState, match="page tables do not match"):
        m.check()


def test_python_misuse() -> None:
    m = Machine(cpus=1, memory="64M")
    with pytest.raises(NotInTaskError):
        vmalloc(PAGE)
    with pytest.raises(KmemUsageError, match="overlaps RAM"):
        register_io_device(m, 0x100000, PAGE)
    with pytest.raises(KmemUsageError, match="beyond 4 GB"):
        register_io_device(m, 0xFFFFF000, 2 * PAGE)
    register_io_device(m, 0xFE000000, PAGE)
    with pytest.raises(KmemUsageError, match="overlaps"):
        register_io_device(m, 0xFE000800, PAGE)
    with pytest.raises(KmemUsageError, match="not a booted Machine"):
        register_io_device(object(), 0xFE000000, PAGE)
    errs: list[str] = []

    def body() -> None:
        for bad in (lambda: vmalloc(-1), lambda: vfree("x"), lambda: ioremap(1 << 32, 4)):
            try:
                bad()
            except KmemUsageError as e:
                errs.append(str(e))

    run1(m, body)
    assert len(errs) == 3


# -- ioremap and devices ----------------------------------------------------------------------------------
def test_device_callbacks_through_readl_writel() -> None:
    m = Machine(cpus=1, memory="64M")
    log: list[tuple] = []
    regs = {0x00: 0x1234ABCD, 0x04: 0}

    def rd(off: int, width: int) -> int:
        log.append(("r", off, width))
        return regs.get(off & ~3, 0xDEAD0000 | off) >> (8 * (off & 3))

    def wr(off: int, width: int, value: int) -> None:
        log.append(("w", off, width, value))
        regs[off] = value

    dev = register_io_device(m, 0xFEBF0000, 0x100, rd, wr, "ctrl")
    out: list[int] = []

    def body() -> None:
        io = ioremap_nocache(0xFEBF0000, 0x100)
        out.append(readl(io))
        writel(0xCAFEF00D, io + 4)
        out.append(readl(io + 4))
        writew(0xBEEF, io + 8)
        writeb(0x7F, io + 0xC)
        out.append(readw(io + 2))
        out.append(readb(io + 1))
        iounmap(io)

    run1(m, body)
    assert out == [0x1234ABCD, 0xCAFEF00D, 0x1234, 0xAB]
    assert log == [("r", 0, 4), ("w", 4, 4, 0xCAFEF00D), ("r", 4, 4), ("w", 8, 2, 0xBEEF), ("w", 0xC, 1, 0x7F),
                   ("r", 2, 2), ("r", 1, 1)]
    assert (dev.reads, dev.writes) == (4, 3)
    assert m.reports == []
    m.check()


def test_memcpy_io_uses_dword_then_word_then_byte_accesses() -> None:
    m = Machine(cpus=1, memory="64M")
    widths: list[tuple[str, int, int]] = []
    store = bytearray(64)

    def rd(off: int, w: int) -> int:
        widths.append(("r", off, w))
        return int.from_bytes(store[off:off + w], "little")

    def wr(off: int, w: int, v: int) -> None:
        widths.append(("w", off, w))
        store[off:off + w] = v.to_bytes(w, "little")

    register_io_device(m, 0xFE000000, 64, rd, wr, "fifo")
    fb = register_io_device(m, 0xE0000000, 2 * PAGE, name="framebuffer")  # device RAM
    got: list[bytes] = []

    def body() -> None:
        buf = vmalloc(PAGE)
        mem_write(buf, bytes(range(11)))
        io = ioremap(0xFE000000, 64)
        memcpy_toio(io, buf, 11)
        memcpy_fromio(buf + 100, io, 11)
        got.append(mem_read(buf + 100, 11))
        memset_io(io + 20, 0xEE, 3)
        fbv = ioremap(0xE0000000, 2 * PAGE)
        memset_io(fbv + PAGE - 3, 0x11, 6)  # across the two pages of the BAR
        got.append(mem_read(fbv + PAGE - 4, 8))
        iounmap(io)
        iounmap(fbv)
        vfree(buf)

    run1(m, body)
    assert got[0] == bytes(range(11))
    assert widths[:3] == [("w", 0, 4), ("w", 4, 4), ("w", 8, 2)] and widths[3] == ("w", 10, 1)
    assert widths[4:8] == [("r", 0, 4), ("r", 4, 4), ("r", 8, 2), ("r", 10, 1)]
    assert widths[8:] == [("w", 20, 2), ("w", 22, 1)]
    assert store[20:23] == b"\xee\xee\xee"
    assert got[1] == b"\x00" + b"\x11" * 6 + b"\x00"
    assert fb.peek(PAGE - 3, 6) == b"\x11" * 6
    m.check()


def test_ioremap_refusals_and_iounmap_diagnostic() -> None:
    m = Machine(cpus=1, memory="64M")
    register_io_device(m, 0xFE000000, PAGE, name="dev")
    res: list = []

    def body() -> None:
        res.append(ioremap(0x200000, PAGE))  # RAM the kernel uses: NULL
        res.append(ioremap(0xFD000000, PAGE))  # nothing registered there: NULL
        res.append(ioremap(0xFE000000, 2 * PAGE))  # runs past the device: NULL
        res.append(ioremap(0xFE000000, 0))  # size 0: NULL
        res.append(ioremap(0xA0000, 0x20000))  # the ISA hole: the direct map, never remapped
        iounmap(res[-1])  # a no-op below high_memory
        io = ioremap(0xFE000000, PAGE)
        iounmap(io)
        iounmap(io)  # twice: bad address
        iounmap(m.vmalloc.start + 0x123000)

    run1(m, body)
    assert res == [None, None, None, None, 0xC00A0000]
    bad = [r.lines[0] for r in m.reports_of("bad_iounmap")]
    assert bad == [f"iounmap: bad address {m.vmalloc.start:08x}", f"iounmap: bad address {m.vmalloc.start + 0x123000:08x}"]
    assert m.proc("vmallocinfo") == ""
    m.check()


def test_unregister_refused_while_mapped() -> None:
    m = Machine(cpus=1, memory="64M")
    dev = register_io_device(m, 0xFE000000, PAGE, name="dev")
    box: dict[str, int] = {}
    run1(m, lambda: box.setdefault("io", ioremap(0xFE000000, PAGE)))
    with pytest.raises(KmemUsageError, match="still ioremapped"):
        unregister_io_device(m, dev)
    run1(m, lambda: iounmap(box["io"]))
    unregister_io_device(m, dev)
    assert m.vmalloc.devices == []


# -- concurrency ------------------------------------------------------------------------------------
def _concurrent_scenario(m: Machine) -> None:
    free0 = [0]
    seen: list[list[tuple[int, int]]] = []

    def setup() -> None:
        free0[0] = nr_free_pages()

    m.run(setup)

    def worker(tag: int):
        def fn() -> None:
            held: list[tuple[int, int, bytes]] = []
            for i in range(4):
                n = (1 + (tag + i) % 3) * PAGE - 5 * tag - 1
                a = vmalloc(n)
                assert a is not None
                data = bytes(((tag << 5) + k + i) & 0xFF for k in range(n))
                mem_write(a, data)
                held.append((a, n, data))
                if i % 2:
                    b, bn, bdata = held.pop(0)
                    assert mem_read(b, bn) == bdata, f"task {tag}: area {b:#x} corrupted"
                    vfree(b)
            snap = areas(m)
            seen.append(snap)
            for b, bn, _ in held:  # every live area of this task is listed, guard page included
                assert (b, b + ((bn + PAGE - 1) & ~(PAGE - 1)) + PAGE) in snap
            for b, bn, bdata in held:
                assert mem_read(b, bn) == bdata, f"task {tag}: area {b:#x} corrupted"
                vfree(b)
        fn.__name__ = f"vm{tag}"
        return fn

    m.run(*(worker(t) for t in range(4)))
    for snap in seen:  # at every point observed, the areas were disjoint
        assert all(e1 <= s2 for (_, e1), (s2, _) in zip(snap, snap[1:]))
    assert m.reports == []
    assert m.proc("vmallocinfo") == ""
    drained = [0]

    def finish() -> None:
        drained[0] = nr_free_pages()

    m.run(finish)
    assert drained[0] == free0[0]


def test_concurrent_vmalloc_vfree_under_50_seeds() -> None:
    n = explore(_concurrent_scenario, seeds=range(25), policies=("random", "pct"), cpus=3, memory="64M")
    assert n == 50


def test_concurrent_vmalloc_vfree_free_running() -> None:
    explore(_concurrent_scenario, seeds=range(1), policies=("free",), cpus=3, memory="64M")
