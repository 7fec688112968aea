"""The kernel API simulated code calls: ``from percpu_kmem.linux import *``, as a driver
includes its <linux/...> headers.

Every name here acts on the machine and CPU of the calling kernel thread (a function
passed to ``Machine.run``, or an interrupt handler), as the kernel's act on
``current``; called from plain Python they raise NotInTaskError. The Python-facing
names (Machine, Report, Trace, the errors, the testing helpers) live in
``percpu_kmem`` itself.

Python mangles ``__``-prefixed names used inside a class body: in a method,
``__GFP_WAIT`` and ``__free_pages`` become ``_Driver__GFP_WAIT`` and
``_Driver__free_pages`` (attribute references such as ``linux.__GFP_WAIT`` too). Inside
a class, use the GFP bits under the unmangled names of their own section here
(``GFP_WAIT``, ``GFP_FS``, ...), and give ``__``-functions a name of your own at module
level (``from percpu_kmem.linux import __free_pages as free_pages_of``). See
docs/interfaces.md.
"""

from __future__ import annotations


# -- context, preemption and kernel threads (<linux/preempt.h>, <linux/sched.h>, <linux/smp.h>, <linux/kthread.h>)
from .runtime.kernel import (current, get_current, raw_smp_processor_id, smp_processor_id, get_cpu,
                             put_cpu, preempt_disable, preempt_enable, preempt_enable_no_resched,
                             preempt_count, preempt_point, in_atomic, in_interrupt, in_irq,
                             in_hardirq, in_softirq, in_serving_softirq, in_task, irqs_disabled,
                             preemptible, charge, might_sleep, might_sleep_if, cond_resched,
                             kthread_run, kthread_create, kthread_should_stop, kthread_stop, kthread_bind,
                             set_cpus_allowed, SYSTEM_BOOTING, SYSTEM_RUNNING)

# -- CPU masks (<linux/cpumask.h>, <linux/threads.h>)
from .runtime.kernel import (NR_CPUS, num_possible_cpus, num_online_cpus, cpu_possible, cpu_online,
                             for_each_possible_cpu, for_each_online_cpu, num_present_cpus,
                             cpu_present, for_each_present_cpu)

# -- interrupts and softirqs (<linux/irqflags.h>, <linux/interrupt.h>, <linux/bottom_half.h>)
from .runtime.kernel import (local_irq_disable, local_irq_enable, local_irq_save,
                             local_irq_restore, local_bh_disable, local_bh_enable, request_irq,
                             free_irq, raise_irq, open_softirq, raise_softirq, NR_IRQS,
                             disable_irq, disable_irq_nosync, enable_irq, synchronize_irq)
from .runtime.irq import SA_SHIRQ

# -- SMP calls (<linux/smp.h>)
from .runtime.smp import (smp_call_function, smp_call_function_single, on_each_cpu)

# -- sleeping, waking and time (<linux/sched.h>, <linux/delay.h>, <linux/jiffies.h>)
from .runtime.kernel import (TASK_RUNNING, TASK_INTERRUPTIBLE, TASK_UNINTERRUPTIBLE,
                             set_current_state, __set_current_state, schedule, schedule_timeout,
                             schedule_timeout_uninterruptible, schedule_timeout_interruptible,
                             io_schedule_timeout, wake_up_process, msleep, ssleep,
                             msleep_interruptible, usleep_range, udelay, ndelay, mdelay, cpu_relax,
                             jiffies, get_jiffies_64, ktime_get_ns, MAX_JIFFY_OFFSET,
                             time_is_before_jiffies, time_is_after_jiffies, time_after, time_before, time_after_eq,
                             time_before_eq, time_in_range, msecs_to_jiffies, usecs_to_jiffies,
                             jiffies_to_msecs, jiffies_to_usecs)
from .runtime.preempt import HZ

