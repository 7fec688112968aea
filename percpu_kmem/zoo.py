"""The zoo of buggy drivers: every detector against the bug it is meant to catch.

``stress/zoo/`` (a folder of the repository, beside the package) holds small drivers
a kernel developer would recognise, one file each. A zoo file has a module docstring
(the bug in one line, then how it goes wrong and which detector finds it), a constant
``DETECTOR`` (the detector meant to catch it: "might_sleep", "lockdep", "kasan", ...),
a constant ``REPORTS`` (the report kinds, ``Report.kind``, or failure kinds of
:class:`percpu_kmem.campaign.Outcome` the buggy driver must produce), and two
``@stress`` scenarios: ``buggy`` and ``fixed``, its twin identical but for the fix.

    from percpu_kmem.zoo import load_zoo, run_zoo
    result = run_zoo(load_zoo(), seeds=200)                  # the default campaign
    print(result.table())
    result = run_zoo(seeds=200, policies=("campaign", "random", "pct", "virtual"))

:func:`run_zoo` runs each buggy driver until its first find (a run whose failure, or
one of whose unexpected reports, is of a kind in ``REPORTS``) and each fixed twin over
every seed; any failure of a twin is a false positive. A kind in ``REPORTS`` also
matches the kinds that extend it after an underscore: ``"kasan"`` matches
``"kasan_use_after_free"``, so a driver can name a detector's family of reports.

A driver whose machine needs an argument :class:`~percpu_kmem.Machine` does not take
(a detector not built yet, e.g. ``kasan=True``) is shown as "detector unavailable":
neither found nor clean, and none of its runs is made.

Simplified: a "column" is the default campaign (:data:`percpu_kmem.testing.CAMPAIGN`,
rotating by seed, as :func:`percpu_kmem.campaign.plan` plans it) or one policy with
its default options; seeds to first find counts runs in seed order from the first seed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .campaign import Outcome, plan, run_one
from .machine import Machine
from .runtime.errors import KmemUsageError
from .runtime.machine import SmpMachine
from .runtime.policies import POLICIES
from .scenarios import StressScenario, _import_file, scenarios_in

#: The column name of the default campaign.
CAMPAIGN_COLUMN = "campaign"
#: Seeds per column when none are given (issue 13's budget).
ZOO_SEEDS = 200


def zoo_dir() -> Path:
    """``stress/zoo`` of the repository the package lives in (found from the package's folder)."""
    root = Path(__file__).resolve().parent.parent
    return root / "stress" / "zoo"


@dataclass(frozen=True)
class ZooDriver:
    """One zoo file: the bug, its detector, and the two twins."""

    name: str  #: the file's stem
    path: Path
    bug: str  #: the first line of the module docstring
    doc: str  #: the whole module docstring
    detector: str
    reports: tuple[str, ...]
    buggy: StressScenario
    fixed: StressScenario

    def unavailable(self) -> str:
        """Why the driver cannot run on this version of the model ("" if it can): a machine
        argument Machine() does not take (a detector not built yet)."""
        known = _machine_arguments()
        missing = sorted(k for k in {*self.buggy.machine, *self.fixed.machine} if k not in known)
        if not missing:
            return ""
        return "detector unavailable: Machine() takes no " + ", ".join(f"{k}=" for k in missing)

    def matches(self, kind: str | None) -> bool:
        """``kind`` is one of the reports the driver must produce (or extends one after '_')."""
        return kind is not None and any(kind == r or kind.startswith(r + "_") for r in self.reports)

    def found_by(self, out: Outcome) -> bool:
        """The run failed and the detector meant to catch the bug said so."""
        return out.failed and (self.matches(out.failure) or any(self.matches(k) for k in out.kinds))


def _machine_arguments() -> frozenset[str]:
    names: set[str] = set()
    for init in (Machine.__init__, SmpMachine.__init__):
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    return frozenset(names)


def _load_driver(path: Path) -> ZooDriver:
    module = _import_file(path)
    where = str(path)
    doc = (module.__doc__ or "").strip()
    if not doc:
        raise KmemUsageError(f"zoo driver {where}: no module docstring (the bug, then how it is found)")
    detector = getattr(module, "DETECTOR", None)
    if not isinstance(detector, str) or not detector:
        raise KmemUsageError(f"zoo driver {where}: DETECTOR must name the detector (a non-empty str)")
    reports = getattr(module, "REPORTS", None)
    if isinstance(reports, str) or not isinstance(reports, (tuple, list)) or not reports or not all(
            isinstance(r, str) and r for r in reports):
        raise KmemUsageError(f"zoo driver {where}: REPORTS must be a non-empty tuple of report kinds")
    twins = {sc.name.rsplit("::", 1)[1]: sc for sc in scenarios_in(module, where)}
    for twin in ("buggy", "fixed"):
        if twin not in twins:
            raise KmemUsageError(f"zoo driver {where}: no @stress scenario named {twin!r}")
    return ZooDriver(path.stem, path, doc.splitlines()[0], doc, detector, tuple(reports),
                     twins["buggy"], twins["fixed"])


def load_zoo(path: str | Path | None = None) -> list[ZooDriver]:
    """The zoo's drivers, in file-name order: every ``*.py`` of ``path`` (files starting
    with ``_`` are skipped), by default the repository's ``stress/zoo``.

    Raises:
        KmemUsageError: the folder does not exist (the package installed without its
            repository), holds no driver, or a file is not a zoo driver (named).
    """
    folder = zoo_dir() if path is None else Path(path)
    if not folder.is_dir():
        if path is None:
            raise KmemUsageError(f"the zoo is not here: {folder} does not exist (it lives in the "
                                 f"repository's stress/zoo; pass its path to load_zoo())")
        raise KmemUsageError(f"load_zoo: {str(folder)!r} is not a folder")
    files = sorted(f for f in folder.glob("*.py") if not f.name.startswith(("_", ".")))
    if not files:
        raise KmemUsageError(f"load_zoo: no driver (*.py) in {str(folder)!r}")
    return [_load_driver(f) for f in files]


@dataclass
class Column:
    """One driver under one column (the campaign or a policy): the buggy runs until the first
    find, and the fixed twin's runs."""

    column: str
    runs: int = 0  #: buggy runs made (up to and including the first find)
    first: Outcome | None = None  #: the first run that found the bug
    other: Outcome | None = None  #: the first failing run that was not the detector's
    twin_runs: int = 0
    twin_failures: list[Outcome] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.first is not None

    @property
    def seeds_to_find(self) -> int | None:
        return self.runs if self.first is not None else None


@dataclass
class DriverResult:
    """What the zoo found for one driver, per column."""

    driver: ZooDriver
    columns: list[Column] = field(default_factory=list)
    unavailable: str = ""
    seconds: float = 0.0

    @property
    def found(self) -> bool:
        """Found in the first column (the default campaign, unless columns were named)."""
        return not self.unavailable and bool(self.columns) and self.columns[0].found

    @property
    def false_positives(self) -> int:
        return sum(len(c.twin_failures) for c in self.columns)

    def to_json(self) -> dict[str, Any]:
        d = self.driver
        return {"driver": d.name, "bug": d.bug, "detector": d.detector, "reports": list(d.reports),
                "unavailable": self.unavailable, "found": self.found, "seconds": round(self.seconds, 3),
                "false_positives": self.false_positives,
                "columns": {c.column: {"found": c.found, "seeds_to_first_find": c.seeds_to_find,
                                       "runs": c.runs,
                                       "first": c.first.to_json() if c.first else None,
                                       "other_failure": c.other.to_json() if c.other else None,
                                       "twin_runs": c.twin_runs,
                                       "twin_failures": [o.to_json() for o in c.twin_failures]}
                            for c in self.columns}}


@dataclass
class ZooResult:
    """Every driver's result; the table and the counts the command line prints."""

    drivers: list[DriverResult]
    columns: tuple[str, ...]
    seeds: int
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def detections(self) -> int:
        """Buggy drivers found (in the first column) by the detector meant to catch them."""
        return sum(1 for d in self.drivers if d.found)

    @property
    def false_positives(self) -> int:
        """Failing runs of fixed twins (must be 0)."""
        return sum(d.false_positives for d in self.drivers)

    @property
    def unavailable(self) -> list[str]:
        return [d.driver.name for d in self.drivers if d.unavailable]

    @property
    def missed(self) -> list[str]:
        return [d.driver.name for d in self.drivers if not d.unavailable and not d.found]

    def summary(self) -> str:
        ran = len(self.drivers) - len(self.unavailable)
        line = (f"zoo: {self.detections} of {ran} buggy drivers found within {self.seeds} seeds, "
                f"{self.false_positives} false positives")
        if self.unavailable:
            line += f", {len(self.unavailable)} detector unavailable ({', '.join(self.unavailable)})"
        if self.missed:
            line += f"; not found: {', '.join(self.missed)}"
        return line + (" (interrupted)" if self.interrupted else "")

    def table(self, *, bugs: bool = False) -> str:
        """A Markdown table: driver, detector, found (in the first column, within the seeds),
        seeds to first find per column, the first failing seed with its policy, the twin's
        false positives. ``bugs=True`` adds each driver's bug (its docstring's first line)."""
        bug_head = ["bug"] if bugs else []
        head = ["driver", *bug_head, "detector", f"found within {self.seeds}"] + [
            f"seeds to find: {c}" for c in self.columns] + ["first failing seed (policy)", "twin false positives"]
        rows = [head, ["---"] * len(head)]
        for d in self.drivers:
            bug_cell = [d.driver.bug.rstrip(".")] if bugs else []
            if d.unavailable:
                rows.append([d.driver.name, *bug_cell, d.driver.detector, "detector unavailable"]
                            + ["-"] * len(self.columns) + ["-", "-"])
                continue
            cells = [d.driver.name, *bug_cell, d.driver.detector, "yes" if d.found else "**no**"]
            for c in d.columns:
                cells.append(str(c.seeds_to_find) if c.found else f"not in {c.runs}")
            first = d.columns[0].first if d.columns else None
            cells.append(f"{first.seed} ({_policy_text(first)})" if first else "-")
            cells.append(str(d.false_positives))
            rows.append(cells)
        return "\n".join("| " + " | ".join(r) + " |" for r in rows)

    def to_json(self) -> dict[str, Any]:
        return {"seeds": self.seeds, "columns": list(self.columns), "seconds": round(self.seconds, 3),
                "interrupted": self.interrupted, "detections": self.detections,
                "false_positives": self.false_positives, "unavailable": self.unavailable,
                "missed": self.missed, "drivers": [d.to_json() for d in self.drivers]}


def _policy_text(o: Outcome) -> str:
    opts = ", ".join(f"{k}={v}" for k, v in o.options)
    return f"{o.policy} {opts}" if opts else o.policy


def _columns(policies: Sequence[str] | str | None) -> tuple[str, ...]:
    if policies is None:
        return (CAMPAIGN_COLUMN,)
    cols = (policies,) if isinstance(policies, str) else tuple(policies)
    if not cols:
        raise KmemUsageError("run_zoo(policies=...) is empty")
    for c in cols:
        if c != CAMPAIGN_COLUMN and (c not in POLICIES or c == "free"):
            raise KmemUsageError(f"run_zoo: {c!r} is not {CAMPAIGN_COLUMN!r} or a deterministic policy "
                                 f"({', '.join(p for p in POLICIES if p != 'free')})")
    if len(set(cols)) != len(cols):
        raise KmemUsageError(f"run_zoo(policies={cols!r}) names a column twice")
    return cols


def _seed_range(seeds: int | Iterable[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise KmemUsageError(f"run_zoo(seeds={seeds!r}) takes a number of seeds or an iterable of them")
    if isinstance(seeds, int):
        if seeds < 1:
            raise KmemUsageError(f"run_zoo(seeds={seeds!r}) must be at least 1")
        return list(range(seeds))
    if not isinstance(seeds, Iterable):
        raise KmemUsageError(f"run_zoo(seeds={seeds!r}) takes a number of seeds or an iterable of them")
    out = list(seeds)
    if not out:
        raise KmemUsageError("run_zoo(seeds=...) is empty")
    return out


def run_zoo(drivers: Sequence[ZooDriver] | None = None, seeds: int | Iterable[int] = ZOO_SEEDS,
            policies: Sequence[str] | str | None = None,
            progress: Callable[[Outcome], None] | None = None, *, twins: bool = True) -> ZooResult:
    """Run the zoo: each buggy driver until its first find, each fixed twin over every seed.

    Args:
        drivers: the drivers (default: :func:`load_zoo`).
        seeds: how many seeds (``range(seeds)``) or which, per column.
        policies: the columns: None for the default campaign alone, else names among
            ``"campaign"`` and the deterministic policies ("random", "pct", "virtual"),
            each run on its own with its default options.
        progress: called after every run with its :class:`~percpu_kmem.campaign.Outcome`.
        twins: run the fixed twins (False: only the buggy drivers, e.g. to measure).

    Ctrl-C ends the zoo cleanly: the result so far comes back with ``interrupted=True``.
    """
    cols = _columns(policies)
    seed_list = _seed_range(seeds)
    if drivers is None:
        drivers = load_zoo()
    for d in drivers:
        if not isinstance(d, ZooDriver):
            raise KmemUsageError(f"run_zoo(drivers=...) takes ZooDriver objects from load_zoo(), got {d!r}")
    plans = {c: plan(seed_list, None if c == CAMPAIGN_COLUMN else [c]) for c in cols}
    result = ZooResult([], cols, len(seed_list))
    t0 = time.perf_counter()
    try:
        for d in drivers:
            dr = DriverResult(d, unavailable=d.unavailable())
            result.drivers.append(dr)
            if dr.unavailable:
                continue
            t1 = time.perf_counter()
            for c in cols:
                col = Column(c)
                dr.columns.append(col)
                for policy, options, seed in plans[c]:
                    out = run_one(d.buggy, policy, options, seed)
                    col.runs += 1
                    if progress is not None:
                        progress(out)
                    if d.found_by(out):
                        col.first = out
                        break
                    if out.failed and col.other is None:
                        col.other = out
                if not twins:
                    continue
                for policy, options, seed in plans[c]:
                    out = run_one(d.fixed, policy, options, seed)
                    col.twin_runs += 1
                    if progress is not None:
                        progress(out)
                    if out.failed:
                        col.twin_failures.append(out)
            dr.seconds = time.perf_counter() - t1
    except KeyboardInterrupt:
        result.interrupted = True
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["CAMPAIGN_COLUMN", "ZOO_SEEDS", "zoo_dir", "ZooDriver", "load_zoo", "Column", "DriverResult",
           "ZooResult", "run_zoo"]
