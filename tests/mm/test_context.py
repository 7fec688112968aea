"""mm/ finds its machine one way (mm/context.py); boot.py stores what each init returns."""

from __future__ import annotations

import pytest

from percpu_kmem import Machine
from percpu_kmem.mm.bootmem import Bootmem
from percpu_kmem.mm.context import current_machine
from percpu_kmem.mm.mempool import MempoolRegistry
from percpu_kmem.mm.page_alloc import PageAllocator
from percpu_kmem.mm.percpu import PerCpuState
from percpu_kmem.mm.physmem import PhysMem
from percpu_kmem.mm.slab import SlabAllocator
from percpu_kmem.mm.vmalloc import VmallocSpace
from percpu_kmem.runtime.errors import NoMemoryLayers, NotInTaskError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_current_machine_is_the_machine_of_the_calling_task(seed: int) -> None:
    a, b = Machine(cpus=2, seed=seed), Machine(cpus=2, seed=seed)
    assert a.run(current_machine, current_machine) == [a, a]
    assert b.run(current_machine) == [b]


def test_current_machine_outside_a_task_is_a_clear_error() -> None:
    with pytest.raises(NotInTaskError):
        current_machine()


def test_boot_stores_each_layer_in_its_field() -> None:
    m = Machine(cpus=1)
    assert type(m.mem) is PhysMem
    assert type(m.bootmem) is Bootmem and m.bootmem.handed_over
    assert type(m.mm) is PageAllocator
    assert type(m.slab) is SlabAllocator
    assert type(m.mempools) is MempoolRegistry
    assert type(m.vmalloc) is VmallocSpace
    assert type(m.percpu) is PerCpuState
    assert not hasattr(m, "subsystems")  # the typed fields replaced the old name-keyed dict


def test_memory_layer_of_a_machine_without_boot() -> None:
    m = Machine(cpus=1, boot=False)
    with pytest.raises(NoMemoryLayers, match="no m.slab"):
        m.run(lambda: current_machine().slab)