# -- locks and wait queues (<linux/spinlock.h>, <linux/mutex.h>, <linux/wait.h>)
from .runtime.locks import (spinlock_t, spin_lock_init, DEFINE_SPINLOCK, spin_lock, spin_unlock,
                            spin_trylock, spin_lock_irq, spin_unlock_irq, spin_lock_irqsave,
                            spin_unlock_irqrestore, spin_lock_bh, spin_unlock_bh, spin_is_locked,
                            lockdep_assert_held,
                            mutex, mutex_init, DEFINE_MUTEX, mutex_lock, mutex_lock_interruptible,
                            mutex_trylock,
                            mutex_unlock, mutex_is_locked, wait_queue_head_t, init_waitqueue_head,
                            DECLARE_WAIT_QUEUE_HEAD, prepare_to_wait, finish_wait, wait_event,
                            wait_event_interruptible, wait_event_timeout,
                            wait_event_interruptible_timeout, wake_up, wake_up_all,
                            wake_up_interruptible, wake_up_nr, waitqueue_active)

# -- completions, semaphores and rwlocks (<linux/completion.h>, <linux/semaphore.h> (2.6: <asm/semaphore.h>),
#    <linux/rwsem.h>, rwlock_t of <linux/spinlock.h>)
from .runtime.completion import (completion, init_completion, DECLARE_COMPLETION,
                                 DECLARE_COMPLETION_ONSTACK, reinit_completion,
                                 INIT_COMPLETION, complete, complete_all, wait_for_completion,
                                 wait_for_completion_timeout, wait_for_completion_interruptible,
                                 wait_for_completion_interruptible_timeout,
                                 wait_for_completion_killable, try_wait_for_completion,
                                 completion_done)
from .runtime.semaphore import (semaphore, sema_init, DEFINE_SEMAPHORE, DECLARE_MUTEX,
                                DECLARE_MUTEX_LOCKED, init_MUTEX, init_MUTEX_LOCKED, down,
                                down_interruptible, down_killable, down_timeout, down_trylock, up)
from .runtime.rwsem import (rw_semaphore, init_rwsem, DECLARE_RWSEM, down_read, down_write,
                            down_read_trylock, down_write_trylock, up_read, up_write,
                            downgrade_write, rwsem_is_locked)
from .runtime.rwlock import (rwlock_t, rwlock_init, DEFINE_RWLOCK, read_lock, read_unlock, write_lock,
                             write_unlock, read_trylock, write_trylock, read_lock_irq,
                             read_unlock_irq, write_lock_irq, write_unlock_irq, read_lock_irqsave,
                             read_unlock_irqrestore, write_lock_irqsave, write_unlock_irqrestore,
                             read_lock_bh, read_unlock_bh, write_lock_bh, write_unlock_bh)

# -- lock validation and memalloc scopes (<linux/lockdep.h>, <linux/sched/mm.h>; Machine(lockdep=True))
from .runtime.lockdep import (fs_reclaim_acquire, fs_reclaim_release, memalloc_nofs_save,
                              memalloc_nofs_restore, memalloc_noio_save, memalloc_noio_restore,
                              current_gfp_context)

# -- timers, tasklets and work queues (<linux/timer.h>, <linux/interrupt.h>, <linux/workqueue.h>)
from .runtime.timer import (timer_list, init_timer, setup_timer, timer_setup, add_timer, add_timer_on,
                            mod_timer, del_timer, del_timer_sync, timer_pending, timer_delete,
                            timer_delete_sync)
from .runtime.tasklet import (tasklet_struct, tasklet_init, tasklet_setup, DECLARE_TASKLET,
                              DECLARE_TASKLET_DISABLED, tasklet_schedule, tasklet_hi_schedule,
                              tasklet_disable, tasklet_disable_nosync, tasklet_enable, tasklet_kill)
from .runtime.softirqd import (HI_SOFTIRQ, TIMER_SOFTIRQ, TASKLET_SOFTIRQ)
from .runtime.workqueue import (work_struct, delayed_work, workqueue_struct, INIT_WORK, DECLARE_WORK,
                                INIT_DELAYED_WORK, DECLARE_DELAYED_WORK, work_pending,
                                delayed_work_pending, create_workqueue, create_singlethread_workqueue,
                                destroy_workqueue, queue_work, schedule_work, queue_delayed_work,
                                schedule_delayed_work, flush_workqueue, flush_scheduled_work,
                                cancel_work_sync, cancel_delayed_work, cancel_delayed_work_sync,
                                queue_work_on, schedule_work_on, flush_work)

# -- printk and bugs (<linux/kernel.h>, <asm/bug.h>)
from .runtime.kernel import (printk, panic, BUG, WARN_ON, BUG_ON, WARN_ON_ONCE, WARN, WARN_ONCE)

