"""The front door (README.md, docs/tutorial.md, docs/cli.md) used as a newcomer would: model
problems found there that lie outside the command line, each pinned by a strict xfail with
the output it gives today."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from percpu_kmem.cli import main

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("policy", ["random", "pct", "virtual", "free"])
def test_run_irq_lock_reports_the_bug_and_exits_one(policy: str) -> None:
    # today: percpu_kmem.runtime.errors.InconsistentState: locks held by tasks that no longer
    # exist: spinlock_t dev_lock held by worker/2 (ended by Oops)   (seed 0, every policy)
    res = CliRunner().invoke(main, ["run", "irq-lock", "--seeds", "1", "--policy", policy, "--json"])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert res.exit_code == 1 and '"buggy_seeds": [' in res.stdout


# -- the study's workload parameters (percpu_kmem/study/workloads.py, runner.py) --------------------
# `percpu-kmem study --param` now refuses a value of another kind than the default's (cli.py);
# a value of the right kind out of the workload's range still reaches the workload. Today:
#   --param batch=0 (threadtest) and --param batch=0 (memory-pressure): the sweep never ends
#   --param batch=-5 (threadtest): the sweep never ends (10 minutes, killed)
#   --param slots=0 (larson, shbench): a Python traceback
#   --param queue=0 (producer-consumer): "this machine refuses further runs: the model's lock
#     xmalloc_queue is held by study/0/5, which ended holding it"

@pytest.mark.parametrize("workload, params", [("net-rx", {"burst": 0}), ("larson", {"rounds": 0}),
                                              ("producer-consumer", {"batch": 0})])
def test_run_study_refuses_a_parameter_out_of_range(workload: str, params: dict[str, int]) -> None:
    from percpu_kmem.runtime.errors import KmemUsageError
    from percpu_kmem.study import run_study
    with pytest.raises(KmemUsageError):  # today: ZeroDivisionError: integer division or modulo by zero
        run_study(workload, cpus=[1], ops=10, params=params)
