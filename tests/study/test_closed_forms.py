"""The study's measurements against closed forms (docs/scalability.md, "Closed forms"), within 5%."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine
from percpu_kmem.runtime import costs
from percpu_kmem.runtime.costs import DEFAULT, CostModel
from percpu_kmem.runtime.errors import KmemUsageError
from percpu_kmem.study import WORKLOADS, StudyConfig, run_point, run_study

pytestmark = pytest.mark.timeout(60)

HOLD, OUTSIDE = 1000, 3000


def _cs(cpus: int, shared: int = 1, config: StudyConfig | str = "default", ops: int = 60) -> dict:
    return run_point("critical-section", cpus, config, ops=ops, warmup=0,
                     params={"hold": HOLD, "outside": OUTSIDE, "shared": shared})


def test_one_cpu_never_waits() -> None:
    p = _cs(1)
    assert p["spin_share"] == 0 and p["lock_con_per_op"] == 0
    assert p["throughput"] == pytest.approx(1e6 / (HOLD + OUTSIDE + DEFAULT.lock), rel=0.05)


@pytest.mark.parametrize("n", [4, 8])
def test_n_cpus_on_one_lock_saturate_at_one_over_hold_plus_handoff(n: int) -> None:
    p = _cs(n)
    assert p["throughput"] == pytest.approx(1e6 / (HOLD + DEFAULT.lock_handoff), rel=0.05)
    per_op = n * (HOLD + DEFAULT.lock_handoff)  # each CPU's cycle: its turn comes every n hand-offs
    assert p["spin_share"] == pytest.approx(1 - (HOLD + OUTSIDE) / per_op, abs=0.03)


def test_no_shared_state_scales_linearly() -> None:
    one = _cs(1, shared=0)["throughput"]
    for n in (2, 8):
        assert _cs(n, shared=0)["throughput"] == pytest.approx(n * one, rel=0.05)


def test_a_handoff_override_moves_the_ceiling() -> None:
    cfg = StudyConfig("slow-handoff", costs={"lock_handoff": 600})
    assert _cs(8, config=cfg)["throughput"] == pytest.approx(1e6 / (HOLD + 600), rel=0.05)


def test_the_slab_list_lock_saturates_at_one_over_its_hold_plus_handoff() -> None:
    """Magazines off: every object operation is one list_lock critical section."""
    cfg = StudyConfig("no-mag", magazine=0)
    m = Machine(cpus=8, policy="virtual", seed=0, memory="64M", timeout=None)
    cfg.apply(m)
    WORKLOADS["magazine-pairs"](m, ops=20)  # warm-up: the slab exists
    lock = m.slab.find("pairs-64").list_lock
    acq0, hold0 = lock.acquisitions, lock.hold_cycles
    run = WORKLOADS["magazine-pairs"](m, ops=100)
    hold = (lock.hold_cycles - hold0) / (lock.acquisitions - acq0)
    assert run.locks is not None and run.locks["pairs-64->spinlock"][0] == run.ops  # one section per op
    assert run.ops / run.cycles == pytest.approx(1 / (hold + DEFAULT.lock_handoff), rel=0.05)


def test_a_ticket_lock_is_retrograde_and_a_queued_lock_plateaus() -> None:
    res = run_study("critical-section", cpus=[1, 2, 4, 8], configs=[StudyConfig("queued"),
                    StudyConfig("ticket", lock="ticket")], ops=40, warmup=0, params={"hold": 300, "outside": 300})
    q = [res.point("queued", n)["throughput"] for n in (2, 4, 8)]
    t = [res.point("ticket", n)["throughput"] for n in (2, 4, 8)]
    assert q[2] == pytest.approx(q[1], rel=0.05)  # a plateau
    assert t[2] < 0.8 * t[1]  # retrograde
    fq, ft = res.fits["queued"], res.fits["ticket"]
    assert fq is not None and ft is not None
    assert ft.beta > 5 * fq.beta and ft.peak_cpus < 4 < fq.peak_cpus  # the ticket lock peaks early


def test_a_line_from_another_node_costs_more() -> None:
    """Below saturation each CPU pays one line transfer per acquisition: same node or not."""
    def thr(nodes: int) -> float:
        cfg = StudyConfig(f"n{nodes}", nodes=nodes)
        return run_point("critical-section", 2, cfg, ops=60, warmup=0,
                         params={"hold": 200, "outside": 2000, "shared": 1})["throughput"]
    assert thr(1) == pytest.approx(2e6 / (2200 + DEFAULT.line_same_node), rel=0.05)
    assert thr(2) == pytest.approx(2e6 / (2200 + DEFAULT.line_remote_node), rel=0.05)


def test_the_cost_model_is_data_and_checked() -> None:
    assert costs.LOCK == DEFAULT.lock and costs.LOCK_HANDOFF == DEFAULT.lock_handoff
    cm = DEFAULT.replace(lock_handoff=300)
    assert cm.lock_handoff == 300 and DEFAULT.lock_handoff == 150 and cm.as_dict()["lock"] == DEFAULT.lock
    with pytest.raises(KmemUsageError, match="unknown cost.*lock_hand"):
        DEFAULT.replace(lock_hand=1)
    with pytest.raises(KmemUsageError, match="lock"):
        CostModel(lock=-1)
    assert Machine(cpus=1, boot=False, costs={"lock": 7}).costs.lock == 7
    assert Machine(cpus=1, boot=False, costs=cm).costs is cm
    with pytest.raises(KmemUsageError, match="costs"):
        Machine(cpus=1, boot=False, costs="cheap")
    m = Machine(cpus=1, boot=False, costs={"lock": 7})
    assert "costs=" in m.replay_hint() or m.shaping_args()["costs"]["lock"] == 7


class _Cpu:
    def __init__(self, cid: int, node: int) -> None:
        self.id, self.node = cid, node


class _Task:
    """Just what SharedLine.touch reads: the machine, the CPU, charge()."""

    def __init__(self, m: Machine, cpu: int) -> None:
        self.machine, self.cpu, self.charged = m, m.cpus[cpu], 0

    def charge(self, n: int) -> None:
        self.charged += n


def test_a_shared_line_charges_a_transfer_from_its_last_writer_by_node() -> None:
    m = Machine(cpus=4, nodes=2, boot=False)
    line = costs.SharedLine("list head")
    a, b, c = _Task(m, 0), _Task(m, 1), _Task(m, 2)  # CPUs 0 and 1 on node 0, CPU 2 on node 1
    line.touch(a)
    line.touch(a)
    assert a.charged == 0 and line.bounces == 0  # first and repeated touches are local
    line.touch(b)
    assert b.charged == DEFAULT.line_same_node
    line.touch(c)
    assert c.charged == DEFAULT.line_remote_node and line.bounces == 2 and line.last_cpu == 2


def test_each_interrupt_charges_its_entry() -> None:
    from percpu_kmem.linux import raise_irq

    def clock(entry: int) -> int:
        m = Machine(cpus=1, policy="virtual", seed=0, boot=False, costs={"irq_entry": entry})
        m.request_irq(9, lambda irq, dev: None, "dev")

        def worker() -> None:
            for _ in range(10):
                raise_irq(9)

        m.run(worker)
        return m.cpus[0].clock

    assert clock(1000) - clock(0) == 10 * 1000