# -- GFP flags (<linux/gfp.h>)
from .mm.gfp import (GFP_ATOMIC, GFP_NOWAIT, GFP_KERNEL, GFP_USER, GFP_HIGHUSER, GFP_NOIO, GFP_NOFS, GFP_DMA,
                     GFP_ZONEMASK, __GFP_DMA, __GFP_HIGHMEM, __GFP_WAIT, __GFP_HIGH, __GFP_IO,
                     __GFP_FS, __GFP_COLD, __GFP_NOWARN, __GFP_REPEAT, __GFP_NOFAIL, __GFP_NORETRY,
                     __GFP_NO_GROW, __GFP_COMP, __GFP_ZERO, __GFP_BITS_SHIFT, __GFP_BITS_MASK)

# -- pages (<asm/page.h>, <linux/mm.h>, <linux/gfp.h>)
from .mm.physmem import (PAGE_SIZE, PAGE_SHIFT, PAGE_OFFSET, MAX_ORDER, Page, get_order)
from .mm.page_alloc import (alloc_pages, alloc_pages_node, alloc_page, __get_free_pages,
                            __get_free_page, get_zeroed_page, __free_pages, __free_page,
                            free_pages, free_page, free_hot_page, free_cold_page, get_page,
                            put_page, page_address, virt_to_page, pfn_to_page, page_to_pfn,
                            nr_free_pages, drain_local_pages, register_shrinker, fill_page_cache,
                            __get_dma_pages, alloc_pages_exact, free_pages_exact)
from .mm.bootmem import (__pa, __va)

# -- simulated memory (the accessors every load and store of simulated code goes through)
from .mm.access import (mem_read, mem_write, memset, memcpy, read_u8, read_u16, read_u32, read_u64,
                        write_u8, write_u16, write_u32, write_u64)

# -- atomics and marked accesses (<asm/atomic.h>, <asm/system.h>, <linux/compiler.h>)
from .mm.atomic import (atomic_read, atomic_set, atomic_add, atomic_sub, atomic_inc, atomic_dec,
                        atomic_add_return, atomic_sub_return, atomic_inc_return, atomic_dec_return,
                        atomic_sub_and_test, atomic_dec_and_test, atomic_inc_and_test,
                        atomic_add_negative, atomic_xchg, atomic_cmpxchg, cmpxchg, xchg, READ_ONCE,
                        WRITE_ONCE)

# -- barriers (<asm/system.h>, <asm/barrier.h>, <linux/compiler.h>)
from .mm.atomic import (barrier, mb, rmb, wmb, smp_mb, smp_rmb, smp_wmb, smp_mb__before_atomic,
                        smp_mb__after_atomic, smp_store_release, smp_load_acquire)

# -- bit operations (<asm/bitops.h>)
from .mm.bitops import (BITS_PER_LONG, set_bit, clear_bit, change_bit, test_and_set_bit,
                        test_and_clear_bit, test_and_change_bit, test_and_set_bit_lock,
                        clear_bit_unlock, test_bit, __set_bit, __clear_bit, __change_bit,
                        __test_and_set_bit, __test_and_clear_bit, __test_and_change_bit,
                        find_first_bit, find_first_zero_bit, find_next_bit, find_next_zero_bit,
                        for_each_set_bit, BIT, BIT_MASK, BIT_WORD, BITS_TO_LONGS, bitmap_zero)

# -- error pointers (<linux/err.h>)
from .mm.err import (MAX_ERRNO, ERR_PTR, PTR_ERR, PTR_ERR_OR_ZERO, ERR_CAST, IS_ERR, IS_ERR_OR_NULL)
# -- user space access (<asm/uaccess.h>): user buffers are Python buffers, None is NULL
from .mm.uaccess import (copy_to_user, copy_from_user, clear_user)

# -- memory debugging: kmemleak annotations (<linux/kmemleak.h>; Machine(kmemleak=True))
from .mm.kmemleak import (kmemleak_not_leak, kmemleak_ignore)

