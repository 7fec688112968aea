"""Campaigns in parallel: the same jobs in worker processes, or on a Dask cluster.

A campaign is a list of :class:`~percpu_kmem.campaign.Job` (percpu_kmem/campaign.py).
Here it is cut into chunks of consecutive jobs; each chunk runs in a worker, which
loads its scenarios by their path spec (``file.py::name``, the scenario's name) and
returns a :class:`~percpu_kmem.campaign.CampaignResult`; the parts are merged with
``CampaignResult.merge``. Every run depends only on its job (scenario, machine, policy,
options, seed), so the merged result is the same with 1 job, N worker processes or a
Dask cluster.

    from percpu_kmem.parallel import run_parallel
    result = run_parallel(scenarios, seeds=range(1000), jobs=4)          # worker processes
    result = run_parallel(scenarios, seeds=range(1000), dask="local")   # a LocalCluster
    result = run_parallel(scenarios, seeds=range(1000), dask="tcp://scheduler:8786")

On Dask the workers import the scenario files by the same paths (a relative one taken
from the submitting process's working directory): a cluster beyond this machine needs
them at the same place (a shared file system or the same checkout), and percpu_kmem
installed. Dask is an optional extra (``pip install 'percpu_kmem[dask]'``).

Ctrl-C: the chunks not started are cancelled, the running ones end at their next run
(the workers get the signal too when they share the terminal) and what finished is
merged into an ``interrupted`` result.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any

from .campaign import CampaignResult, Job, check_machines, jobs, run_jobs
from .runtime.errors import KmemUsageError
from .scenarios import StressScenario, load_scenarios

#: At most this many runs per chunk: small enough for a live progress bar and a quick Ctrl-C.
CHUNK_MAX = 25
#: Chunks per worker at least, so that a slow chunk does not leave the others idle.
CHUNKS_PER_WORKER = 4


def run_chunk(chunk: Sequence[Job], base: str | None = None) -> CampaignResult:
    """Run a chunk of jobs in this process (a worker): load each scenario by its spec, a
    relative path taken from ``base`` (the submitting process's working directory)."""
    names = sorted({j.scenario for j in chunk})
    scenarios: list[StressScenario] = []
    for name in names:
        spec = name
        if base is not None and not Path(name.partition("::")[0]).is_absolute():
            spec = str(Path(base) / name)
        found = load_scenarios(spec)
        if len(found) != 1:
            raise KmemUsageError(f"scenario spec {name!r} names {len(found)} scenarios, not one")
        scenarios.append(replace(found[0], name=name))
    return run_jobs(scenarios, chunk)


def chunks(job_list: Sequence[Job], workers: int) -> list[list[Job]]:
    """Consecutive chunks of at most CHUNK_MAX jobs, at least CHUNKS_PER_WORKER per worker."""
    n = len(job_list)
    size = max(1, min(CHUNK_MAX, -(-n // max(1, workers * CHUNKS_PER_WORKER))))
    return [list(job_list[i:i + size]) for i in range(0, n, size)]


def _check_specs(scenarios: Sequence[StressScenario]) -> None:
    for sc in scenarios:
        if "::" not in sc.name:
            raise KmemUsageError(f"scenario {sc.name!r} has no path spec (file.py::name): parallel "
                                 f"workers load scenarios from files")


def run_parallel(scenarios: Sequence[StressScenario], *, seeds: Iterable[int] | None = None,
                 policies: Sequence[str] | None = None, cpus: Sequence[int] | None = None,
                 runs: Sequence[tuple[str, dict[str, Any], int]] | None = None,
                 first_seed: int = 0, jobs_n: int = 1, dask: str | None = None,
                 progress: Callable[[int, int], None] | None = None, **machine: Any) -> CampaignResult:
    """Run the campaign :func:`~percpu_kmem.campaign.jobs` plans, in ``jobs_n`` worker
    processes (1: in this process), or on Dask (``dask``: a scheduler address such as
    ``tcp://host:8786``, or ``"local"`` for a LocalCluster on this machine).

    ``progress(runs, failing)`` is called as runs finish (a chunk at a time in workers). Raises KmemUsageError for a
    bad plan, ``jobs_n < 1``, or Dask asked for but not installed.
    """
    if isinstance(jobs_n, bool) or not isinstance(jobs_n, int) or jobs_n < 1:
        raise KmemUsageError(f"jobs(={jobs_n!r}) must be an int >= 1")
    job_list = jobs(scenarios, seeds=seeds, policies=policies, cpus=cpus, runs=runs, first_seed=first_seed,
                    **machine)
    check_machines(scenarios, job_list)
    if dask is None and jobs_n == 1:
        each = None if progress is None else (lambda o: progress(1, int(o.failed)))
        return run_jobs(scenarios, job_list, progress=each)
    _check_specs(scenarios)
    if dask is not None:
        return _run_dask(job_list, dask, jobs_n, progress)
    return _run_processes(job_list, jobs_n, progress)


def _collect(done: Iterable[Future[CampaignResult]], result: CampaignResult,
             progress: Callable[[int, int], None] | None) -> CampaignResult:
    for f in done:
        if f.cancelled():
            continue
        part = f.result()
        result = result.merge(part)
        if progress is not None:
            progress(part.runs, len(part.failures))
    return result


def _run_processes(job_list: list[Job], workers: int, progress: Callable[[int, int], None] | None) -> CampaignResult:
    t0 = time.perf_counter()
    result = CampaignResult()
    # spawn, not fork: a forked child would inherit the parent's thread pool without its threads
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    pending: set[Future[CampaignResult]] = set()
    try:
        pending = {pool.submit(run_chunk, c, os.getcwd()) for c in chunks(job_list, workers)}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            result = _collect(done, result, progress)
    except KeyboardInterrupt:
        for f in pending:
            f.cancel()
        try:
            result = _collect(wait(pending, timeout=30)[0], result, progress)
        except (KeyboardInterrupt, Exception):  # a second Ctrl-C, or a worker killed by the first
            pass
        result.interrupted = True
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    result.seconds = time.perf_counter() - t0
    return result


def _run_dask(job_list: list[Job], address: str, workers: int,
              progress: Callable[[int, int], None] | None) -> CampaignResult:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise KmemUsageError("--dask needs Dask distributed: pip install 'percpu_kmem[dask]'") from None
    t0 = time.perf_counter()
    result = CampaignResult()
    cluster = None
    try:
        if address == "local":
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(address, timeout=30)
    except OSError as e:
        if cluster is not None:
            cluster.close()
        raise KmemUsageError(f"cannot reach the Dask scheduler at {address!r}: {e}") from None
    try:
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
        parts = chunks(job_list, n_workers)
        futures = client.map(run_chunk, parts, [os.getcwd()] * len(parts), pure=False)
        try:
            for f in as_completed(futures):
                part = f.result()
                result = result.merge(part)
                if progress is not None:
                    progress(part.runs, len(part.failures))
        except KeyboardInterrupt:
            client.cancel(futures)
            result.interrupted = True
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["CHUNK_MAX", "CHUNKS_PER_WORKER", "run_chunk", "chunks", "run_parallel"]
