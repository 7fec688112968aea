"""Fault injection: failslab and fail_page_alloc with the kernel's knobs.

Models lib/fault-inject.c (``should_fail``), mm/failslab.c and mm/fail_page_alloc.c of
today's kernels (CONFIG_FAULT_INJECTION; the 2.6.10 kernel had none). Each machine has
two attributes, ``m.failslab`` and ``m.fail_page_alloc`` (:class:`FaultAttr`), set with
``Machine(fault_inject=...)`` (a dict of knobs per attribute, or the boot options
``"failslab=<interval>,<probability>,<space>,<times> fail_page_alloc=..."``) or at any
time with ``m.failslab.configure(probability=10, ...)``, as one writes the debugfs files.

Kept, in should_fail's order of checks: a task's ``fail_nth`` (the N-th call of that
task fails, whatever else is set); ``probability`` (percent; 0 disables); the task
filter (only tasks with ``make_it_fail`` set); ``times`` (failures left, -1 for no
limit); ``space`` (a budget the calls' sizes use up before anything fails);
``interval`` (only every interval-th call that passed the checks above); then the
random draw. failslab skips allocations that may sleep (``ignore_gfp_wait``, default
on) and never fails __GFP_NOFAIL; fail_page_alloc also skips highmem allocations
(``ignore_gfp_highmem``) and orders below ``min_order`` (default 1: order-0 pages never
fail). A failure prints "FAULT_INJECTION: forcing a failure." with the attribute's
numbers (``verbose`` 1), plus the call trace (``verbose`` 2), unless __GFP_NOWARN.

Which calls fail is a function of the machine's seed and the run (the draws come from
a generator seeded with them), so under a deterministic policy a failure replays.
Simplified: no stack-trace filter (require/reject ranges), no ratelimit of the
messages, no cache filter (2.6.11 has no SLAB_FAILSLAB).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Final

from ..runtime.errors import KmemUsageError
from ..runtime.task import current_task
from .gfp import GFP_HIGHMEM, GFP_NOFAIL, GFP_NOWARN, GFP_WAIT

if TYPE_CHECKING:
    from ..runtime.task import Task

#: the knobs of every attribute, with the kernel's defaults (FAULT_ATTR_INITIALIZER)
COMMON: Final[dict[str, Any]] = {"probability": 0, "interval": 1, "times": 1, "space": 0, "verbose": 2,
                                 "task_filter": False}
#: the extra knobs of each attribute and their defaults
EXTRA: Final[dict[str, dict[str, Any]]] = {"failslab": {"ignore_gfp_wait": True},
                "fail_page_alloc": {"ignore_gfp_wait": True, "ignore_gfp_highmem": True, "min_order": 1}}


class FaultAttr:
    """struct fault_attr: one injection point's knobs and counters (``m.failslab``, ``m.fail_page_alloc``)."""

    def __init__(self, name: str, seed: int) -> None:
        if name not in EXTRA:
            raise KmemUsageError(f"fault injection: {name!r} is not failslab or fail_page_alloc")
        self.name = name
        self.probability = 0
        self.interval = 1
        self.times = 1
        self.space = 0
        self.verbose = 2
        self.task_filter = False
        self.ignore_gfp_wait = True
        self.ignore_gfp_highmem = True
        self.min_order = 1
        self.count = 0  # calls that passed the early checks (for interval)
        self.failures = 0  # failures injected so far
        self.seed = seed
        self.rng = random.Random(f"{name}:{seed}")

    def configure(self, **knobs: Any) -> FaultAttr:
        """Set knobs as their debugfs files would be written; unknown or bad values are refused."""
        allowed = {**COMMON, **EXTRA[self.name]}
        for key, value in knobs.items():
            if key not in allowed:
                raise KmemUsageError(f"{self.name}: no knob {key!r} (knobs: {', '.join(allowed)})")
            default = allowed[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise KmemUsageError(f"{self.name}: {key}(={value!r}) must be True or False")
            elif isinstance(value, bool) or not isinstance(value, int):
                raise KmemUsageError(f"{self.name}: {key}(={value!r}) must be an int")
            low = {"probability": 0, "interval": 1, "times": -1, "space": 0, "verbose": 0, "min_order": 0}[key] \
                if not isinstance(default, bool) else None
            if low is not None and value < low:
                raise KmemUsageError(f"{self.name}: {key}(={value!r}) must be >= {low}")
            if key == "probability" and value > 100:
                raise KmemUsageError(f"{self.name}: probability(={value!r}) is a percentage: 0 to 100")
        for key, value in knobs.items():
            setattr(self, key, value)
        return self

    def reseed(self, seed: int) -> None:
        """A new run: the draws start again from the machine's seed for that run."""
        self.seed = seed
        self.rng = random.Random(f"{self.name}:{seed}")

    def should_fail(self, t: Task, size: int, nowarn: bool) -> bool:
        """should_fail_ex(): fail this call?"""
        nth = t.fail_nth
        if nth:
            t.fail_nth = nth - 1
            if nth == 1:
                self._fail(t, nowarn)
                return True
            return False
        if self.probability == 0:
            return False
        if self.task_filter and not t.make_it_fail:
            return False
        if self.times == 0:
            return False
        if self.space > size:
            self.space -= size
            return False
        if self.interval > 1:
            self.count += 1
            if self.count % self.interval:
                return False
        if self.probability <= self.rng.randrange(100):
            return False
        self._fail(t, nowarn)
        return True

    def _fail(self, t: Task, nowarn: bool) -> None:
        self.failures += 1
        if self.times > 0:
            self.times -= 1
        if nowarn or self.verbose == 0:
            return
        m = t.machine
        m.printk("FAULT_INJECTION: forcing a failure.", "INFO")  # KERN_NOTICE
        m.printk(f"name {self.name}, interval {self.interval}, probability {self.probability}, "
                 f"space {self.space}, times {self.times}", "INFO")  # KERN_NOTICE
        if self.verbose > 1:
            from ..runtime.report import capture_stack, format_call_trace
            m.printk("\n".join([f"CPU: {t.cpu.id} PID: {t.pid} Comm: {t.comm}",
                                *format_call_trace(capture_stack())]), "INFO")  # KERN_NOTICE

    def __repr__(self) -> str:
        return (f"<{self.name} probability={self.probability} interval={self.interval} times={self.times} "
                f"space={self.space} failures={self.failures}>")


def should_failslab(attr: FaultAttr, object_size: int, gfp: int) -> bool:
    """mm/failslab.c: never __GFP_NOFAIL; allocations that may sleep only with ignore_gfp_wait off."""
    if gfp & GFP_NOFAIL:
        return False
    if attr.ignore_gfp_wait and gfp & GFP_WAIT:
        return False
    return attr.should_fail(current_task(), object_size, bool(gfp & GFP_NOWARN))


def should_fail_alloc_page(attr: FaultAttr, gfp: int, order: int) -> bool:
    """mm/fail_page_alloc.c: below min_order, __GFP_NOFAIL, highmem and sleeping allocations
    (as the knobs say) never fail."""
    if order < attr.min_order or gfp & GFP_NOFAIL:
        return False
    if attr.ignore_gfp_highmem and gfp & GFP_HIGHMEM:
        return False
    if attr.ignore_gfp_wait and gfp & GFP_WAIT:
        return False
    return attr.should_fail(current_task(), 1 << order, bool(gfp & GFP_NOWARN))


def parse_fault_inject(spec: Any) -> dict[str, dict[str, Any]]:
    """``Machine(fault_inject=...)``: a dict {attribute: {knob: value}} as is, or the boot
    options ``"failslab=<interval>,<probability>,<space>,<times> fail_page_alloc=..."``."""
    if spec is None:
        return {}
    if isinstance(spec, dict):
        out: dict[str, dict[str, Any]] = {}
        for name, knobs in spec.items():
            if name not in EXTRA:
                raise KmemUsageError(f"Machine: fault_inject={spec!r}: {name!r} is not failslab or fail_page_alloc")
            if not isinstance(knobs, dict):
                raise KmemUsageError(f"Machine: fault_inject[{name!r}] must be a dict of knobs, got {knobs!r}")
            out[name] = dict(knobs)
        return out
    if not isinstance(spec, str):
        raise KmemUsageError(f"Machine: fault_inject(={spec!r}) must be a dict of knobs or boot options "
                             f"('failslab=<interval>,<probability>,<space>,<times>')")
    out = {}
    for word in spec.split():
        name, sep, value = word.partition("=")
        parts = value.split(",")
        if not sep or name not in EXTRA or len(parts) != 4:
            raise KmemUsageError(f"FAULT_INJECTION: failed to parse arguments: {word!r} (expected "
                                 f"failslab= or fail_page_alloc=<interval>,<probability>,<space>,<times>)")
        try:
            interval, probability, space, times = (int(p) for p in parts)
        except ValueError:
            raise KmemUsageError(f"FAULT_INJECTION: failed to parse arguments: {word!r}") from None
        out[name] = {"interval": interval, "probability": probability, "space": space, "times": times}
    return out


__all__ = ["COMMON", "EXTRA", "FaultAttr", "should_failslab", "should_fail_alloc_page", "parse_fault_inject"]