# -- slab caches and kmalloc (<linux/slab.h>)
from .mm.slab import (kmem_cache_t, kmem_cache_create, kmem_cache_destroy, kmem_cache_alloc,
                      kmem_cache_free, kmem_cache_shrink, kmem_cache_size, kmem_cache_name,
                      kmem_cache_tune, kmem_cache_drain_local, kmem_cache_alloc_node,
                      kmem_cache_zalloc, NUMA_NO_NODE, SLAB_DEBUG_FREE, SLAB_DEBUG_INITIAL,
                      SLAB_RED_ZONE, SLAB_POISON, SLAB_HWCACHE_ALIGN, SLAB_CACHE_DMA,
                      SLAB_MUST_HWCACHE_ALIGN, SLAB_STORE_USER, SLAB_RECLAIM_ACCOUNT, SLAB_PANIC,
                      SLAB_DESTROY_BY_RCU, SLAB_NO_REAP, SLAB_KERNEL, SLAB_ATOMIC, SLAB_DMA,
                      SLAB_NO_GROW, SLAB_CTOR_CONSTRUCTOR, SLAB_CTOR_ATOMIC, SLAB_CTOR_VERIFY,
                      POISON_INUSE, POISON_FREE, POISON_END, RED_INACTIVE, RED_ACTIVE)
from .mm.kmalloc import (kmalloc, kzalloc, kcalloc, kfree, ksize, KMALLOC_SIZES, KMALLOC_MAX_SIZE,
                         kmalloc_node, kzalloc_node, kcalloc_node, kmalloc_array, kmemdup, kstrdup,
                         kstrndup, krealloc, SIZE_MAX, krealloc_array, kmemdup_nul, kfree_sensitive,
                         kzfree)
from .mm.kvmalloc import (kvmalloc, kvmalloc_node, kvzalloc, kvmalloc_array, kvcalloc, kvfree)

# -- mempools (<linux/mempool.h>)
from .mm.mempool import (mempool_t, mempool_create, mempool_create_slab_pool,
                         mempool_create_kmalloc_pool, mempool_create_page_pool, mempool_destroy,
                         mempool_resize, mempool_alloc, mempool_free, mempool_alloc_slab,
                         mempool_free_slab, mempool_kmalloc, mempool_kfree, mempool_alloc_pages,
                         mempool_free_pages)

# -- vmalloc and ioremap (<linux/vmalloc.h>, <asm/io.h>)
from .mm.vmalloc import (vmalloc, vzalloc, vmalloc_user, vmalloc_32, vmalloc_exec, __vmalloc,
                         __vmalloc_node, vmalloc_node, vzalloc_node, is_vmalloc_addr, vfree,
                         vmap, vunmap,
                         vmalloc_to_page, vmalloc_to_pfn, ioremap, ioremap_nocache, __ioremap,
                         iounmap, VM_IOREMAP, VM_ALLOC, VM_MAP, VM_USERMAP, VMALLOC_OFFSET,
                         IOREMAP_MAX_ORDER,
                         PAGE_KERNEL, PAGE_KERNEL_EXEC, PAGE_KERNEL_NOCACHE)

# -- MMIO: devices and their accessors (<asm/io.h>)
from .mm.mmio import (register_io_device, unregister_io_device, readb, readw, readl, writeb,
                      writew, writel, __raw_readb, __raw_readw, __raw_readl, __raw_writeb,
                      __raw_writew, __raw_writel, memcpy_fromio, memcpy_toio, memset_io)

# -- per-CPU variables (<linux/percpu.h>)
from .mm.percpu import (DEFINE_PER_CPU, DECLARE_PER_CPU, per_cpu, __get_cpu_var, get_cpu_var,
                        put_cpu_var, per_cpu_ptr, this_cpu_ptr, get_cpu_ptr, put_cpu_ptr, this_cpu_read, this_cpu_write,
                        this_cpu_add, this_cpu_sub, this_cpu_inc, this_cpu_dec, __this_cpu_read,
                        __this_cpu_write, __this_cpu_add, __this_cpu_sub, __this_cpu_inc,
                        __this_cpu_dec, this_cpu_add_return, this_cpu_sub_return,
                        this_cpu_inc_return, this_cpu_dec_return, __this_cpu_add_return,
                        __this_cpu_sub_return, __this_cpu_inc_return, __this_cpu_dec_return,
                        alloc_percpu, alloc_percpu_gfp, __alloc_percpu,
                        __alloc_percpu_gfp, free_percpu, PERCPU_ENOUGH_ROOM, PCPU_MIN_UNIT_SIZE)

