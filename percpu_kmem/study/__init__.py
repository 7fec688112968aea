"""Per-CPU scalability studies in virtual time (docs/scalability.md).

``run_study(workload, cpus=..., configs=..., seeds=..., progress=...)`` sweeps CPU counts,
configurations (:class:`StudyConfig`, or a name of :data:`PRESETS`) and seeds under the
virtual-time policy and returns a :class:`StudyResult` (``table()``, ``to_csv()``,
``to_json()``, ``plot()``) with a Universal Scalability Law fit per configuration.
The workloads (:data:`WORKLOADS`) are also plain scenarios: ``WORKLOADS[name](m, ops=...)``
on any machine.
"""

from __future__ import annotations

from .config import LOCK_KINDS, PRESETS, StudyConfig, as_config
from .runner import METRICS, StudyResult, dumps, run_point, run_study
from .usl import USLFit, fit_usl
from .workloads import WORKLOADS, Workload, WorkloadRun, get_workload, measure

__all__ = ["LOCK_KINDS", "PRESETS", "StudyConfig", "as_config", "METRICS", "StudyResult", "dumps", "run_point",
           "run_study", "USLFit", "fit_usl", "WORKLOADS", "Workload", "WorkloadRun", "get_workload", "measure"]
