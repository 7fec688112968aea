"""A pool of OS threads reused across runs.

Starting a thread costs more than a whole small scenario, and seed exploration
runs thousands of scenarios: tasks borrow a pooled thread and give it back when
they end. The pool is process-wide but holds no machine state.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

_idle: list[_Worker] = []
_idle_lock = threading.Lock()
_count = 0


class _Worker:
    __slots__ = ("jobs", "thread")

    def __init__(self) -> None:
        global _count
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        _count += 1
        self.thread = threading.Thread(target=self._loop, name=f"percpu_kmem-{_count}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
            except BaseException:  # noqa: BLE001 - a job reports its own errors
                pass
            with _idle_lock:
                _idle.append(self)


def submit(job: Callable[[], None]) -> None:
    """Run ``job`` on a pooled thread."""
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
    worker.jobs.put(job)


def pool_size() -> int:
    """Threads created so far (for tests that check threads are reused)."""
    return _count
