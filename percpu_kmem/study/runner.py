"""The study runner: sweep CPUs x configurations x seeds in virtual time, fit, tabulate, plot.

``run_study(workload, cpus=[1, 2, 4, 8], configs=["default", "no-percpu"], seeds=[0])``
boots one machine per point (policy "virtual", the configuration's nodes and costs),
applies the configuration, runs the workload and reads the counters. The result keeps
every point (:attr:`StudyResult.rows`), the means over seeds per (configuration, CPUs)
with speedup and efficiency against the configuration's own smallest CPU count, and a
Universal Scalability Law fit per configuration. Same arguments, same numbers: nothing
depends on wall time.

Throughput is operations per million virtual cycles (1 cycle = 1 ns, so it is also
operations per millisecond); the spin share is the CPUs' spinning cycles over CPUs x
makespan; lock figures are per operation over every lock class; per-CPU cache memory is
what magazines, the depot and the pcp lists hold at the end of the run.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..machine import Machine
from ..mm.layout import PAGE_SIZE
from ..runtime.errors import KmemUsageError
from .config import StudyConfig, as_config
from .usl import USLFit, fit_usl
from .workloads import Workload, get_workload

#: The columns of a point, in table/CSV order.
METRICS = ("throughput", "speedup", "efficiency", "spin_share", "lock_acq_per_op", "lock_con_per_op",
           "zone_lock_per_op", "list_lock_per_op", "depot_lock_per_op", "remote_free_ratio", "percpu_cache_kb",
           "ops", "cycles")

Progress = Callable[[int, int], Any]


def _check_cpus(cpus: Any) -> list[int]:
    if isinstance(cpus, (str, bytes)) or not isinstance(cpus, Iterable):
        raise KmemUsageError(f"run_study: cpus(={cpus!r}) must be a list of CPU counts")
    out = list(cpus)
    if not out or any(isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64 for n in out):
        raise KmemUsageError(f"run_study: cpus(={cpus!r}) must be CPU counts from 1 to 64")
    if len(set(out)) != len(out):
        raise KmemUsageError(f"run_study: cpus(={cpus!r}) has a count twice")
    return sorted(out)


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise KmemUsageError(f"run_study: seeds(={seeds!r}) must be a list of ints")
    out = list(seeds)
    if not out or any(isinstance(s, bool) or not isinstance(s, int) for s in out):
        raise KmemUsageError(f"run_study: seeds(={seeds!r}) must be a non-empty list of ints")
    return out


def _lock_group(name: str) -> str:
    if name.startswith("zone->lock"):
        return "zone"
    if name.endswith("->depot_lock"):
        return "depot"
    if name.endswith("->spinlock"):
        return "list"
    return "other"


def run_point(workload: Workload | str, cpus: int, config: StudyConfig | str, seed: int = 0, ops: int = 200,
              memory: str = "128M", params: dict[str, Any] | None = None, warmup: int | None = None) -> dict[str, Any]:
    """One machine, one measured run: the point's row (before speedup/efficiency).

    ``warmup`` operations per CPU run first, unmeasured (default: ops; 0 for none): slabs
    grown, magazines and lists loaded, as in the steady state the published figures measure."""
    wl = get_workload(workload)
    cfg = as_config(config)
    m = Machine(cpus=cpus, nodes=cfg.nodes_for(cpus), memory=memory, policy="virtual", seed=seed,
                costs=cfg.cost_model(), timeout=900.0)  # wall seconds: a stuck point fails, not hangs
    cfg.apply(m)
    warm = ops if warmup is None else warmup
    if warm:
        wl(m, ops=warm, seed=seed + 1_000_003, **(params or {}))
    run = wl(m, ops=ops, seed=seed, **(params or {}))
    groups = {"zone": 0, "list": 0, "depot": 0, "other": 0}
    for name, (acq, _con) in (run.locks or {}).items():
        groups[_lock_group(name)] += acq
    ops_done = max(1, run.ops)
    cycles = max(1, run.cycles)
    cached = sum(c.cached_objects() * c.objsize for c in m.slab.caches)
    cached += sum(z.pcp_pages() for z in m.mm.zones) * PAGE_SIZE
    reports = [r.kind for r in m.reports]
    return {"workload": wl.name, "config": cfg.name, "cpus": cpus, "seed": seed, "ops": run.ops,
            "cycles": run.cycles, "throughput": run.ops / cycles * 1e6,
            "spin_share": run.spin_cycles / (cpus * cycles),
            "lock_acq_per_op": run.lock_acquisitions / ops_done, "lock_con_per_op": run.lock_contentions / ops_done,
            "zone_lock_per_op": groups["zone"] / ops_done, "list_lock_per_op": groups["list"] / ops_done,
            "depot_lock_per_op": groups["depot"] / ops_done, "remote_free_ratio": run.remote_free_ratio,
            "percpu_cache_kb": cached / 1024, "spin_per_cpu": run.spin_per_cpu, "reports": reports}


@dataclass
class StudyResult:
    """Every point of a sweep, the means per (configuration, CPUs), and a USL fit per configuration."""

    workload: str
    cpus: list[int]
    configs: list[StudyConfig]
    seeds: list[int]
    ops: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    fits: dict[str, USLFit | None] = field(default_factory=dict)

    def _summarise(self) -> None:
        self.summary = []
        for cfg in self.configs:
            pts = []
            for n in self.cpus:
                rs = [r for r in self.rows if r["config"] == cfg.name and r["cpus"] == n]
                mean = {k: sum(r[k] for r in rs) / len(rs) for k in METRICS if k not in ("speedup", "efficiency")}
                mean.update(config=cfg.name, cpus=n, ops=sum(r["ops"] for r in rs) // len(rs),
                            cycles=sum(r["cycles"] for r in rs) // len(rs))
                pts.append(mean)
            n0, x0 = pts[0]["cpus"], pts[0]["throughput"]
            for p in pts:
                p["speedup"] = p["throughput"] / x0 * n0 if x0 else 0.0
                p["efficiency"] = p["speedup"] / p["cpus"]
            self.summary.extend(pts)
            try:
                self.fits[cfg.name] = fit_usl([p["cpus"] for p in pts], [p["throughput"] for p in pts])
            except ValueError:
                self.fits[cfg.name] = None

    def point(self, config: str, cpus: int) -> dict[str, Any]:
        """The mean over seeds at one (configuration, CPU count)."""
        for p in self.summary:
            if p["config"] == config and p["cpus"] == cpus:
                return p
        raise KmemUsageError(f"no point for config {config!r} at {cpus} CPUs")

    def table(self) -> str:
        """A fixed-width table: one row per (configuration, CPUs), then the USL fits."""
        head = (f"{'config':<20} {'cpus':>4} {'ops/Mcyc':>10} {'speedup':>8} {'effic':>6} {'spin%':>6} "
                f"{'lock/op':>8} {'cont/op':>8} {'zone/op':>8} {'list/op':>8} {'depot/op':>8} {'remote':>6} "
                f"{'pcpu KiB':>9}")
        out = [f"workload {self.workload}: {self.ops} ops per CPU, seeds {self.seeds}, virtual time", head,
               "-" * len(head)]
        for p in self.summary:
            out.append(f"{p['config']:<20} {p['cpus']:>4} {p['throughput']:>10.1f} {p['speedup']:>8.2f} "
                       f"{p['efficiency']:>6.2f} {100 * p['spin_share']:>6.1f} {p['lock_acq_per_op']:>8.3f} "
                       f"{p['lock_con_per_op']:>8.3f} {p['zone_lock_per_op']:>8.3f} {p['list_lock_per_op']:>8.3f} "
                       f"{p['depot_lock_per_op']:>8.3f} {p['remote_free_ratio']:>6.2f} {p['percpu_cache_kb']:>9.1f}")
        out.append("")
        out.append(f"{'USL fit':<20} {'alpha':>8} {'beta':>9} {'N*':>7} {'rms err':>8}")
        for name, f in self.fits.items():
            if f is None:
                out.append(f"{name:<20} (one CPU count: no fit)")
                continue
            peak = "inf" if math.isinf(f.peak_cpus) else f"{f.peak_cpus:.1f}"
            out.append(f"{name:<20} {f.alpha:>8.4f} {f.beta:>9.5f} {peak:>7} {100 * f.rms_rel_error:>7.1f}%")
        return "\n".join(out) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "cpus": self.cpus, "seeds": self.seeds, "ops_per_cpu": self.ops,
                "configs": [c.describe() for c in self.configs], "points": self.rows, "summary": self.summary,
                "usl": {k: (f.as_dict() if f else None) for k, f in self.fits.items()}}

    def to_csv(self, path: Any) -> None:
        """Every point (one row per configuration, CPUs and seed) with its metrics."""
        cols = ["workload", "config", "cpus", "seed", *METRICS]
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for r in self.rows:
                w.writerow([r.get(c, "") for c in cols])

    def plot(self, path: Any, title: str | None = None) -> None:
        """A PNG: throughput and efficiency against CPUs, one line per configuration (needs the
        ``plot`` extra: ``pip install percpu-kmem[plot]``, i.e. matplotlib)."""
        try:  # imported by name: an optional dependency, absent from the type check too
            matplotlib = importlib.import_module("matplotlib")
            matplotlib.use("Agg")
            plt = importlib.import_module("matplotlib.pyplot")
        except ImportError:
            raise KmemUsageError("StudyResult.plot needs matplotlib: install the 'plot' extra "
                                 "(pip install 'percpu-kmem[plot]'); table(), to_csv() and to_json() work "
                                 "without it") from None
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for cfg in self.configs:
            pts = [p for p in self.summary if p["config"] == cfg.name]
            xs = [p["cpus"] for p in pts]
            ax1.plot(xs, [p["throughput"] for p in pts], marker="o", label=cfg.name)
            ax2.plot(xs, [p["efficiency"] for p in pts], marker="o", label=cfg.name)
            fit = self.fits.get(cfg.name)
            if fit is not None and len(xs) > 2:
                grid = [xs[0] + (xs[-1] - xs[0]) * i / 60 for i in range(61)]
                ax1.plot(grid, [fit.predict(n) for n in grid], linestyle=":", color=ax1.lines[-1].get_color(),
                         linewidth=1)
        for ax in (ax1, ax2):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("CPUs")
            ax.grid(True, alpha=0.3)
        ax1.set_yscale("log")
        ax1.set_ylabel("operations per million virtual cycles")
        ax2.set_ylabel("efficiency (speedup / CPUs)")
        ax2.set_ylim(0, 1.15)
        ax1.legend(fontsize=8)
        fig.suptitle(title or f"{self.workload}: throughput (dotted: USL fit) and efficiency")
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)


def run_study(workload: Workload | str, cpus: Sequence[int] = (1, 2, 4, 8),
              configs: Sequence[StudyConfig | str] = ("default", "no-percpu"), seeds: Sequence[int] = (0,),
              ops: int = 200, memory: str = "128M", params: dict[str, Any] | None = None,
              warmup: int | None = None, progress: Progress | None = None) -> StudyResult:
    """Sweep ``cpus`` x ``configs`` x ``seeds`` for ``workload``; ``progress(done, total)``
    is called after each point. Arguments are checked before any machine boots."""
    wl = get_workload(workload)
    ncpus = _check_cpus(cpus)
    seed_list = _check_seeds(seeds)
    if isinstance(configs, (str, StudyConfig)):
        configs = [configs]
    cfgs = [as_config(c) for c in configs]
    if not cfgs:
        raise KmemUsageError("run_study: configs must name at least one configuration")
    if len({c.name for c in cfgs}) != len(cfgs):
        raise KmemUsageError("run_study: two configurations share a name")
    if isinstance(ops, bool) or not isinstance(ops, int) or ops < 1:
        raise KmemUsageError(f"run_study: ops(={ops!r}) must be an int >= 1 (operations per CPU)")
    if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0):
        raise KmemUsageError(f"run_study: warmup(={warmup!r}) must be None or an int >= 0 (operations per CPU)")
    if params:
        wl.check_params(params)  # names, kinds and ranges, before anything runs
    if progress is not None and not callable(progress):
        raise KmemUsageError(f"run_study: progress(={progress!r}) must be callable(done, total) or None")
    res = StudyResult(wl.name, ncpus, cfgs, seed_list, ops)
    total = len(ncpus) * len(cfgs) * len(seed_list)
    done = 0
    for cfg in cfgs:
        for n in ncpus:
            for seed in seed_list:
                res.rows.append(run_point(wl, n, cfg, seed, ops, memory, params, warmup))
                done += 1
                if progress is not None:
                    progress(done, total)
    res._summarise()
    return res


def dumps(result: StudyResult) -> str:
    return json.dumps(result.to_json(), indent=1, sort_keys=True)


__all__ = ["METRICS", "StudyResult", "run_study", "run_point", "dumps"]
