"""Running units of work in this process, in a pool of processes or on a Dask cluster, with identical results.

Workers only compute: they return plain results, and the caller (the main process) writes files and logs. Each
task is a pure function call, so where it runs changes nothing in what it returns. Pool workers die with the main
process: the kernel kills them when it ends, however it ends (even SIGKILL), they leave Ctrl-C to it, and when it
stops with an error or an interrupt they are terminated at once rather than finishing their tasks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Hashable, Iterator, Mapping

from engine import ReplicationResult, Results, run_replication
from scenarios import Scenario

#: A finished task: its key, its value (None if it raised) and the exception it raised (None if it did not).
Outcome = tuple[Hashable, Any, BaseException | None]


class ExecutorError(RuntimeError):
    """An executor that cannot start: Dask missing, or a scheduler that does not answer."""


class Executor:
    """Runs ``fn(*args)`` for each task and yields outcomes as they finish; one process, no pool."""

    def run(self, fn: Callable[..., Any], tasks: Mapping[Hashable, tuple]) -> Iterator[Outcome]:
        for key, args in tasks.items():
            try:
                value = fn(*args)
            except Exception as error:  # noqa: BLE001 - the caller decides what a failed task means
                yield key, None, error
            else:
                yield key, value, None


class PoolExecutor(Executor):
    """A local pool of ``workers`` processes."""

    def __init__(self, pool: ProcessPoolExecutor):
        self.pool = pool

    def run(self, fn: Callable[..., Any], tasks: Mapping[Hashable, tuple]) -> Iterator[Outcome]:
        """Tasks left when the caller stops are the executor's to cancel as its context ends (``executor``): a
        future cancelled here, while the pool's manager thread still lists it, fails that thread when the workers
        are stopped (``InvalidStateError``)."""
        futures = {self.pool.submit(fn, *args): key for key, args in tasks.items()}
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], None if error else future.result(), error


class DaskExecutor(Executor):
    """A ``dask.distributed`` client: a remote scheduler, or a local cluster made for the run."""

    def __init__(self, client: Any):
        self.client = client

    def run(self, fn: Callable[..., Any], tasks: Mapping[Hashable, tuple]) -> Iterator[Outcome]:
        from dask.distributed import as_completed as dask_completed

        futures = {self.client.submit(fn, *args, pure=False): key for key, args in tasks.items()}
        try:
            for future in dask_completed(list(futures)):
                error = future.exception() if future.status == "error" else None
                yield futures[future], None if error else future.result(), error
        finally:
            self.client.cancel(list(futures))


#: Linux's prctl option that sends a signal to a process when its parent ends.
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Run in each pool worker as it starts: SIGKILL from the kernel when the parent ends (Linux), or else a
    watch on the parent every second; Ctrl-C (SIGINT, sent to the whole terminal group) is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent ended before the call
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="salesops-parent-watch", daemon=True).start()


def stop_workers() -> None:
    """Terminate this process's pool workers and wait for them (an interrupt or an error in the main process)."""
    for child in multiprocessing.active_children():
        child.terminate()
    for child in multiprocessing.active_children():
        child.join(timeout=5)
        if child.is_alive():
            child.kill()


def interrupt_on_sigterm() -> None:
    """Handle SIGTERM as Ctrl-C: a KeyboardInterrupt in the main thread, so that the same clean-up runs."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextmanager
def executor(workers: int = 1, scheduler: str | None = None) -> Iterator[Executor]:
    """This process (1 worker), a process pool (``workers`` > 1) or Dask (``scheduler``: ``local`` or an address)."""
    if scheduler is None:
        if workers <= 1:
            yield Executor()
            return
        pool = ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),))
        try:
            yield PoolExecutor(pool)
        except BaseException:
            stop_workers()  # first: the pool's manager thread then sees its workers gone and ends at once
            # and is joined here: left running, it races the interpreter's exit, which wakes it through a pipe it may
            # be closing (a traceback, "Bad file descriptor", after the command's own error line)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorError("--scheduler needs Dask: pip install 'salesops[dask]'") from None
    if scheduler == "local":
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
        )
        with cluster, Client(cluster) as client:
            yield DaskExecutor(client)
        return
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as error:
        raise ExecutorError(f"--scheduler {scheduler}: no Dask scheduler answers ({error})") from None
    with client:
        yield DaskExecutor(client)


def replicate(
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    workers: int = 1,
    on_replication: Callable[[int], None] | None = None,
    keep_log: bool = False,
    pool: Executor | None = None,
) -> list[ReplicationResult]:
    """Replications 0..n-1 in replication order, in ``workers`` processes when more than one (or on ``pool``, an
    executor already open); a failure raises."""
    return map_replications(run_replication, scenario, replications, seed, workers, on_replication, keep_log, pool=pool)


def map_replications(
    fn: Callable[..., Any],
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    workers: int = 1,
    on_replication: Callable[[int], None] | None = None,
    *args: Any,
    pool: Executor | None = None,
) -> list[Any]:
    """``fn(scenario, r, seed, *args)`` for r in 0..n-1, in ``workers`` processes when more than one, returned in
    replication order: a worker can reduce a replication to what its caller needs. ``pool``: an executor already
    open, for a caller that simulates many times (its workers keep their warm-ups between calls). A failure raises."""
    done: dict[int, Any] = {}
    tasks = {r: (scenario, r, seed, *args) for r in range(replications)}
    with nullcontext(pool) if pool is not None else executor(workers) as running:
        for replication, result, error in running.run(fn, tasks):
            if error is not None:
                raise error
            done[replication] = result  # type: ignore[index]
            if on_replication:
                on_replication(replication)  # type: ignore[arg-type]
    return [done[r] for r in range(replications)]


def run_replications(
    scenario: Scenario,
    replications: int,
    seed: int | None = None,
    workers: int = 1,
    keep_log: bool = False,
    pool: Executor | None = None,
) -> Results:
    """Simulate replications 0..n-1, in ``workers`` processes when more than one (or on ``pool``, an executor
    already open); results are in replication order."""
    return Results.from_replications(replicate(scenario, replications, seed, workers, keep_log=keep_log, pool=pool))
