"""Run one function over many scans: in this process, or in worker processes, results as they complete.

:func:`run_tasks` is what ``artefix qc`` and bulk ``artefix correct`` use. With ``jobs=1`` the tasks run one
after the other in this process. With ``jobs=N`` they run in ``N`` worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`, started with ``spawn``: no forked copy of PyTorch's thread
pools), each limited to ``cpu_count // N`` PyTorch threads so the workers do not oversubscribe the cores; at most
``2 N`` tasks are submitted at a time, so memory does not grow with the number of scans.

With a Dask scheduler (:func:`run_dask`) the tasks run on the workers of a ``dask.distributed`` cluster
instead, one machine or many.

A worker that dies (killed, out of memory, a crash in native code) breaks the pool, and every task running in
it fails with it. The pool is restarted and those tasks are run again one at a time, alone: one that kills its
worker again is the culprit and is reported through ``on_lost``, the others complete (a scan too large for
several workers' memory at once gets all of it); then the remaining tasks go on in parallel. The function itself
should return its failures as results (a failing scan must not stop the others); an exception that escapes it
is reported through ``on_lost`` too.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, TypeVar

from artefix.atomic import one_line

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


THREAD_VARIABLES: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
"""Environment variables that bound a worker's threads (read by PyTorch and NumPy's BLAS when imported)."""


def _worker_init(threads: int) -> None:
    """In each worker: bound its threads, and let SIGTERM unwind like Ctrl-C so atomic writes clean up.

    The thread bound is set in the environment before PyTorch is imported (the first task imports it), so a
    worker that never needs PyTorch starts fast.
    """
    import sys

    for name in THREAD_VARIABLES:
        os.environ[name] = str(max(1, threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, threads))
    signal.signal(signal.SIGTERM, _raise_interrupt)


def worker_threads(jobs: int) -> int:
    """PyTorch threads per worker process: the CPU cores shared out among ``jobs`` workers (at least 1)."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    jobs: int = 1,
    scheduler: Any = None,
    on_result: Callable[[int, R], None],
    on_lost: Callable[[int, str], None],
) -> None:
    """Call ``fn(task)`` for every task; hand each result to ``on_result(index, result)`` as it completes.

    Args:
        fn: A module-level function (picklable for ``jobs > 1`` and Dask); it should return failures as results.
        tasks: Picklable task values.
        jobs: Worker processes; 1 runs every task in this process, in order.
        scheduler: A Dask scheduler's address (``tcp://host:8786``) or a ``distributed.Client``: the tasks
            run on that cluster's workers instead (``jobs`` must be 1). See :func:`run_dask`.
        on_result: Called in this process with the task's index in ``tasks`` and ``fn``'s result.
        on_lost: Called with the index and a one-line reason for a task whose ``fn`` raised, or that killed its
            worker process (while running alone; on Dask: as often as the scheduler allows).

    Raises:
        ValueError: ``jobs`` below 1, or above 1 with a scheduler.
        InputError: A scheduler without Dask installed, or one that cannot be reached.
        KeyboardInterrupt: Passed on after cancelling the tasks not started (workers stop with the signal).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    if scheduler is not None:
        if jobs != 1:
            raise ValueError("jobs and a Dask scheduler exclude each other: the cluster's workers run the tasks")
        run_dask(fn, tasks, scheduler, on_result=on_result, on_lost=on_lost)
        return
    if jobs == 1:
        for i, task in enumerate(tasks):
            try:
                result = fn(task)
            except Exception as exc:  # noqa: BLE001 - reported per task, the others go on
                log.debug("task %d failed", i, exc_info=True)
                on_lost(i, f"{type(exc).__name__}: {one_line(exc)}")
                continue
            on_result(i, result)
        return
    _run_pool(fn, tasks, jobs, on_result, on_lost)


def _new_pool(jobs: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_init, initargs=(worker_threads(jobs),))


def _run_pool(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    jobs: int,
    on_result: Callable[[int, R], None],
    on_lost: Callable[[int, str], None],
) -> None:
    pending = deque(range(len(tasks)))
    suspects: deque[int] = deque()  # tasks that were running when a worker died: rerun one at a time
    running: dict[Future[R], int] = {}

    def settle(future: Future[R], i: int, alone: bool) -> bool:
        """Hand a finished task's outcome on; True when its worker died (the pool is broken)."""
        try:
            result = future.result()
        except BrokenProcessPool:
            if alone:  # it ran alone: it killed its worker
                on_lost(i, "its worker process died (killed, or out of memory?)")
            else:
                suspects.append(i)
            return True
        except Exception as exc:  # noqa: BLE001 - reported per task, the others go on
            on_lost(i, f"{type(exc).__name__}: {one_line(exc)}")
            return False
        on_result(i, result)
        return False

    pool = _new_pool(jobs)
    try:
        while pending or suspects or running:
            alone = bool(suspects)
            broken = False
            queue = suspects if alone else pending
            try:
                while queue and len(running) < (1 if alone else 2 * jobs):
                    i = queue.popleft()
                    try:
                        running[pool.submit(fn, tasks[i])] = i
                    except BrokenProcessPool:  # a worker died since the last wait
                        queue.appendleft(i)
                        raise
            except BrokenProcessPool:
                broken = True
            if running and not broken:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    broken |= settle(future, running.pop(future), alone)
            if broken:
                log.warning("a worker process died; rerunning the scans it may have taken down, one at a time")
                pool.shutdown(wait=False, cancel_futures=True)  # waiting on a broken pool can hang (CPython 3.11)
                for future, i in list(running.items()):  # a task that finished keeps its outcome
                    running.pop(future)
                    if future.done() and not future.cancelled():
                        settle(future, i, alone)
                    else:
                        suspects.append(i)
                pool = _new_pool(jobs)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_dask(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    scheduler: Any,
    *,
    on_result: Callable[[int, R], None],
    on_lost: Callable[[int, str], None],
) -> None:
    """:func:`run_tasks` on a Dask ``distributed`` cluster (``pip install 'artefix[dask]'``).

    At most twice as many tasks as the cluster has worker threads are submitted at a time (at least 4), each
    result is fetched and released as it completes, so neither side's memory grows with the number of scans.
    A worker that dies takes its running tasks with it; the scheduler reruns them on the other workers (up to
    its ``distributed.scheduler.allowed-failures`` setting, then the task is reported through ``on_lost``).
    The workers must import artefix and see the scans' and outputs' paths (a shared file system); each loads the
    model once (:func:`artefix.correction.spec.loaded_model`). Outputs are written atomically under fixed
    names, so a task that runs twice leaves one complete output.

    Args:
        fn: A module-level function; it should return failures as results.
        tasks: Picklable task values.
        scheduler: The scheduler's address, or a ``distributed.Client`` (left open).
        on_result: As for :func:`run_tasks`.
        on_lost: As for :func:`run_tasks`.

    Raises:
        InputError: Dask is not installed, or the scheduler cannot be reached.
    """
    with dask_client(scheduler) as client:
        _run_dask(fn, tasks, client, on_result, on_lost)


