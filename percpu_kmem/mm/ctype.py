"""C types for simulated memory: the i386 ABI's scalars, arrays and structs.

Per-CPU variables (DEFINE_PER_CPU, alloc_percpu) and any simulated struct are laid out
with these: ``size`` (sizeof), ``align`` (the alignment inside a struct) and
``alignof`` (GCC's ``__alignof__``, what alloc_percpu() passes), and values are real
little-endian bytes (``encode``/``decode``).

Kept: i386 ILP32 sizes and signedness (plain char is signed; long is 4 bytes; long long
is 8 bytes, aligned to 4 inside a struct but ``__alignof__`` 8), struct layout (each
field at its alignment, the size rounded up to the largest), stores that wrap modulo
2**bits as a C conversion does, ``c_int * 4`` for ``int[4]`` as in ctypes.
Simplified: integers only (no float, pointer or bit-field types); a char array's value
is ``bytes``, other arrays' a list, a struct's a dict.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any, Final

from ..runtime.errors import KmemUsageError


class CType(ABC):
    """A C type: ``size`` (sizeof), ``align`` (alignment inside a struct, i386 ABI) and
    ``alignof`` (GCC's ``__alignof__``, what alloc_percpu() passes). Values are real
    little-endian bytes; ``encode``/``decode`` convert Python values."""

    __slots__ = ("name", "size", "align", "alignof")

    def __init__(self, name: str, size: int, align: int, alignof: int) -> None:
        self.name = name
        self.size = size
        self.align = align
        self.alignof = alignof

    @abstractmethod
    def encode(self, value: Any) -> bytes:
        """The value's bytes (``size`` of them, little-endian)."""

    @abstractmethod
    def decode(self, data: bytes) -> Any:
        """The Python value of ``size`` bytes."""

    def zero(self) -> Any:
        return self.decode(bytes(self.size))

    def __mul__(self, n: int) -> CArray:
        """``c_int * 4`` is ``int[4]``, as in ctypes."""
        return CArray(self, n)

    def __repr__(self) -> str:
        return f"<C type {self.name}: size {self.size}, align {self.align}>"


class CScalar(CType):
    """An integer type; stores wrap modulo 2**bits as a C conversion does."""

    __slots__ = ("signed", "bits")

    def __init__(self, name: str, size: int, signed: bool, align: int | None = None) -> None:
        super().__init__(name, size, align or size, size)
        self.signed = signed
        self.bits = size * 8

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, int):
            raise KmemUsageError(f"a {self.name} holds an int, got {value!r}")
        return (value & ((1 << self.bits) - 1)).to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        return int.from_bytes(data, "little", signed=self.signed)


class CArray(CType):
    """``elem[length]``; a char array's value is ``bytes``, other arrays' a list."""

    __slots__ = ("elem", "length")

    def __init__(self, elem: CType, length: int) -> None:
        if not isinstance(elem, CType):
            raise KmemUsageError(f"array element type must be a C type, got {elem!r}")
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise KmemUsageError(f"array length must be an int >= 1, got {length!r}")
        super().__init__(f"{elem.name}[{length}]", elem.size * length, elem.align, elem.alignof)
        self.elem = elem
        self.length = length

    @property
    def is_chars(self) -> bool:
        return isinstance(self.elem, CScalar) and self.elem.size == 1

    def encode(self, value: Any) -> bytes:
        if self.is_chars and isinstance(value, (bytes, bytearray)):
            if len(value) > self.length:
                raise KmemUsageError(f"{len(value)} bytes do not fit in a {self.name}")
            return bytes(value).ljust(self.size, b"\0")
        if not isinstance(value, (list, tuple)) or len(value) > self.length:
            raise KmemUsageError(f"a {self.name} takes a list of at most {self.length} values"
                                 f"{' or bytes' if self.is_chars else ''}, got {value!r}")
        parts = [self.elem.encode(v) for v in value]
        return b"".join(parts).ljust(self.size, b"\0")

    def decode(self, data: bytes) -> Any:
        if self.is_chars:
            return bytes(data)
        s = self.elem.size
        return [self.elem.decode(data[i * s:(i + 1) * s]) for i in range(self.length)]


