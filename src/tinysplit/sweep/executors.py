"""Where sweep points run: local processes (default) or a Dask cluster.

:class:`PointExecutor` is the contract: :meth:`PointExecutor.run` takes a worker function and
named tasks and yields ``(name, outcome)`` as points finish, in any order, where the outcome is
the function's return value or the exception it raised (one failing point never stops the
others). Leaving the iteration early (Ctrl-C, an error in the consumer) cancels the points not
started yet. Executors are chosen by :class:`ExecutorKind` in :func:`make_executor`, which
imports Dask only when asked for it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from enum import StrEnum
from typing import Any

from tinysplit.errors import ConfigError, MissingExtraError

Outcome = tuple[str, Any]
Worker = Callable[[Any], Any]


class ExecutorKind(StrEnum):
    """Executor ids (``--executor``)."""

    LOCAL = "local"
    DASK = "dask"


class PointExecutor(ABC):
    """Runs sweep points somewhere.

    Implementations yield every task exactly once unless the consumer stops early, return the
    worker's value or the exception it raised as the outcome, and never reorder a task's own
    work: a point's record depends only on its task.
    """

    #: Workers the executor runs points on (for the progress display).
    workers: int = 1

    @abstractmethod
    def run(self, fn: Worker, tasks: Mapping[str, Any]) -> Iterator[Outcome]:
        """Run ``fn(task)`` for every named task; yield ``(name, value or exception)``."""


class LocalExecutor(PointExecutor):
    """Points in local worker processes (``jobs`` of them), or in this process for ``jobs=1``.

    Workers are forked from a ``forkserver`` that has imported the simulator (``spawn`` where
    there is none, as on Windows): both are safe next to the progress bar's thread, unlike a plain
    ``fork``. Workers ignore Ctrl-C: the sweep's own process handles it, keeps the points that
    finished and cancels the rest; points already running finish in the background.

    Args:
        jobs: worker processes (default: ``os.cpu_count()``).
    """

    def __init__(self, jobs: int | None = None) -> None:
        if jobs is not None and jobs < 1:
            raise ConfigError(f"--jobs must be >= 1, got {jobs}")
        self.workers = jobs or os.cpu_count() or 1

    def run(self, fn: Worker, tasks: Mapping[str, Any]) -> Iterator[Outcome]:
        if self.workers == 1 or len(tasks) <= 1:
            for name, task in tasks.items():
                yield name, _call(fn, task)
            return
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(tasks)),
            mp_context=_context(),
            initializer=_ignore_sigint,
        )
        try:
            pending: dict[Future[Any], str] = {pool.submit(fn, t): n for n, t in tasks.items()}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f]):
                    name = pending.pop(future)
                    exc = future.exception()
                    yield name, exc if exc is not None else future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


#: Modules the fork server imports once, so that every worker starts with them loaded.
PRELOAD = ["tinysplit.sweep.point", "tinysplit.sim.pipeline", "tinysplit.links"]


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def _call(fn: Worker, task: Any) -> Any:
    try:
        return fn(task)
    except Exception as exc:  # a failing point is an outcome, the others still run
        return exc


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class DaskExecutor(PointExecutor):
    """Points on a Dask cluster (``pip install 'tinysplit[dask]'``).

    Args:
        scheduler: address of a running scheduler (``tcp://host:8786``); None starts a local
            cluster of ``jobs`` single-threaded workers for this sweep.
        jobs: workers of the local cluster (default ``os.cpu_count()``).
        processes: local cluster only: workers in processes (default) or threads of this process.

    Raises:
        MissingExtraError: Dask's distributed scheduler is not installed.
    """

    def __init__(
        self, scheduler: str | None = None, *, jobs: int | None = None, processes: bool = True
    ) -> None:
        try:
            import dask.distributed  # noqa: F401  # checked here, used in run()
        except ImportError:
            raise MissingExtraError(
                "--executor dask needs Dask: pip install 'tinysplit[dask]'"
            ) from None
        self.scheduler = scheduler
        self.processes = processes
        self.workers = jobs or os.cpu_count() or 1

    def run(self, fn: Worker, tasks: Mapping[str, Any]) -> Iterator[Outcome]:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if self.scheduler is None:
            cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=self.processes,
                dashboard_address=None,
            )
        try:
            client = Client(cluster if cluster is not None else self.scheduler)
        except (OSError, ValueError) as exc:  # unreachable, or not an address at all
            if cluster is not None:
                cluster.close()
            raise ConfigError(f"cannot reach the Dask scheduler {self.scheduler}: {exc}") from exc
        futures: dict[Any, str] = {}
        try:
            for name, task in tasks.items():
                futures[client.submit(fn, task, key=f"tinysplit-sweep-{name}", pure=False)] = name
            for future in as_completed(futures):
                name = futures[future]
                if future.status == "error":
                    yield name, future.exception()
                else:
                    yield name, future.result()
        finally:
            client.cancel(list(futures))
            client.close()
            if cluster is not None:
                cluster.close()


def make_executor(
    kind: ExecutorKind | str, *, jobs: int | None = None, scheduler: str | None = None
) -> PointExecutor:
    """The executor for ``--executor`` (Dask imported only for ``dask``).

    Raises:
        ConfigError: an unknown kind, or a scheduler address for the local executor.
        MissingExtraError: ``dask`` without Dask installed.
    """
    try:
        kind = ExecutorKind(kind)
    except ValueError:
        valid = ", ".join(k.value for k in ExecutorKind)
        raise ConfigError(f"unknown executor {kind!r} (valid: {valid})") from None
    match kind:
        case ExecutorKind.LOCAL:
            if scheduler is not None:
                raise ConfigError("--scheduler needs --executor dask")
            return LocalExecutor(jobs)
        case ExecutorKind.DASK:
            return DaskExecutor(scheduler, jobs=jobs)