@contextmanager
def dask_client(scheduler: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``scheduler``: connected here to an address (closed on exit), or as given.

    Yields None for ``scheduler=None``, so a caller can connect before it writes anything.

    Raises:
        InputError: Dask is not installed, or the scheduler cannot be reached (30 s).
    """
    if scheduler is None:
        yield None
        return
    from artefix.errors import InputError

    try:
        from distributed import Client
    except ImportError:
        raise InputError("`scheduler` needs Dask: pip install 'artefix[dask]' (dask[distributed])") from None
    if isinstance(scheduler, Client):
        yield scheduler
        return
    try:
        client = Client(scheduler, timeout=30)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"`scheduler` {scheduler}: cannot connect ({one_line(exc)})") from exc
    try:
        yield client
    finally:
        client.close()


def _run_dask(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    client: Any,
    on_result: Callable[[int, R], None],
    on_lost: Callable[[int, str], None],
) -> None:
    from distributed import as_completed

    index: dict[str, int] = {}
    live: dict[str, Any] = {}  # submitted, not yet fetched
    upcoming = iter(range(len(tasks)))

    def submit(i: int) -> Any:
        future = client.submit(fn, tasks[i], pure=False)
        index[future.key] = i
        live[future.key] = future
        return future

    try:
        window = max(4, 2 * sum(client.nthreads().values()))
        queue = as_completed([submit(i) for _, i in zip(range(window), upcoming, strict=False)])
        for future in queue:
            i = index.pop(future.key)
            live.pop(future.key, None)
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001 - KilledWorker, or fn raised: reported per task
                on_lost(i, f"{type(exc).__name__}: {one_line(exc)}")
            else:
                on_result(i, result)
            future.release()
            following = next(upcoming, None)
            if following is not None:
                queue.add(submit(following))
    except BaseException:
        if live:
            client.cancel(list(live.values()))
        raise