# -- C types of per-CPU variables and simulated structs (<linux/types.h>)
from .mm.ctype import (u8, u16, u32, u64, s8, s16, s32, s64, c_char, c_uchar, c_short, c_ushort,
                       c_int, c_uint, c_long, c_ulong, c_longlong, c_ulonglong, c_struct)

# -- GFP bits under names Python does not mangle, for code inside a class body
from .mm.gfp import (GFP_HIGHMEM, GFP_WAIT, GFP_HIGH, GFP_IO, GFP_FS, GFP_COLD, GFP_NOWARN,
                     GFP_REPEAT, GFP_NOFAIL, GFP_NORETRY, GFP_NO_GROW, GFP_COMP, GFP_ZERO)

# -- bootmem (<linux/bootmem.h>)
from .mm.bootmem import (alloc_bootmem, alloc_bootmem_low, alloc_bootmem_pages,
                         alloc_bootmem_low_pages, alloc_bootmem_node, alloc_bootmem_pages_node,
                         alloc_bootmem_low_pages_node, __alloc_bootmem, __alloc_bootmem_node,
                         reserve_bootmem, reserve_bootmem_node, free_bootmem, free_bootmem_node,
                         free_all_bootmem, MAX_DMA_ADDRESS)

__all__ = [
    # context, preemption and kernel threads
    "current", "get_current", "raw_smp_processor_id", "smp_processor_id", "get_cpu", "put_cpu",
    "preempt_disable", "preempt_enable", "preempt_enable_no_resched", "preempt_count",
    "preempt_point", "in_atomic", "in_interrupt", "in_irq", "in_hardirq", "in_softirq",
    "in_serving_softirq", "in_task", "irqs_disabled", "preemptible", "charge", "might_sleep",
    "might_sleep_if", "cond_resched", "kthread_run", "kthread_create", "kthread_should_stop", "kthread_stop",
    "kthread_bind", "set_cpus_allowed",
    "SYSTEM_BOOTING", "SYSTEM_RUNNING",
    # CPU masks
    "NR_CPUS", "num_possible_cpus", "num_online_cpus", "cpu_possible", "cpu_online",
    "for_each_possible_cpu", "for_each_online_cpu", "num_present_cpus", "cpu_present",
    "for_each_present_cpu",
    # interrupts and softirqs
    "local_irq_disable", "local_irq_enable", "local_irq_save", "local_irq_restore",
    "local_bh_disable", "local_bh_enable", "request_irq", "free_irq", "raise_irq", "open_softirq",
    "raise_softirq", "SA_SHIRQ", "NR_IRQS", "disable_irq", "disable_irq_nosync", "enable_irq", "synchronize_irq",
    # SMP calls
    "smp_call_function", "smp_call_function_single", "on_each_cpu",
    # sleeping, waking and time
    "TASK_RUNNING", "TASK_INTERRUPTIBLE", "TASK_UNINTERRUPTIBLE", "set_current_state",
    "__set_current_state", "schedule", "schedule_timeout", "schedule_timeout_uninterruptible",
    "schedule_timeout_interruptible", "io_schedule_timeout", "wake_up_process", "msleep", "udelay",
    "ndelay", "mdelay", "cpu_relax", "jiffies", "ktime_get_ns", "ssleep", "msleep_interruptible",
    "usleep_range", "get_jiffies_64", "time_is_before_jiffies", "time_is_after_jiffies",
    "HZ", "MAX_JIFFY_OFFSET", "time_after", "time_before", "time_after_eq", "time_before_eq",
    "time_in_range", "msecs_to_jiffies", "usecs_to_jiffies", "jiffies_to_msecs", "jiffies_to_usecs",
    # locks and wait queues
    "spinlock_t", "spin_lock_init", "DEFINE_SPINLOCK", "spin_lock", "spin_unlock", "spin_trylock",
    "spin_lock_irq", "spin_unlock_irq", "spin_lock_irqsave", "spin_unlock_irqrestore",
    "spin_lock_bh", "spin_unlock_bh", "spin_is_locked", "lockdep_assert_held", "mutex", "mutex_init", "DEFINE_MUTEX",
    "mutex_lock", "mutex_lock_interruptible", "mutex_trylock", "mutex_unlock", "mutex_is_locked", "wait_queue_head_t",
    "init_waitqueue_head", "DECLARE_WAIT_QUEUE_HEAD", "prepare_to_wait", "finish_wait",
    "wait_event", "wait_event_interruptible", "wait_event_timeout", "wait_event_interruptible_timeout",
    "wake_up", "wake_up_all",
    "wake_up_interruptible", "wake_up_nr", "waitqueue_active",
    # completions, semaphores and rwlocks
    "completion", "init_completion", "DECLARE_COMPLETION", "DECLARE_COMPLETION_ONSTACK", "reinit_completion",
    "INIT_COMPLETION",
    "complete", "complete_all", "wait_for_completion", "wait_for_completion_timeout",
    "wait_for_completion_interruptible", "wait_for_completion_interruptible_timeout",
    "wait_for_completion_killable", "try_wait_for_completion", "completion_done",
    "semaphore", "sema_init", "DEFINE_SEMAPHORE", "DECLARE_MUTEX", "DECLARE_MUTEX_LOCKED", "init_MUTEX",
    "init_MUTEX_LOCKED", "down", "down_interruptible", "down_killable", "down_timeout", "down_trylock", "up",
    "rw_semaphore", "init_rwsem", "DECLARE_RWSEM", "down_read", "down_write", "down_read_trylock",
    "down_write_trylock", "up_read", "up_write", "downgrade_write", "rwsem_is_locked",
    "rwlock_t", "rwlock_init", "DEFINE_RWLOCK", "read_lock", "read_unlock", "write_lock", "write_unlock",
    "read_trylock", "write_trylock", "read_lock_irq", "read_unlock_irq", "write_lock_irq",
    "write_unlock_irq", "read_lock_irqsave", "read_unlock_irqrestore", "write_lock_irqsave",
    "write_unlock_irqrestore", "read_lock_bh", "read_unlock_bh", "write_lock_bh", "write_unlock_bh",
    # lock validation and memalloc scopes
    "fs_reclaim_acquire", "fs_reclaim_release", "memalloc_nofs_save", "memalloc_nofs_restore",
    "memalloc_noio_save", "memalloc_noio_restore", "current_gfp_context",
    # timers, tasklets and work queues
    "timer_list", "init_timer", "setup_timer", "timer_setup", "add_timer", "add_timer_on", "mod_timer",
    "del_timer", "del_timer_sync", "timer_pending", "timer_delete", "timer_delete_sync",
    "tasklet_struct", "tasklet_init", "tasklet_setup", "DECLARE_TASKLET", "DECLARE_TASKLET_DISABLED",
    "tasklet_schedule", "tasklet_hi_schedule", "tasklet_disable", "tasklet_disable_nosync",
    "tasklet_enable", "tasklet_kill", "HI_SOFTIRQ", "TIMER_SOFTIRQ", "TASKLET_SOFTIRQ",
    "work_struct", "delayed_work", "workqueue_struct", "INIT_WORK", "DECLARE_WORK", "INIT_DELAYED_WORK",
    "DECLARE_DELAYED_WORK", "work_pending", "delayed_work_pending", "create_workqueue",
    "create_singlethread_workqueue", "destroy_workqueue", "queue_work", "schedule_work",
    "queue_delayed_work", "schedule_delayed_work", "flush_workqueue", "flush_scheduled_work",
    "cancel_work_sync", "cancel_delayed_work", "cancel_delayed_work_sync", "queue_work_on",
    "schedule_work_on", "flush_work",
    # printk and bugs
    "printk", "panic", "BUG", "WARN_ON", "BUG_ON", "WARN_ON_ONCE", "WARN", "WARN_ONCE",
    # GFP flags
    "GFP_ATOMIC", "GFP_NOWAIT", "GFP_KERNEL", "GFP_USER", "GFP_HIGHUSER", "GFP_NOIO", "GFP_NOFS", "GFP_DMA",
    "GFP_ZONEMASK", "__GFP_DMA", "__GFP_HIGHMEM", "__GFP_WAIT", "__GFP_HIGH", "__GFP_IO",
    "__GFP_FS", "__GFP_COLD", "__GFP_NOWARN", "__GFP_REPEAT", "__GFP_NOFAIL", "__GFP_NORETRY",
    "__GFP_NO_GROW", "__GFP_COMP", "__GFP_ZERO", "__GFP_BITS_SHIFT", "__GFP_BITS_MASK",
    # pages
    "PAGE_SIZE", "PAGE_SHIFT", "PAGE_OFFSET", "MAX_ORDER", "Page", "get_order",
    "alloc_pages", "alloc_pages_node", "alloc_page", "__get_free_pages", "__get_free_page",
    "get_zeroed_page", "__free_pages", "__free_page", "free_pages", "free_page", "free_hot_page",
    "free_cold_page", "get_page", "put_page", "page_address", "virt_to_page", "pfn_to_page",
    "page_to_pfn", "nr_free_pages", "drain_local_pages", "register_shrinker", "fill_page_cache",
    "__get_dma_pages", "alloc_pages_exact", "free_pages_exact",
    "__pa", "__va",
    # simulated memory
    "mem_read", "mem_write", "memset", "memcpy", "read_u8", "read_u16", "read_u32", "read_u64",
    "write_u8", "write_u16", "write_u32", "write_u64",
    # atomics and marked accesses
    "atomic_read", "atomic_set", "atomic_add", "atomic_sub", "atomic_inc", "atomic_dec",
    "atomic_add_return", "atomic_sub_return", "atomic_inc_return", "atomic_dec_return",
    "atomic_sub_and_test", "atomic_dec_and_test", "atomic_inc_and_test", "atomic_add_negative",
    "atomic_xchg", "atomic_cmpxchg", "cmpxchg", "xchg", "READ_ONCE", "WRITE_ONCE",
    # barriers
    "barrier", "mb", "rmb", "wmb", "smp_mb", "smp_rmb", "smp_wmb", "smp_mb__before_atomic",
    "smp_mb__after_atomic", "smp_store_release", "smp_load_acquire",
    # bit operations
    "BITS_PER_LONG", "set_bit", "clear_bit", "change_bit", "test_and_set_bit", "test_and_clear_bit",
    "test_and_change_bit", "test_and_set_bit_lock", "clear_bit_unlock", "test_bit", "__set_bit",
    "__clear_bit", "__change_bit", "__test_and_set_bit", "__test_and_clear_bit",
    "__test_and_change_bit", "find_first_bit", "find_first_zero_bit", "find_next_bit",
    "find_next_zero_bit", "for_each_set_bit", "BIT", "BIT_MASK", "BIT_WORD", "BITS_TO_LONGS",
    "bitmap_zero",
    # error pointers
    "MAX_ERRNO", "ERR_PTR", "PTR_ERR", "PTR_ERR_OR_ZERO", "ERR_CAST", "IS_ERR", "IS_ERR_OR_NULL",
    # user space access
    "copy_to_user", "copy_from_user", "clear_user",
    # memory debugging: kmemleak annotations
    "kmemleak_not_leak", "kmemleak_ignore",
    # slab caches and kmalloc
    "kmem_cache_t", "kmem_cache_create", "kmem_cache_destroy", "kmem_cache_alloc",
    "kmem_cache_free", "kmem_cache_shrink", "kmem_cache_size", "kmem_cache_name", "kmem_cache_tune",
    "kmem_cache_drain_local", "kmem_cache_alloc_node", "kmem_cache_zalloc", "NUMA_NO_NODE",
    "SLAB_DEBUG_FREE", "SLAB_DEBUG_INITIAL", "SLAB_RED_ZONE",
    "SLAB_POISON", "SLAB_HWCACHE_ALIGN", "SLAB_CACHE_DMA", "SLAB_MUST_HWCACHE_ALIGN",
    "SLAB_STORE_USER", "SLAB_RECLAIM_ACCOUNT", "SLAB_PANIC", "SLAB_DESTROY_BY_RCU", "SLAB_NO_REAP",
    "SLAB_KERNEL", "SLAB_ATOMIC", "SLAB_DMA", "SLAB_NO_GROW", "SLAB_CTOR_CONSTRUCTOR",
    "SLAB_CTOR_ATOMIC", "SLAB_CTOR_VERIFY", "POISON_INUSE", "POISON_FREE", "POISON_END",
    "RED_INACTIVE", "RED_ACTIVE",
    "kmalloc", "kzalloc", "kcalloc", "kfree", "ksize", "KMALLOC_SIZES", "KMALLOC_MAX_SIZE",
    "kmalloc_node", "kzalloc_node", "kcalloc_node", "kmalloc_array", "kmemdup", "kstrdup", "kstrndup",
    "krealloc", "SIZE_MAX", "krealloc_array", "kmemdup_nul", "kfree_sensitive", "kzfree",
    "kvmalloc", "kvmalloc_node", "kvzalloc", "kvmalloc_array", "kvcalloc", "kvfree",
    # mempools
    "mempool_t", "mempool_create", "mempool_create_slab_pool", "mempool_create_kmalloc_pool",
    "mempool_create_page_pool", "mempool_destroy", "mempool_resize", "mempool_alloc",
    "mempool_free", "mempool_alloc_slab", "mempool_free_slab", "mempool_kmalloc", "mempool_kfree",
    "mempool_alloc_pages", "mempool_free_pages",
    # vmalloc and ioremap
    "vmalloc", "vzalloc", "vmalloc_user", "vmalloc_32", "vmalloc_exec", "__vmalloc", "__vmalloc_node",
    "vmalloc_node", "vzalloc_node", "is_vmalloc_addr",
    "vfree", "vmap",
    "vunmap",
    "vmalloc_to_page", "vmalloc_to_pfn", "ioremap", "ioremap_nocache", "__ioremap", "iounmap",
    "VM_IOREMAP", "VM_ALLOC", "VM_MAP", "VM_USERMAP", "VMALLOC_OFFSET", "IOREMAP_MAX_ORDER", "PAGE_KERNEL",
    "PAGE_KERNEL_EXEC", "PAGE_KERNEL_NOCACHE",
    # MMIO: devices and their accessors
    "register_io_device", "unregister_io_device", "readb", "readw", "readl", "writeb", "writew",
    "writel", "__raw_readb", "__raw_readw", "__raw_readl", "__raw_writeb", "__raw_writew",
    "__raw_writel", "memcpy_fromio", "memcpy_toio", "memset_io",
    # per-CPU variables
    "DEFINE_PER_CPU", "DECLARE_PER_CPU", "per_cpu", "__get_cpu_var", "get_cpu_var", "put_cpu_var",
    "per_cpu_ptr", "this_cpu_ptr", "get_cpu_ptr", "put_cpu_ptr", "this_cpu_read", "this_cpu_write", "this_cpu_add",
    "this_cpu_sub", "this_cpu_inc", "this_cpu_dec", "__this_cpu_read", "__this_cpu_write",
    "__this_cpu_add", "__this_cpu_sub", "__this_cpu_inc", "__this_cpu_dec", "this_cpu_add_return",
    "this_cpu_sub_return", "this_cpu_inc_return", "this_cpu_dec_return", "__this_cpu_add_return",
    "__this_cpu_sub_return", "__this_cpu_inc_return", "__this_cpu_dec_return", "alloc_percpu",
    "alloc_percpu_gfp", "__alloc_percpu", "__alloc_percpu_gfp", "free_percpu", "PERCPU_ENOUGH_ROOM",
    "PCPU_MIN_UNIT_SIZE",
    # C types of per-CPU variables and simulated structs
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "c_char", "c_uchar", "c_short",
    "c_ushort", "c_int", "c_uint", "c_long", "c_ulong", "c_longlong", "c_ulonglong", "c_struct",
    # GFP bits under names Python does not mangle, for code inside a class body
    "GFP_HIGHMEM", "GFP_WAIT", "GFP_HIGH", "GFP_IO", "GFP_FS", "GFP_COLD", "GFP_NOWARN",
    "GFP_REPEAT", "GFP_NOFAIL", "GFP_NORETRY", "GFP_NO_GROW", "GFP_COMP", "GFP_ZERO",
    # bootmem
    "alloc_bootmem", "alloc_bootmem_low", "alloc_bootmem_pages", "alloc_bootmem_low_pages",
    "alloc_bootmem_node", "alloc_bootmem_pages_node", "alloc_bootmem_low_pages_node",
    "__alloc_bootmem", "__alloc_bootmem_node", "reserve_bootmem", "reserve_bootmem_node",
    "free_bootmem", "free_bootmem_node", "free_all_bootmem", "MAX_DMA_ADDRESS",
]
