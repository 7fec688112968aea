"""Snapshot: compile an object graph into a function that builds a fresh copy of it.

boot.py uses it to boot a machine from a template (the state a boot from scratch made,
copied) instead of booting it again: :func:`compile_graph` walks the graph once and writes
one straight-line Python function that allocates every mutable object of it and fills
it in, so a copy costs about what the stores cost, not what the code that first built the
state cost (and much less than ``copy.deepcopy`` or ``pickle``, which pay a generic
dispatch per object).

What a copy is:

- every mutable object of the graph is new (no object is shared with the original or with
  another copy); the aliasing of the original is kept (an object reached twice is one
  object in the copy; cycles are fine);
- immutable values (ints, strings, bytes, None, tuples and frozensets of immutables,
  frozen dataclasses of immutables, classes, functions without a closure, code, modules,
  enum members) are shared;
- the *externals* (objects the caller names, e.g. the machine and its CPUs) are not
  copied: the copy refers to the objects given in their place at each call;
- instances keep their attribute order (so their dicts are what ``__init__`` makes and
  CPython's specialised attribute loads work on them as on the originals); ``__slots__``
  are copied too; a bound method binds the copy of its object, a closure gets new cells.
- containers: list, dict, OrderedDict, set, bytearray, array.array; ``threading.Lock`` /
  ``RLock`` objects become new, unlocked locks (a held one is refused).

Anything else (a weak reference, a generator, a random.Random, an instance of a builtin
or C type or of a subclass of one, an object of a class with its own copying or pickling,
a lock that is held, a chain of objects too deep to walk) raises :class:`Unsupported`:
the caller then keeps building the state from scratch. Fields are stored as they are
(``object.__setattr__`` where a class has its own ``__setattr__``), not through setters.

The function written has three parts: it makes every mutable object, empty (so cycles
need nothing special); then the objects made from others (bound methods, closures,
tuples holding mutable objects, locks); then it fills the objects in: an instance's dict
in one ``update`` from a private dict of its immutable fields (its mutable ones set after,
over placeholders, which keeps the order) when the original had a dict object of its own,
else field by field, so that the copy keeps its attributes in the object itself as the
original did (CPython's fastest attribute loads need that); a list or dict with one call. A container of
immutables that only one object refers to is copied where it is used, in one call from a
private constant (``list(_s3)``, ``_s4.copy()``, ``_s5[:]`` for an array).
"""

from __future__ import annotations

import _thread
import array
import enum
import gc
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

#: shared as they are: values that cannot change
_IMMUTABLE: Final = (int, float, complex, str, bytes, bool, type(None), range, type, types.ModuleType,
                     types.BuiltinFunctionType, types.CodeType, types.MethodDescriptorType,
                     types.WrapperDescriptorType, enum.Enum, type(Ellipsis))
_ATOMIC: Final = frozenset({int, float, str, bytes, bool, type(None), complex})
_LOCK_TYPES: Final = {_thread.LockType: _thread.allocate_lock, type(_thread.RLock()): _thread.RLock}
_CONTAINERS: Final = (list, dict, OrderedDict, set)
_INLINE_LITERALS: Final = (int, str, bool, type(None))
_HEAPTYPE: Final = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement (or type())


class Unsupported(Exception):
    """The graph holds something :func:`compile_graph` does not know how to copy."""


def immutable(o: Any) -> bool:
    """Is ``o`` a value a copy shares (it cannot change)?"""
    t = type(o)
    if t in _ATOMIC:
        return True
    if t in (tuple, frozenset):
        return all(immutable(x) for x in o)
    if t is types.FunctionType:
        return o.__closure__ is None
    params = getattr(t, "__dataclass_params__", None)
    if params is not None and params.frozen:  # a frozen dataclass of immutables (a cost table)
        return all(immutable(getattr(o, f)) for f in t.__dataclass_fields__)
    return isinstance(o, _IMMUTABLE)


