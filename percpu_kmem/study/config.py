"""Configurations a scalability study compares, applied at boot with the kernel's own knobs.

A :class:`StudyConfig` names a point in the design space: the slab's per-CPU layer
(magazine size = 2.6's ``batchcount``, ``limit`` = two magazines, the depot = 2.6's
``shared`` array, or no per-CPU layer at all), the per-CPU page lists (``batch``/``high``
zone fields, ``percpu_pagelist_fraction``, or off), NUMA nodes, the lock kind (queued or
ticket) and cost overrides. ``apply(m)`` runs one boot-time task that writes the slab
tunables as ``echo "name limit batchcount shared" > /proc/slabinfo`` would (the model's
own tuning where 2.6 says -EINVAL: batchcount 0) and sets the pagesets.

Kept: the kernel's knobs and their meaning. Simplified: every cache gets the same
tunables (2.6 sized them per object size: ``None`` keeps that); the lists are tuned once,
before the measured run, never while it runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..machine import Machine
from ..mm.slab import kmem_cache_tune_model
from ..runtime.costs import DEFAULT, CostModel
from ..runtime.errors import KmemUsageError
from ..runtime.task import current_task

LOCK_KINDS = ("queued", "ticket")


def _opt_int(name: str, what: str, v: Any, low: int, high: int | None = None) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int) or v < low or (high is not None and v > high):
        rng = f"from {low} to {high}" if high is not None else f">= {low}"
        raise KmemUsageError(f"StudyConfig {name!r}: {what}(={v!r}) must be None or an int {rng}")


@dataclass(frozen=True)
class StudyConfig:
    """One configuration of a study; every field ``None`` keeps the kernel's default.

    Attributes:
        name: the label in tables, CSV, JSON and plots.
        magazine: objects per magazine (2.6 ``batchcount``), 1..256; 0: no per-CPU layer,
            every object operation under the cache's list_lock.
        limit: objects a CPU may hold (2.6 ``limit``); default 2 * magazine.
        depot: full magazines the depot keeps (2.6 ``shared``); 0: no depot.
        pcp_batch, pcp_high: the hot lists' batch and high; pcp_batch 0: no per-CPU lists.
        pcp_fraction: vm.percpu_pagelist_fraction (high = present / fraction), >= 8.
        nodes: NUMA nodes (at most the CPU count of a run; fewer CPUs get fewer nodes).
        lock: "queued" (constant hand-off) or "ticket" (hand-off grows with the spinners).
        costs: cost overrides (runtime/costs.py CostModel field names).
    """

    name: str
    magazine: int | None = None
    limit: int | None = None
    depot: int | None = None
    pcp_batch: int | None = None
    pcp_high: int | None = None
    pcp_fraction: int | None = None
    nodes: int = 1
    lock: str = "queued"
    costs: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "," in self.name:
            raise KmemUsageError(f"StudyConfig: name(={self.name!r}) must be a non-empty string without commas")
        _opt_int(self.name, "magazine", self.magazine, 0, 256)
        _opt_int(self.name, "limit", self.limit, 1, 4096)
        _opt_int(self.name, "depot", self.depot, 0, 4096)
        _opt_int(self.name, "pcp_batch", self.pcp_batch, 0, 4096)
        _opt_int(self.name, "pcp_high", self.pcp_high, 0, 1 << 20)
        _opt_int(self.name, "pcp_fraction", self.pcp_fraction, 8)
        _opt_int(self.name, "nodes", self.nodes, 1, 64)
        if self.magazine == 0 and self.limit not in (None, 0):
            raise KmemUsageError(f"StudyConfig {self.name!r}: magazine 0 (no per-CPU layer) takes no limit")
        if self.magazine and self.limit is not None and self.limit < self.magazine:
            raise KmemUsageError(f"StudyConfig {self.name!r}: limit(={self.limit}) must be >= magazine"
                                 f"(={self.magazine})")
        if self.pcp_high is not None and self.pcp_batch is None:
            raise KmemUsageError(f"StudyConfig {self.name!r}: pcp_high needs pcp_batch")
        if self.pcp_batch and self.pcp_high is not None and self.pcp_high < self.pcp_batch:
            raise KmemUsageError(f"StudyConfig {self.name!r}: pcp_high(={self.pcp_high}) must be >= pcp_batch"
                                 f"(={self.pcp_batch})")
        if self.pcp_fraction is not None and self.pcp_batch is not None:
            raise KmemUsageError(f"StudyConfig {self.name!r}: give pcp_batch/pcp_high or pcp_fraction, not both")
        if self.lock not in LOCK_KINDS:
            raise KmemUsageError(f"StudyConfig {self.name!r}: lock(={self.lock!r}) must be one of "
                                 f"{', '.join(LOCK_KINDS)}")
        if not isinstance(self.costs, dict):
            raise KmemUsageError(f"StudyConfig {self.name!r}: costs(={self.costs!r}) must be a dict")
        self.cost_model()  # unknown or bad costs are refused now

    def cost_model(self) -> CostModel:
        """The machine's cost table: the defaults, the lock kind, then the overrides."""
        base = DEFAULT
        if self.lock == "ticket":
            base = base.replace(handoff_per_waiter=base.line_same_node)
        return base.replace(**self.costs) if self.costs else base

    def nodes_for(self, cpus: int) -> int:
        return min(self.nodes, cpus)

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, {}) or k == "name"}

    def apply(self, m: Machine) -> None:
        """Write the knobs on the booted machine ``m`` (one task, before any measured run)."""
        cfg = self

        def boot_tuning() -> None:
            t = current_task()
            sa = m.slab
            sa.stats = True  # STATS: the study reads 2.6's cpustat/globalstat counters
            if cfg.magazine is not None or cfg.depot is not None:
                for c in list(sa.caches):
                    limit, batch, shared = _tunables(cfg, c.limit, c.batchcount, c.shared)
                    if batch and limit >= 1:
                        sa.slabinfo_write(f"{c.name} {limit} {batch} {shared}")  # the kernel's knob
                    else:
                        kmem_cache_tune_model(c, limit, batch, shared)
                cc = sa.cache_cache
                sa.tunables = _tunables(cfg, cc.limit, cc.batchcount, cc.shared)
            pa = m.mm
            if cfg.pcp_batch is not None:
                high = cfg.pcp_high if cfg.pcp_high is not None else 6 * cfg.pcp_batch
                pa.set_pagesets(t, cfg.pcp_batch, high)
            elif cfg.pcp_fraction is not None:
                pa.percpu_pagelist_fraction(t, cfg.pcp_fraction)

        m.run(boot_tuning, names=["study-tune"])


