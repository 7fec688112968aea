"""The study API (run_study, StudyResult, StudyConfig, the workloads as scenarios) and the
counters it reads (slabinfo statistics, pcp statistics, lock_stat)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from percpu_kmem import Machine
from percpu_kmem.linux import GFP_KERNEL, __free_pages, alloc_pages
from percpu_kmem.runtime.errors import KmemUsageError
from percpu_kmem.study import PRESETS, WORKLOADS, StudyConfig, dumps, fit_usl, run_study

pytestmark = pytest.mark.timeout(60)


def _small(**kw: object) -> object:
    args: dict = {"cpus": [1, 2, 4], "configs": ["default", "no-percpu"], "ops": 40}
    args.update(kw)
    return run_study("larson", **args)


def test_same_seed_same_numbers_and_another_seed_differs() -> None:
    a, b = _small(seeds=[3]), _small(seeds=[3])
    assert dumps(a) == dumps(b)  # type: ignore[arg-type]
    c = _small(seeds=[4])
    assert dumps(a) != dumps(c)  # type: ignore[arg-type]


def test_table_csv_json_and_progress(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    res = run_study("threadtest", cpus=[1, 2], configs=["default", "mag-7"], seeds=[0, 1], ops=40,
                    progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 8) for i in range(1, 9)]
    text = res.table()
    assert "workload threadtest" in text and "mag-7" in text and "USL fit" in text and "ops/Mcyc" in text
    assert len(res.rows) == 8 and len(res.summary) == 4
    path = tmp_path / "study.csv"
    res.to_csv(path)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 8 and {r["config"] for r in rows} == {"default", "mag-7"}
    assert float(rows[0]["throughput"]) > 0 and rows[0]["seed"] in ("0", "1")
    data = json.loads(json.dumps(res.to_json()))
    assert data["usl"]["default"]["points"] == 2 and data["configs"][1] == {"name": "mag-7", "magazine": 7,
                                                                            "nodes": 1, "lock": "queued"}
    assert len(data["points"][0]["spin_per_cpu"]) == data["points"][0]["cpus"]
    assert res.point("default", 1)["speedup"] == 1.0


def test_plot_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    res = run_study("magazine-pairs", cpus=[1, 2], configs=["default"], ops=20)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(KmemUsageError, match=r"percpu-kmem\[plot\]"):
        res.plot(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    res = run_study("magazine-pairs", cpus=[1, 2, 4], configs=["default", "no-magazines"], ops=20)
    res.plot(tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("kw", "match"), [
    ({"cpus": [0]}, "cpus"), ({"cpus": [2, 2]}, "twice"), ({"cpus": "4"}, "cpus"), ({"seeds": []}, "seeds"),
    ({"configs": ["nope"]}, "unknown study configuration"), ({"configs": ["default", "default"]}, "share a name"),
    ({"ops": 0}, "ops"), ({"warmup": -1}, "warmup"), ({"params": {"slot": 3}}, "unknown parameter"),
    ({"progress": 3}, "progress"),
])
def test_bad_arguments_are_refused_before_any_run(kw: dict, match: str) -> None:
    args: dict = {"cpus": [1], "configs": ["default"], "ops": 10}
    args.update(kw)
    with pytest.raises(KmemUsageError, match=match):
        run_study("larson", **args)
    with pytest.raises(KmemUsageError, match="unknown workload"):
        run_study("no-such-workload")


@pytest.mark.parametrize(("kw", "match"), [
    ({"magazine": 300}, "magazine"), ({"magazine": 0, "limit": 4}, "no limit"), ({"magazine": 8, "limit": 4}, "limit"),
    ({"pcp_high": 10}, "pcp_batch"), ({"pcp_batch": 8, "pcp_high": 4}, "pcp_high"), ({"lock": "mcs"}, "lock"),
    ({"costs": {"nope": 1}}, "unknown cost"), ({"pcp_fraction": 4}, "pcp_fraction"), ({"nodes": 0}, "nodes"),
])
def test_study_config_checks_its_fields(kw: dict, match: str) -> None:
    with pytest.raises(KmemUsageError, match=match):
        StudyConfig("bad", **kw)


def test_the_usl_fit_recovers_known_coefficients() -> None:
    ns = [1, 2, 4, 8, 16, 32]
    xs = [1000 * n / (1 + 0.05 * (n - 1) + 0.002 * n * (n - 1)) for n in ns]
    f = fit_usl(ns, xs)
    assert f.alpha == pytest.approx(0.05, rel=1e-6) and f.beta == pytest.approx(0.002, rel=1e-6)
    assert f.rms_rel_error < 1e-9 and f.peak_cpus == pytest.approx((0.95 / 0.002) ** 0.5)
    linear = fit_usl(ns, [100.0 * n for n in ns])
    assert linear.alpha == 0 and linear.beta == 0 and linear.peak_cpus == float("inf")
    with pytest.raises(ValueError):
        fit_usl([1], [1.0])


def test_config_applies_the_kernel_knobs() -> None:
    m = Machine(cpus=2, policy="virtual", seed=0, memory="64M")
    StudyConfig("t", magazine=15, depot=0, pcp_batch=4, pcp_high=20).apply(m)
    text = m.proc("slabinfo")
    assert text.startswith("slabinfo - version: 2.1 (statistics)")
    row = next(ln for ln in text.splitlines() if ln.startswith("size-64 "))
    assert " : tunables   30   15    0 : " in row and " : cpustat " in row
    z = next(z for z in m.mm.zones if z.present)
    assert (z.pageset[1][0].batch, z.pageset[1][0].high) == (4, 20)
    # a cache created after the tuning gets the study's tunables too
    run = WORKLOADS["threadtest"](m, ops=20)
    c = m.slab.find("threadtest-64")
    assert (c.limit, c.batchcount, c.shared) == (30, 15, 0) and run.ops == 40


def test_no_magazines_sends_every_object_operation_to_the_list_lock() -> None:
    m = Machine(cpus=2, policy="virtual", seed=0, memory="64M")
    PRESETS["no-magazines"].apply(m)
    run = WORKLOADS["magazine-pairs"](m, ops=20)
    stats = m.slab.cache_stats(m.slab.find("pairs-64"))
    assert stats["direct_allocs"] == stats["direct_frees"] == 20 and stats["allochit"] == 0
    assert stats["allocmiss"] == stats["freemiss"] == 20 and stats["cached_objects"] == 0
    assert run.locks is not None
    assert run.ops <= run.locks["pairs-64->spinlock"][0] <= run.ops + 6  # one per operation (+ slab grows)
    # the kernel's own knob still refuses batchcount 0
    with pytest.raises(KmemUsageError, match="EINVAL"):
        m.slab.slabinfo_write("pairs-64 0 0 0")
    m.check()


def test_depot_exchanges_and_pcp_counters_are_counted() -> None:
    m = Machine(cpus=2, policy="virtual", seed=0, memory="64M")
    StudyConfig("t", magazine=4, depot=8, pcp_batch=4, pcp_high=12).apply(m)
    WORKLOADS["producer-consumer"](m, ops=64, batch=16)
    stats = m.slab.cache_stats(m.slab.find("xmalloc-64"))
    assert stats["depot_puts"] > 0 and stats["depot_gets"] > 0 and stats["depot_lock_acquisitions"] > 0

    def churn() -> None:
        pages = [alloc_pages(GFP_KERNEL, 0) for _ in range(30)]
        for p in pages:
            __free_pages(p, 0)

    m.run(churn)
    zs = [z for z in m.mm.pcp_stats() if z["pcp_hit"]]
    assert zs and zs[0]["pcp_refill"] > 0 and zs[0]["pcp_drain"] > 0 and zs[0]["lock_acquisitions"] > 0
    m.check()


def test_pcp_off_sends_every_order0_page_to_the_zone_lock() -> None:
    m = Machine(cpus=1, policy="virtual", seed=0, memory="64M")
    PRESETS["no-pcp"].apply(m)
    z = next(z for z in m.mm.zones if z.present and z.name == "Normal")
    before = z.lock.acquisitions

    def churn() -> None:
        pages = [alloc_pages(GFP_KERNEL, 0) for _ in range(10)]
        for p in pages:
            __free_pages(p, 0)

    m.run(churn)
    assert z.lock.acquisitions - before == 20 and z.pcp_pages() == 0
    m.check()


def test_percpu_pagelist_fraction_sets_high_from_the_zone_size() -> None:
    m = Machine(cpus=2, policy="virtual", seed=0, memory="64M")
    StudyConfig("f", pcp_fraction=64).apply(m)
    z = next(z for z in m.mm.zones if z.present and z.name == "Normal")
    hot = z.pageset[0][0]
    assert hot.high == z.present // 64 and hot.batch == max(1, min(hot.high // 4, 96))


def test_lock_stat_lists_the_zone_list_and_depot_classes_of_a_study() -> None:
    m = Machine(cpus=4, policy="virtual", seed=0, memory="64M")
    PRESETS["mag-7"].apply(m)
    WORKLOADS["threadtest"](m, ops=200, batch=30)
    text = m.proc("lock_stat")
    for cls in ("threadtest-64->spinlock", "threadtest-64->depot_lock", "zone->lock(0:Normal)"):
        assert f"{cls:>40}:" in text


@pytest.mark.parametrize("name", sorted(set(WORKLOADS) - {"memory-pressure"}))
@pytest.mark.parametrize("policy", ["random", "pct"])
def test_every_workload_is_a_clean_stress_scenario(name: str, policy: str) -> None:
    for seed in range(2):
        m = Machine(cpus=3, policy=policy, seed=seed, memory="64M")
        run = WORKLOADS[name](m, ops=24)
        assert run.ops > 0 and not m.reports, [r.text for r in m.reports]
        m.check()


def test_memory_pressure_runs_reclaim_and_kswapd() -> None:
    m = Machine(cpus=2, policy="virtual", seed=0, memory="16M")
    run = WORKLOADS["memory-pressure"](m, ops=256, fill=0.95)
    c = m.mm.counters()
    assert run.ops >= 256 and c["pgsteal"] > 0 and not m.reports
    assert c["kswapd_runs"] > 0 and c["kswapd_steal"] > 0 and c["allocstall"] > 0  # kswapd and direct reclaim
    m.check()


def test_workload_arguments_are_checked() -> None:
    m = Machine(cpus=1, boot=True, memory="16M")
    with pytest.raises(KmemUsageError, match="unknown parameter"):
        WORKLOADS["larson"](m, ops=4, slot=3)
    with pytest.raises(KmemUsageError, match="ops"):
        WORKLOADS["larson"](m, ops=0)


@pytest.mark.parametrize(("workload", "params", "match"), [
    ("threadtest", {"batch": 0}, "batch"), ("threadtest", {"batch": -5}, "batch"),
    ("larson", {"slots": 0}, "slots"), ("shbench", {"slots": 0}, "slots"),
    ("producer-consumer", {"queue": 0}, "queue"), ("memory-pressure", {"fill": 1.5}, "fill"),
    ("larson", {"min_size": 100, "max_size": 10}, "min_size"), ("threadtest", {"size": True}, "size")])
def test_workload_parameters_out_of_range_are_refused_before_any_run(workload: str, params: dict[str, object],
                                                                       match: str) -> None:
    """A parameter of the right kind but out of its workload's range (a batch of 0 made
    threadtest loop for ever, a queue of 0 left producer-consumer's lock held) is refused
    by name, before any machine is built."""
    from percpu_kmem.study import run_study
    with pytest.raises(KmemUsageError, match=match):
        run_study(workload, cpus=[1], ops=10, params=params)
