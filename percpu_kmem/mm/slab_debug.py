"""Slab debugging: poison, red zones, the last-user word and the reports they make.

Models mm/slab.c's ``#if DEBUG`` code of 2.6.11 (CONFIG_DEBUG_SLAB, or per cache with
SLAB_POISON, SLAB_RED_ZONE, SLAB_STORE_USER): poison checked when an object is handed
out, red zones checked at free and when a slab is destroyed, double frees, invalid and
wrong-cache frees, the kmalloc red zone after the requested size (today's SLUB). Each
report opens with today's SLUB lines (the ``====`` rule, "BUG <cache> (Not tainted):
<what>", the ``----`` rule) and goes on with 2.6's SLAB lines, which developers also
search for.

Kept: the poison and red-zone values of include/linux/poison.h, where 2.6.11 puts each
debug word, what each check looks at; SLAB_DEBUG_INITIAL (each free calls the constructor
with SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_VERIFY, to check the object is back in its
constructed state); a cache without red zones (size-4096 and up under slab_debug) keeps
the always-on hardened checks and 2.6.11's free_block() double-free test ("slab: double
free detected in cache"), made at the free. Simplified: the debug words live in simulated
memory but the bookkeeping (which object was requested at which size) is Python-side;
reports are made through the machine's report machinery, so ``on_bug`` decides what
they do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ..runtime.report import relpath
from ..runtime.task import current_task
from .context import mm_caller_frame
from .debug import POISON_END, POISON_FREE, POISON_INUSE, RED_ACTIVE, RED_INACTIVE
from .gfp import GFP_WAIT
from .kasan import SLAB_KASAN
from .kmemleak import SLAB_KMEMLEAK
from .layout import PAGE_OFFSET, PAGE_SHIFT, PAGE_SIZE
from .slab_geometry import (
    BYTES_PER_WORD,
    SLAB_CTOR_ATOMIC,
    SLAB_CTOR_CONSTRUCTOR,
    SLAB_CTOR_VERIFY,
    SLAB_DEBUG_INITIAL,
    SLAB_POISON,
    SLAB_RED_ZONE,
    SLAB_STORE_USER,
)

if TYPE_CHECKING:
    from .slab import SlabAllocator, kmem_cache_t

#: SLUB_RED_ACTIVE: the bytes between a kmalloc request and the end of its object (slab debugging)
KMALLOC_RED_ACTIVE: Final = 0xCC
#: the rules around a SLUB report's "BUG <cache> (<taint>): <what>" line (mm/slub.c slab_bug)
SLUB_RULE_TOP: Final = "=" * 77
SLUB_RULE_BOTTOM: Final = "-" * 77


class SlabDebug:
    """Poison, redzones and the last-user word of debugged caches, in simulated memory."""

    def __init__(self, sa: SlabAllocator) -> None:
        self.sa = sa
        self.mem = sa.mem
        self.callers: list[str] = ["<none>"]
        self._caller_ids: dict[str, int] = {}
        self._by_frame: dict[Any, int] = {}
        #: kmalloc objects of red-zoned caches whose request is shorter than the object:
        #: object address -> requested size (bytes from there to the end are red zone)
        self.kmalloc_req: dict[int, int] = {}

    # layout helpers: raw is the start of the object's slot
    def _word(self, addr: int) -> int:
        return int.from_bytes(self.mem.read(addr - PAGE_OFFSET, 4), "little")

    def _set_word(self, addr: int, value: int) -> None:
        self.mem.write(addr - PAGE_OFFSET, value.to_bytes(4, "little"))

    @staticmethod
    def redzone1(c: kmem_cache_t, raw: int) -> int:
        return raw + c.dbghead - BYTES_PER_WORD

    @staticmethod
    def redzone2(c: kmem_cache_t, raw: int) -> int:
        if c.flags & SLAB_STORE_USER:
            return raw + c.objsize - 2 * BYTES_PER_WORD
        return raw + c.objsize - BYTES_PER_WORD

    @staticmethod
    def userword(c: kmem_cache_t, raw: int) -> int:
        return raw + c.objsize - BYTES_PER_WORD

    def poison(self, c: kmem_cache_t, raw: int, val: int) -> None:
        n = c.reallen
        self.mem.write(raw + c.dbghead - PAGE_OFFSET, bytes((val,)) * (n - 1) + bytes((POISON_END,)))

    def caller_id(self) -> int:
        """The simulated caller outside the allocator, as a small id (the "last user" word).

        Looked up by (code object, line) first: building the site string costs
        several os.path calls, and a debugged alloc/free pair does this twice.
        """
        f = mm_caller_frame()
        key = None if f is None else (f.f_code, f.f_lineno)
        cid = self._by_frame.get(key)
        if cid is not None:
            return cid
        site = "<unknown>" if f is None else f"{f.f_code.co_name}+{relpath(f.f_code.co_filename)}:{f.f_lineno}"
        cid = self._caller_ids.get(site)
        if cid is None:
            cid = len(self.callers)
            self.callers.append(site)
            self._caller_ids[site] = cid
        self._by_frame[key] = cid
        return cid

    def init_obj(self, c: kmem_cache_t, raw: int) -> None:
        if c.flags & SLAB_POISON:
            self.poison(c, raw, POISON_FREE)
        if c.flags & SLAB_STORE_USER:
            self._set_word(self.userword(c, raw), 0)
        if c.flags & SLAB_RED_ZONE:
            self._set_word(self.redzone1(c, raw), RED_INACTIVE)
            self._set_word(self.redzone2(c, raw), RED_INACTIVE)

    def check_ctor_redzones(self, c: kmem_cache_t, raw: int) -> None:
        if self._word(self.redzone2(c, raw)) != RED_INACTIVE:
            self.slab_error(c, "cache_init_objs", "constructor overwrote the end of an object", raw)
        if self._word(self.redzone1(c, raw)) != RED_INACTIVE:
            self.slab_error(c, "cache_init_objs", "constructor overwrote the start of an object", raw)

    def slab_error(self, c: kmem_cache_t, func: str, msg: str, raw: int) -> None:
        c.errors += 1
        self.sa.m.report("slab_error", [f"slab error in {func}(): cache `{c.name}': {msg}"],
                         site=f"{c.name}:{func}:{raw:#x}")

    def _poison_mismatch(self, c: kmem_cache_t, raw: int) -> tuple[int, int, bytes] | None:
        start = raw + c.dbghead
        data = self.mem.read(start - PAGE_OFFSET, c.reallen)
        want = bytes((POISON_FREE,)) * (c.reallen - 1) + bytes((POISON_END,))
        if data == want:
            return None
        first = next(i for i in range(len(data)) if data[i] != want[i])
        last = max(i for i in range(len(data)) if data[i] != want[i])
        return first, last, data

    def check_poison(self, c: kmem_cache_t, raw: int, when: str) -> bool:
        """check_poison_obj: a freed object's bytes must still be POISON_FREE. True if intact."""
        bad = self._poison_mismatch(c, raw)
        if bad is None:
            return True
        first, last, data = bad
        start = raw + c.dbghead
        want = POISON_FREE if first < c.reallen - 1 else POISON_END
        lines = [*slub_bug(c, "Poison overwritten"),
                 f"INFO: 0x{start + first:08x}-0x{start + last:08x} @offset={first}. "
                 f"First byte 0x{data[first]:x} instead of 0x{want:x}",
                 f"Slab corruption: start={start:08x}, len={c.reallen}"]
        lines += self._objinfo(c, raw, data, 0)
        # the lines holding a mismatch, each once, at most six (2.6.11: "Limit to 5 lines",
        # tested after the sixth)
        want_all = bytes((POISON_FREE,)) * (c.reallen - 1) + bytes((POISON_END,))
        rows = [r for r in range(first & ~15, last + 1, 16) if data[r:r + 16] != want_all[r:r + 16]]
        lines += [_dump_line(data, r) for r in rows[:6]]
        # the neighbouring objects, as check_poison_obj prints them
        slab = self.sa.slab_of.get(self.sa.mem.private[(raw - PAGE_OFFSET) >> PAGE_SHIFT])
        if slab is not None:
            objnr = (raw - slab.s_mem) // c.objsize
            for nr, what in ((objnr - 1, "Prev"), (objnr + 1, "Next")):
                if 0 <= nr < c.num:
                    nraw = slab.s_mem + nr * c.objsize
                    lines.append(f"{what} obj: start={nraw + c.dbghead:08x}, len={c.reallen}")
                    ndata = self.mem.read(nraw + c.dbghead - PAGE_OFFSET, min(c.reallen, 32))
                    lines += self._objinfo(c, nraw, ndata, 2)
        lines.append(f"detected at {when}")
        c.errors += 1
        self.sa.m.report("slab_poison", lines, site=f"{c.name}:poison:{raw:#x}",
                         extra={"cache": c.name, "object": start})
        return False

    def _objinfo(self, c: kmem_cache_t, raw: int, data: bytes, nlines: int) -> list[str]:
        """print_objinfo(): the red zone words, the last user, ``nlines`` lines of the object."""
        out: list[str] = []
        if c.flags & SLAB_RED_ZONE:
            out.append(f"Redzone: 0x{self._word(self.redzone1(c, raw)):x}/0x{self._word(self.redzone2(c, raw)):x}.")
        if c.flags & SLAB_STORE_USER:
            uid = self._word(self.userword(c, raw))
            out.append(f"Last user: [<{uid:08x}>]({self.callers[uid] if uid < len(self.callers) else '?'})")
        out += [_dump_line(data, r) for r in range(0, min(len(data), 16 * nlines), 16)]
        return out

    def after_alloc(self, c: kmem_cache_t, raw: int, flags: int, size: int = -1) -> int:
        """cache_alloc_debugcheck_after: check poison, mark redzones active, note the user.

        ``size`` is the kmalloc request (-1 for kmem_cache_alloc): with red zones, the
        bytes from it to the end of the object become red zone too, as SLUB's
        kmalloc redzone does (filled with SLUB_RED_ACTIVE, checked at free).
        """
        hooks = c.debug & (SLAB_KASAN | SLAB_KMEMLEAK)
        if hooks:
            self._alloc_hooks(c, raw + c.dbghead, size, hooks)
        if c.flags & SLAB_POISON:
            self.check_poison(c, raw, "allocation (a write to the object after it was freed)")
            self.poison(c, raw, POISON_INUSE)
        if c.flags & SLAB_STORE_USER:
            self._set_word(self.userword(c, raw), self.caller_id())
        if c.flags & SLAB_RED_ZONE:
            r1, r2 = self._word(self.redzone1(c, raw)), self._word(self.redzone2(c, raw))
            if r1 != RED_INACTIVE or r2 != RED_INACTIVE:
                self.slab_error(c, "cache_alloc_debugcheck_after",
                                "double free, or memory outside object was overwritten", raw)
                self.sa.m.printk(f"{raw + c.dbghead:08x}: redzone 1: 0x{r1:x}, redzone 2: 0x{r2:x}.", "ERROR")
            self._set_word(self.redzone1(c, raw), RED_ACTIVE)
            self._set_word(self.redzone2(c, raw), RED_ACTIVE)
        objp = raw + c.dbghead
        if 0 <= size < c.reallen and c.flags & SLAB_RED_ZONE:
            self.mem.write(objp + size - PAGE_OFFSET, bytes((KMALLOC_RED_ACTIVE,)) * (c.reallen - size))
            self.kmalloc_req[objp] = size
        if c.ctor is not None and c.flags & SLAB_POISON:
            c.ctor(objp, c, SLAB_CTOR_CONSTRUCTOR | (0 if flags & GFP_WAIT else SLAB_CTOR_ATOMIC))
        return objp

    def before_free(self, c: kmem_cache_t, objp: int, func: str) -> int | None:
        """cache_free_debugcheck: the raw slot address, or None when the free must be refused."""
        sa = self.sa
        hooks = c.debug & (SLAB_KASAN | SLAB_KMEMLEAK)
        if hooks:
            if hooks & SLAB_KASAN:  # KASAN's words for a bad free, and only KASAN's
                if not sa.m.kasan.slab_free_check(c, objp, func):  # type: ignore[union-attr]
                    return None
            elif not c.flags & SLAB_RED_ZONE and not self._free_ok_without_redzone(
                    c, objp, func, bool(c.debug & ~(SLAB_KASAN | SLAB_KMEMLEAK))):
                return None
            if hooks & SLAB_KMEMLEAK:
                sa.m.kmemleak.free(objp)  # type: ignore[union-attr]
            if not c.debug & ~(SLAB_KASAN | SLAB_KMEMLEAK):
                return self._free_hooks(c, objp, objp - c.dbghead, hooks)
        elif not c.flags & SLAB_RED_ZONE and not self._free_ok_without_redzone(c, objp, func, True):
            return None
        raw = objp - c.dbghead
        slab = sa.slab_of.get(sa.mem.private[(objp - PAGE_OFFSET) >> PAGE_SHIFT])
        off = raw - slab.s_mem if slab is not None else -1
        if slab is None or off < 0 or off % c.objsize or off // c.objsize >= c.num:
            c.errors += 1
            sa.m.report("slab_invalid_free", [
                *slub_bug(c, f"Invalid object pointer 0x{objp:08x}"),
                f"{func}: 0x{objp:08x} is not the start of an object of cache `{c.name}'"],
                site=f"{c.name}:invalid:{objp:#x}", extra={"cache": c.name, "object": objp})
            return None
        if c.flags & SLAB_RED_ZONE:
            r1, r2 = self._word(self.redzone1(c, raw)), self._word(self.redzone2(c, raw))
            if r1 != RED_ACTIVE or r2 != RED_ACTIVE:
                self._redzone_report(c, raw, objp, r1, r2, func)
                if r1 == RED_INACTIVE and r2 == RED_INACTIVE:
                    return None  # already free: refuse, the object stays where it is
            self._set_word(self.redzone1(c, raw), RED_INACTIVE)
            self._set_word(self.redzone2(c, raw), RED_INACTIVE)
            if self.kmalloc_req:
                size = self.kmalloc_req.pop(objp, -1)
                if size >= 0:
                    self._check_kmalloc_redzone(c, objp, size, func)
        if c.flags & SLAB_STORE_USER:
            self._set_word(self.userword(c, raw), self.caller_id())
        if c.flags & SLAB_DEBUG_INITIAL and c.ctor is not None:  # the object must be as constructed
            c.ctor(objp, c, SLAB_CTOR_CONSTRUCTOR | SLAB_CTOR_VERIFY)
        if c.dtor is not None and c.flags & SLAB_POISON:
            c.dtor(objp, c, 0)
        if c.flags & SLAB_POISON:
            self.poison(c, raw, POISON_FREE)
        return self._free_hooks(c, objp, raw, hooks) if hooks else raw

    def _free_ok_without_redzone(self, c: kmem_cache_t, objp: int, func: str, debugged: bool) -> bool:
        """The free checks of a cache with no red zone to tell a double free (a poison-only
        cache: size-4096 and up under slab_debug; or one on the debug path for kmemleak's
        hook alone): the always-on hardened checks, then, if the cache is debugged, 2.6.11's
        free_block() test under DEBUG (the object must not be free already: "slab: double
        free detected in cache '%s', objp %p."), made at the free instead of when the
        per-CPU array drains, and the free refused. False after a report."""
        if not c.hardened_free_ok(current_task(), objp, func):
            return False
        if not debugged:
            return True
        sa = self.sa
        slab = sa.slab_of.get(sa.mem.private[(objp - PAGE_OFFSET) >> PAGE_SHIFT])
        raw = objp - c.dbghead
        free = slab is not None and (raw - slab.s_mem) // c.objsize in slab.free
        if not free:
            free = any(raw in cc.loaded or raw in cc.previous for cc in c.cpu) \
                or any(raw in mag for mag in c.__dict__.get("depot_full", ()))
        if not free:
            return True
        c.errors += 1
        sa.m.report("slab_double_free", [
            *slub_bug(c, "Object already free"),
            f"slab: double free detected in cache '{c.name}', objp {objp:08x}."],
            site=f"{c.name}:slab_double_free:{objp:#x}", extra={"cache": c.name, "object": objp})
        return False

    def _alloc_hooks(self, c: kmem_cache_t, objp: int, size: int, hooks: int) -> None:
        """kasan_slab_alloc / kmemleak_alloc for an object handed out (``size``: the kmalloc
        request, -1 for kmem_cache_alloc)."""
        m = self.sa.m
        if hooks & SLAB_KASAN:
            m.kasan.slab_alloc(c, objp, size)  # type: ignore[union-attr]
        if hooks & SLAB_KMEMLEAK:
            m.kmemleak.alloc(objp, c.object_size, "slab")  # type: ignore[union-attr]  # s->object_size

    def _free_hooks(self, c: kmem_cache_t, objp: int, raw: int, hooks: int) -> int:
        """kasan_slab_free (poison, track, quarantine): the slot to put on the magazine."""
        if hooks & SLAB_KASAN:
            return self.sa.m.kasan.slab_free(c, objp, raw)  # type: ignore[union-attr]
        return raw

    def _redzone_report(self, c: kmem_cache_t, raw: int, objp: int, r1: int, r2: int, func: str) -> None:
        c.errors += 1
        if r1 == RED_INACTIVE and r2 == RED_INACTIVE:
            kind, what = "slab_double_free", "Object already free"
        elif r1 != RED_ACTIVE:
            kind, what = "slab_redzone", "Left Redzone overwritten"
        else:
            kind, what = "slab_redzone", "Right Redzone overwritten"
        self.sa.m.report(kind, [
            *slub_bug(c, what),
            f"INFO: Object 0x{objp:08x} @offset={objp - PAGE_OFFSET & (PAGE_SIZE - 1)} size={c.reallen}",
            f"slab error in cache_free_debugcheck(): cache `{c.name}': double free, or memory outside object "
            "was overwritten",
            f"{objp:08x}: redzone 1: 0x{r1:x}, redzone 2: 0x{r2:x}.",
            f"freed by {func}()"], site=f"{c.name}:{kind}:{objp:#x}", extra={"cache": c.name, "object": objp})

    def _check_kmalloc_redzone(self, c: kmem_cache_t, objp: int, size: int, func: str) -> None:
        """The bytes after a kmalloc request must still be SLUB_RED_ACTIVE (the free goes on)."""
        n = c.reallen - size
        data = self.mem.read(objp + size - PAGE_OFFSET, n)
        if data == bytes((KMALLOC_RED_ACTIVE,)) * n:
            return
        first = next(i for i in range(n) if data[i] != KMALLOC_RED_ACTIVE)
        last = max(i for i in range(n) if data[i] != KMALLOC_RED_ACTIVE)
        c.errors += 1
        self.sa.m.report("slab_redzone", [
            *slub_bug(c, "kmalloc Redzone overwritten"),
            f"INFO: 0x{objp + size + first:08x}-0x{objp + size + last:08x} @offset={size + first}. "
            f"First byte 0x{data[first]:x} instead of 0x{KMALLOC_RED_ACTIVE:x}",
            f"INFO: Object 0x{objp:08x} @offset={objp - PAGE_OFFSET & (PAGE_SIZE - 1)} size={c.reallen}",
            f"kmalloc({size}) object of cache `{c.name}': bytes {size}..{c.reallen - 1} are red zone",
            f"freed by {func}()"], site=f"{c.name}:kmalloc_redzone:{objp:#x}",
            extra={"cache": c.name, "object": objp})

    def check_freed_at_destroy(self, c: kmem_cache_t, raw: int) -> None:
        """slab_destroy under DEBUG: every object of the slab is free; its poison and both
        red zone words must be as the free left them."""
        if c.debug & SLAB_KASAN:
            self.sa.m.kasan.forget(raw + c.dbghead)  # type: ignore[union-attr]
        if c.flags & SLAB_POISON:
            self.check_poison(c, raw, "slab destruction (a write to the object after it was freed)")
        if c.flags & SLAB_RED_ZONE:
            r1, r2 = self._word(self.redzone1(c, raw)), self._word(self.redzone2(c, raw))
            objp = raw + c.dbghead
            for word, what, where in ((r1, "Left Redzone overwritten", "start"),
                                      (r2, "Right Redzone overwritten", "end")):
                if word != RED_INACTIVE:
                    c.errors += 1
                    self.sa.m.report("slab_redzone", [
                        *slub_bug(c, what),
                        f"INFO: Object 0x{objp:08x} @offset={objp - PAGE_OFFSET & (PAGE_SIZE - 1)} "
                        f"size={c.reallen}",
                        f"slab error in slab_destroy(): cache `{c.name}': {where} of a freed object "
                        "was overwritten",
                        f"{objp:08x}: redzone 1: 0x{r1:x}, redzone 2: 0x{r2:x}."],
                        site=f"{c.name}:destroy_redzone:{where}:{objp:#x}",
                        extra={"cache": c.name, "object": objp})


def _dump_line(data: bytes, offset: int) -> str:
    """dump_line(): "%03x:" and up to 16 bytes " %02x"."""
    return f"{offset:03x}:" + "".join(f" {b:02x}" for b in data[offset:offset + 16])


def slub_bug(c: kmem_cache_t, what: str) -> list[str]:
    """The head of a SLUB report (mm/slub.c slab_bug): the rules, the BUG line, a blank line."""
    return [SLUB_RULE_TOP, f"BUG {c.name} (Not tainted): {what}", SLUB_RULE_BOTTOM, ""]


__all__ = ["SlabDebug", "slub_bug", "KMALLOC_RED_ACTIVE", "SLUB_RULE_TOP", "SLUB_RULE_BOTTOM"]