class CStruct(CType):
    """A struct laid out with i386 rules: each field at its alignment, the size
    rounded up to the largest field alignment. Its value is a dict."""

    __slots__ = ("fields", "offsets")

    def __init__(self, name: str, fields: Iterable[tuple[str, Any]]) -> None:
        if not isinstance(name, str) or not name:
            raise KmemUsageError(f"c_struct needs a name, got {name!r}")
        if isinstance(fields, (str, bytes)) or not isinstance(fields, Iterable):
            raise KmemUsageError(f"c_struct: struct {name}: fields(={fields!r}) must be a list of "
                                 "(name, type) pairs")
        self.fields: dict[str, CType] = {}
        self.offsets: dict[str, int] = {}
        off, align = 0, 1
        for item in fields:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise KmemUsageError(f"c_struct: struct {name}: a field is a (name, type) pair, got {item!r}")
            fname, ftype = item[0], ctype_of(item[1], f"c_struct: struct {name} field {item[0]!r}")
            if fname in self.fields:
                raise KmemUsageError(f"c_struct: struct {name}: duplicate member {fname!r}")
            off = (off + ftype.align - 1) & -ftype.align
            self.fields[fname] = ftype
            self.offsets[fname] = off
            off += ftype.size
            align = max(align, ftype.align)
        if not self.fields:
            raise KmemUsageError(f"c_struct: struct {name} has no fields")
        super().__init__(f"struct {name}", (off + align - 1) & -align, align, align)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, dict):
            raise KmemUsageError(f"a {self.name} takes a dict of its fields, got {value!r}")
        unknown = set(value) - set(self.fields)
        if unknown:
            raise KmemUsageError(f"{self.name} has no member {sorted(unknown)[0]!r} "
                                 f"(members: {', '.join(self.fields)})")
        buf = bytearray(self.size)
        for fname, v in value.items():
            off = self.offsets[fname]
            enc = self.fields[fname].encode(v)
            buf[off:off + len(enc)] = enc
        return bytes(buf)

    def decode(self, data: bytes) -> dict[str, Any]:
        return {f: t.decode(data[self.offsets[f]:self.offsets[f] + t.size]) for f, t in self.fields.items()}


c_char: Final = CScalar("char", 1, True)  # plain char is signed on i386
c_uchar: Final = CScalar("unsigned char", 1, False)
c_short: Final = CScalar("short", 2, True)
c_ushort: Final = CScalar("unsigned short", 2, False)
c_int: Final = CScalar("int", 4, True)
c_uint: Final = CScalar("unsigned int", 4, False)
c_long: Final = CScalar("long", 4, True)
c_ulong: Final = CScalar("unsigned long", 4, False)
c_longlong: Final = CScalar("long long", 8, True, align=4)
c_ulonglong: Final = CScalar("unsigned long long", 8, False, align=4)
c_longlong.alignof = c_ulonglong.alignof = 8  # GCC's __alignof__(long long) on i386
s8, u8, s16, u16, s32, u32, s64, u64 = (c_char, c_uchar, c_short, c_ushort, c_int, c_uint,
                                        c_longlong, c_ulonglong)


def c_struct(name: str, fields: Iterable[tuple[str, Any]]) -> CStruct:
    """``struct name { ... }``: fields are (name, type) pairs, types as DEFINE_PER_CPU takes."""
    return CStruct(name, fields)


def ctype_of(t: Any, what: str) -> CType:
    """The C type for ``t``: a C type as is, Python ``int`` as ``long`` (4 bytes, signed)."""
    if isinstance(t, CType):
        return t
    if t is int:
        return c_long
    raise KmemUsageError(f"{what}: type must be a C type (c_int, c_long, c_ulong, u64, c_char * 16, "
                         f"c_struct(...)) or int, got {t!r}")


__all__ = ["CType", "CScalar", "CArray", "CStruct", "c_char", "c_uchar", "c_short", "c_ushort", "c_int", "c_uint",
           "c_long", "c_ulong", "c_longlong", "c_ulonglong", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64",
           "c_struct", "ctype_of"]