def _plain_setattr(cls: type, name: str) -> bool:
    """Does ``obj.name = v`` store the value as it is (no custom __setattr__; the name is a
    slot or no data descriptor of the class)?"""
    if cls.__setattr__ is not object.__setattr__:
        return False
    for k in cls.__mro__:
        if name in k.__dict__:
            d = k.__dict__[name]
            return type(d) is types.MemberDescriptorType or not hasattr(type(d), "__set__")
    return True


def _plain_class(cls: type) -> bool:
    """Is an instance of ``cls`` all in its fields, so that ``object.__new__(cls)`` and the
    fields make a copy? Not for builtin and C types and their subclasses (a list subclass
    holds items), nor for classes with their own copying or pickling."""
    if any(k is not object and not k.__flags__ & _HEAPTYPE for k in cls.__mro__) \
            or cls.__module__ in ("builtins", "weakref", "_weakrefset", "random", "threading", "collections") \
            or cls.__reduce_ex__ is not object.__reduce_ex__ or cls.__reduce__ is not object.__reduce__ \
            or any(hasattr(cls, n) for n in ("__copy__", "__deepcopy__", "__setstate__", "__getnewargs__")):
        return False
    try:
        object.__new__(cls)
    except TypeError:
        return False
    return True


def _slots_of(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for k in reversed(cls.__mro__):
        s = k.__dict__.get("__slots__", ())
        for n in ([s] if isinstance(s, str) else s):
            if n not in ("__dict__", "__weakref__") and n not in names:
                names.append(n)
    return tuple(names)


class _Compiler:
    def __init__(self, externals: Mapping[int, int]) -> None:
        self.externals = externals
        self.consts: dict[int, str] = {}  # id -> name of a constant (shared value, or a private source)
        self.namespace: dict[str, Any] = {"_new": object.__new__, "_OD": OrderedDict, "_cell": types.CellType,
                                          "_method": types.MethodType, "_function": types.FunctionType,
                                          "_oset": object.__setattr__}
        self.keep: list[Any] = []  # keeps every walked object alive while compiling (ids stay unique)
        self.var: dict[int, str] = {}  # id -> local variable holding its copy
        self.alloc: list[str] = []  # phase 1: create every mutable object (empty)
        self.build: list[str] = []  # phase 1b: objects made from others (methods, closures, tuples, locks)
        self.fill: list[str] = []  # phase 2: fill them in
        self.refs: dict[int, int] = {}
        self.used: dict[int, int] = {}  # external's index -> its place in rebuild's E
        #: per class: may it be copied (_plain_class), its slots, and per field whether a plain
        #: store sets it (_plain_setattr): worked out once per class
        self.classes: dict[type, tuple[bool, tuple[str, ...]]] = {}
        self.setattr_ok: dict[tuple[type, str], bool] = {}
        #: per instance: did it have a dict object of its own (see _fields)
        self.dict_backed: dict[int, bool] = {}

    # -- names ------------------------------------------------------------------------------
    def const(self, o: Any) -> str:
        """An expression for an immutable value (a literal, or a constant of the namespace)."""
        t = type(o)
        if t in _INLINE_LITERALS:
            return repr(o)
        name = self.consts.get(id(o))
        if name is None:
            name = self.consts[id(o)] = f"_k{len(self.consts)}"
            self.namespace[name] = o
            self.keep.append(o)
        return name

    def source(self, o: Any) -> str:
        """A private constant: a copy of ``o`` the generated code only ever copies from."""
        name = f"_s{len(self.namespace)}"
        self.namespace[name] = o
        return name

    # -- the walk ---------------------------------------------------------------------------
    def count(self, root: Any) -> None:
        """How often each mutable object is referred to (an object referred to once, holding
        only immutables, is copied inline where it is used)."""
        refs = self.refs
        stack = [root]
        while stack:
            o = stack.pop()
            i = id(o)
            if i in self.externals or immutable(o):
                continue
            n = refs.get(i, 0)
            refs[i] = n + 1
            if n:
                continue
            self.keep.append(o)
            stack.extend(self.children(o))

    def children(self, o: Any) -> list[Any]:
        t = type(o)
        if t is list or t is set or t is tuple or t is frozenset:
            return list(o)
        if t is dict or t is OrderedDict:
            for k in o:
                if not (immutable(k) or id(k) in self.externals):
                    raise Unsupported(f"a dict key that is mutable: {k!r}")
            return list(o.values())
        if t is types.MethodType:
            return [o.__func__, o.__self__]
        if t is types.FunctionType:
            return [c for c in o.__closure__ or ()] + [o.__defaults__, o.__kwdefaults__]
        if t is types.CellType:
            try:
                return [o.cell_contents]
            except ValueError:
                return []
        if t in (bytearray, array.array) or t in _LOCK_TYPES:
            return []
        return self._fields(o)[1]

    def _fields(self, o: Any) -> tuple[list[str], list[Any]]:
        """An instance's fields (its ``__dict__`` in order, then its slots) and their values,
        for a plain Python class: one whose state is those fields and nothing else."""
        cls = type(o)
        info = self.classes.get(cls)
        if info is None:
            info = self.classes[cls] = (_plain_class(cls), _slots_of(cls))
        if not info[0]:
            raise Unsupported(f"an object of {cls.__module__}.{cls.__qualname__}: {o!r}"[:200])
        if id(o) not in self.dict_backed:
            # Did ``o`` have a dict object of its own before anything asked for its __dict__
            # (which makes one)? CPython keeps the attributes of most instances in the object
            # itself, which its fastest attribute loads need; the copy is made the same way.
            refs = gc.get_referents(o)
            self.dict_backed[id(o)] = any(r is o.__dict__ for r in refs) if hasattr(o, "__dict__") else False
        names = list(getattr(o, "__dict__", {}))
        for n in info[1]:
            if hasattr(o, n):
                names.append(n)
        return names, [object.__getattribute__(o, n) for n in names]

    def expr(self, o: Any) -> str:
        """The expression for ``o``'s copy where it is used."""
        i = id(o)
        ext = self.externals.get(i)
        if ext is not None:
            return f"E[{self.used.setdefault(ext, len(self.used))}]"
        if immutable(o):
            return self.const(o)
        v = self.var.get(i)
        if v is not None:
            return v
        t = type(o)
        if self.refs[i] == 1 and self.leaf(o):
            return self.leaf_copy(o)
        v = self.var[i] = f"v{len(self.var)}"
        if t is list:
            self.alloc.append(f"{v} = []")
            self.fill.append(f"{v}.extend(({''.join(self.expr(x) + ', ' for x in o)}))")
        elif t is dict or t is OrderedDict:
            self.alloc.append(f"{v} = {'{}' if t is dict else '_OD()'}")
            items = "".join(f"({self.expr(k)}, {self.expr(x)}), " for k, x in o.items())
            self.fill.append(f"{v}.update(({items}))")
        elif t is set:
            self.alloc.append(f"{v} = set()")
            self.fill.append(f"{v}.update(({''.join(self.expr(x) + ', ' for x in o)}))")
        elif t is types.CellType:
            self.alloc.append(f"{v} = _cell()")
            if self.children(o):
                self.fill.append(f"{v}.cell_contents = {self.expr(o.cell_contents)}")
        elif t is tuple:  # a tuple holding a mutable object: made once its items exist
            elems = [self.expr(x) for x in o]
            self.build.append(f"{v} = ({''.join(x + ', ' for x in elems)})")
        elif t is types.MethodType:
            fn, obj = self.expr(o.__func__), self.expr(o.__self__)
            self.build.append(f"{v} = _method({fn}, {obj})")
        elif t is types.FunctionType:
            cells = "".join(self.expr(c) + ", " for c in o.__closure__)
            self.build.append(f"{v} = _function({self.const(o.__code__)}, {self.const(o.__globals__)}, "
                              f"{o.__name__!r}, {self.expr(o.__defaults__)}, ({cells}))")
            self.build.append(f"{v}.__kwdefaults__ = {self.expr(o.__kwdefaults__)}")
            self.build.append(f"{v}.__qualname__ = {o.__qualname__!r}")
            if o.__dict__:
                raise Unsupported(f"a closure with attributes: {o!r}")
        elif t in (bytearray, array.array) or t in _LOCK_TYPES:
            self.build.append(f"{v} = {self.leaf_copy(o)}")
        else:
            self.alloc.append(f"{v} = _new({self.const(t)})")
            names, values = self._fields(o)
            inst = getattr(o, "__dict__", None)
            if inst and self.dict_backed[id(o)]:
                # the instance dict at once, in its order (mutable values: placeholders set below)
                self.fill.append(f"{v}.__dict__.update("
                                 f"{self.source({n: x if immutable(x) else None for n, x in inst.items()})})")
                fields = [(n, x) for n, x in zip(names, values) if n not in inst or not immutable(x)]
            else:
                fields = list(zip(names, values))
            for n, x in fields:
                e = self.expr(x)
                plain = self.setattr_ok.get((t, n))
                if plain is None:
                    plain = self.setattr_ok[t, n] = _plain_setattr(t, n)
                if plain:
                    self.fill.append(f"{v}.{n} = {e}")
                elif n in getattr(o, "__dict__", {}):
                    self.fill.append(f"{v}.__dict__[{n!r}] = {e}")
                else:  # a slot of a class with its own __setattr__
                    self.fill.append(f"_oset({v}, {n!r}, {e})")
        return v

    def leaf(self, o: Any) -> bool:
        """Is ``o`` a container of immutables (or a buffer, or a lock), copied by one call?"""
        t = type(o)
        if t is list or t is set:
            return all(immutable(x) for x in o)
        if t is dict or t is OrderedDict:
            return all(immutable(x) for x in o.values())
        return t in (bytearray, array.array) or t in _LOCK_TYPES

    def leaf_copy(self, o: Any) -> str:
        t = type(o)
        if t in _LOCK_TYPES:
            if o._is_owned() if hasattr(o, "_is_owned") else o.locked():
                raise Unsupported(f"a lock that is held: {o!r}")
            return f"{self.const(_LOCK_TYPES[t])}()"
        if t is list:
            return f"list({self.source(tuple(o))})" if o else "[]"
        if t is set:
            return f"set({self.source(frozenset(o))})" if o else "set()"
        if t is dict:
            return f"{self.source(dict(o))}.copy()" if o else "{}"
        if t is OrderedDict:
            return f"_OD({self.source(tuple(o.items()))})" if o else "_OD()"
        if t is bytearray:
            return f"bytearray({self.source(bytes(o))})"
        return f"{self.source(array.array(o.typecode, o))}[:]"  # array.array


def compile_graph(root: Any, externals: Mapping[int, int]) -> tuple[Callable[[list[Any]], Any], tuple[int, ...]]:
    """``(rebuild, used)``: ``rebuild(E)`` returns a new copy of ``root`` (see the module's
    docstring), in which each object whose id is a key of ``externals`` is replaced by the
    object given in its place: ``used`` lists the externals the graph refers to (their
    values in ``externals``), and ``E[k]`` stands for the ``k``-th of them. The graph is read
    now: changing it later changes no copy.

    Raises:
        Unsupported: the graph holds an object of a kind this module does not copy.
    """
    c = _Compiler(externals)
    c.count(root)
    try:
        result = c.expr(root)
    except RecursionError:
        raise Unsupported("the graph is too deep to copy (a chain of objects thousands long)") from None
    body = [*c.alloc, *c.build, *c.fill, f"return {result}"]
    src = "def rebuild(E):\n" + "".join(f"    {line}\n" for line in body)
    ns = c.namespace
    exec(compile(src, "<percpu_kmem.snapshot>", "exec"), ns)  # the code written above, from the graph
    rebuild: Callable[[list[Any]], Any] = ns["rebuild"]
    rebuild.__doc__ = f"{len(c.var)} objects copied, {len(body)} lines"
    return rebuild, tuple(c.used)


__all__ = ["Unsupported", "compile_graph", "immutable"]