def _tunables(cfg: StudyConfig, limit: int, batch: int, shared: int) -> tuple[int, int, int]:
    if cfg.magazine is not None:
        batch = cfg.magazine
        limit = 0 if batch == 0 else (cfg.limit if cfg.limit is not None else 2 * batch)
    if cfg.depot is not None:
        shared = cfg.depot
    return limit, batch, shared


#: Ready-made configurations (names usable wherever a config is expected).
PRESETS: dict[str, StudyConfig] = {c.name: c for c in (
    StudyConfig("default"),
    StudyConfig("no-percpu", magazine=0, pcp_batch=0),
    StudyConfig("no-magazines", magazine=0),
    StudyConfig("no-pcp", pcp_batch=0),
    StudyConfig("no-depot", depot=0),
    StudyConfig("mag-1", magazine=1), StudyConfig("mag-7", magazine=7), StudyConfig("mag-15", magazine=15),
    StudyConfig("mag-31", magazine=31), StudyConfig("mag-63", magazine=63), StudyConfig("mag-127", magazine=127),
    StudyConfig("mag-256", magazine=256),
    StudyConfig("pcp-31", pcp_batch=31, pcp_high=186), StudyConfig("pcp-63", pcp_batch=63, pcp_high=378),
    StudyConfig("no-percpu-ticket", magazine=0, pcp_batch=0, lock="ticket"),
    StudyConfig("numa-2", nodes=2),
)}


def as_config(c: StudyConfig | str) -> StudyConfig:
    if isinstance(c, StudyConfig):
        return c
    if isinstance(c, str) and c in PRESETS:
        return PRESETS[c]
    raise KmemUsageError(f"unknown study configuration {c!r}: a StudyConfig or one of {', '.join(PRESETS)}")


__all__ = ["StudyConfig", "PRESETS", "LOCK_KINDS", "as_config"]
