"""The published shapes (shared reference scalability.md, S1/S4-S6/A2/A5), reproduced on small sweeps."""

from __future__ import annotations

import pytest

from percpu_kmem.study import StudyConfig, run_study

pytestmark = pytest.mark.timeout(60)


def test_without_per_cpu_caches_the_cache_lock_flattens_and_magazines_scale() -> None:
    """A2/S1: magazines linear; the lock-only slab falls below one CPU and stays flat (queued lock)."""
    res = run_study("magazine-pairs", cpus=[1, 2, 8], configs=["default", "no-magazines"], ops=60)
    mag = [res.point("default", n) for n in (1, 2, 8)]
    lock = [res.point("no-magazines", n) for n in (1, 2, 8)]
    assert mag[2]["efficiency"] > 0.95 and mag[2]["spin_share"] == 0
    assert lock[2]["throughput"] == pytest.approx(lock[1]["throughput"], rel=0.1)  # flat
    assert lock[2]["throughput"] < lock[0]["throughput"]  # below one CPU: the hand-off dominates
    assert lock[2]["spin_share"] > 0.8 and lock[2]["list_lock_per_op"] == pytest.approx(1.0)
    assert mag[2]["throughput"] > 50 * lock[2]["throughput"]  # A2: 340x at 16 CPUs
    assert 2 < mag[0]["throughput"] / lock[0]["throughput"] < 6  # A2 at one CPU: 743/356 = 2.1


def test_without_pcp_lists_the_zone_lock_flattens_and_with_them_pages_scale() -> None:
    """A5/S5-S6: order-0 churn within pcp high scales; without the lists zone->lock caps it."""
    pcp = StudyConfig("pcp", pcp_batch=16, pcp_high=96)
    res = run_study("page-churn", cpus=[1, 2, 8], configs=[pcp, "no-pcp"], ops=96, params={"depth": 24})
    assert res.point("pcp", 8)["efficiency"] > 0.9 and res.point("pcp", 8)["zone_lock_per_op"] < 0.05
    off = [res.point("no-pcp", n)["throughput"] for n in (1, 2, 8)]
    assert off[2] == pytest.approx(off[1], rel=0.1) and off[2] < off[0]
    assert res.point("no-pcp", 8)["zone_lock_per_op"] == pytest.approx(1.0)


def test_churn_deeper_than_pcp_high_goes_back_to_the_zone_lock() -> None:
    """A6: once the depth passes high, each batch is a trip to zone->lock and throughput stops scaling."""
    pcp = StudyConfig("pcp", pcp_batch=8, pcp_high=48)
    shallow = run_study("page-churn", cpus=[1, 8], configs=[pcp], ops=120, params={"depth": 16})
    deep = run_study("page-churn", cpus=[1, 8], configs=[pcp], ops=120, params={"depth": 60})
    assert shallow.point("pcp", 8)["efficiency"] > 0.9
    assert deep.point("pcp", 8)["efficiency"] < 0.5
    assert deep.point("pcp", 8)["zone_lock_per_op"] > 0.02 and shallow.point("pcp", 8)["zone_lock_per_op"] < 0.005


def test_larger_magazines_cut_depot_lock_traffic() -> None:
    """A2 3.4/A3: the depot is visited at most once per magazine: traffic ~ 1/M."""
    res = run_study("threadtest", cpus=[4], configs=["mag-7", "mag-31", "mag-127"], ops=120,
                    params={"batch": 100})
    depot = [res.point(c, 4)["depot_lock_per_op"] for c in ("mag-7", "mag-31", "mag-127")]
    assert depot[0] > 2 * depot[1] > 0 and depot[2] == 0
    thr = [res.point(c, 4)["throughput"] for c in ("mag-7", "mag-31", "mag-127")]
    assert thr[0] < thr[1] < thr[2]


def test_remote_frees_cost_more() -> None:
    """A5/xmalloc-test: frees on another CPU than the allocation defeat the per-CPU layer."""
    remote = run_study("producer-consumer", cpus=[4], configs=["default"], ops=128, params={"batch": 16})
    local = run_study("producer-consumer", cpus=[4], configs=["default"], ops=128, params={"batch": 16, "local": 1})
    r, lo = remote.point("default", 4), local.point("default", 4)
    assert r["remote_free_ratio"] == 1.0 and lo["remote_free_ratio"] == 0.0
    assert r["throughput"] < 0.85 * lo["throughput"]
    assert r["depot_lock_per_op"] > lo["depot_lock_per_op"]
