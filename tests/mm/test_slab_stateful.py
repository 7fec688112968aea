"""Hypothesis: any sequence of alloc, free, shrink, tune and destroy keeps a cache consistent."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from percpu_kmem import (
    GFP_ATOMIC,
    GFP_KERNEL,
    SLAB_HWCACHE_ALIGN,
    SLAB_NO_REAP,
    SLAB_POISON,
    SLAB_RED_ZONE,
    Machine,
    kmem_cache_alloc,
    kmem_cache_create,
    kmem_cache_destroy,
    kmem_cache_free,
    kmem_cache_shrink,
    kmem_cache_tune,
)

pytestmark = pytest.mark.timeout(300)


class CacheLifecycle(RuleBasedStateMachine):
    """A model (the set of live objects) against the real cache, checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.m = Machine(cpus=2, memory="16M", policy="random", seed=0)
        self.live: set[int] = set()
        self.expected_reports: list[str] = []
        self.generation = 0
        self.cache = None

    def k(self, fn):  # run one step as a kernel thread
        return self.m.run(fn)[0]

    @initialize(size=st.integers(4, 3000), flags=st.sampled_from(
        [0, SLAB_HWCACHE_ALIGN, SLAB_NO_REAP, SLAB_RED_ZONE | SLAB_POISON]))
    def create(self, size: int, flags: int) -> None:
        self.size, self.flags = size, flags
        self._new_cache()

    def _new_cache(self) -> None:
        self.generation += 1
        name = f"hyp{self.generation}"
        self.cache = self.k(lambda: kmem_cache_create(name, self.size, 0, self.flags))
        assert self.cache is not None

    @rule(n=st.integers(1, 70), atomic=st.booleans())
    def alloc(self, n: int, atomic: bool) -> None:
        c = self.cache
        objs = self.k(lambda: [kmem_cache_alloc(c, GFP_ATOMIC if atomic else GFP_KERNEL) for _ in range(n)])
        assert None not in objs
        assert len(set(objs)) == n and not self.live & set(objs), "an object handed out twice"
        self.live.update(objs)

    @rule(data=st.data())
    def free_some(self, data: st.DataObject) -> None:
        if not self.live:
            return
        victims = data.draw(st.lists(st.sampled_from(sorted(self.live)), unique=True, max_size=len(self.live)))
        c = self.cache
        self.k(lambda: [kmem_cache_free(c, o) for o in victims])
        self.live.difference_update(victims)

    @rule()
    def shrink(self) -> None:
        c = self.cache
        assert self.k(lambda: kmem_cache_shrink(c)) == (1 if self.live else 0)
        assert c.cached_objects() == 0 and not c.slabs_free

    @rule(limit=st.integers(1, 130), data=st.data())
    def tune(self, limit: int, data: st.DataObject) -> None:
        batch = data.draw(st.integers(1, limit))
        shared = data.draw(st.integers(0, 8))
        c = self.cache
        self.k(lambda: kmem_cache_tune(c, limit, batch, shared))

    @rule()
    def destroy(self) -> None:
        c = self.cache
        if self.live:
            assert self.k(lambda: kmem_cache_destroy(c)) == 1
            self.expected_reports.append("slab_destroy_busy")
        else:
            assert self.k(lambda: kmem_cache_destroy(c)) == 0
            self._new_cache()

    @invariant()
    def consistent(self) -> None:
        if self.cache is None:
            return
        self.m.check()
        c = self.cache
        active = c.counts()[0]
        assert active == len(self.live) + c.cached_objects()
        seen = [r.kind for r in self.m.reports for _ in range(r.count)]  # repeats at one site are folded
        assert seen == self.expected_reports


TestCacheLifecycle = CacheLifecycle.TestCase
TestCacheLifecycle.settings = settings(max_examples=60, stateful_step_count=15, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
