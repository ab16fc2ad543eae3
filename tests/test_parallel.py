"""Running one function over many tasks: in order in this process, or in worker processes that may die."""

from __future__ import annotations

import sys
import textwrap

import pytest

from artefix.parallel import run_tasks, worker_threads

TASKS_MODULE = '''
import os
from pathlib import Path


def double(x):
    return 2 * x


def die_once(args):
    """Kill the worker the first time (a marker file remembers it), then answer."""
    marker, x = args
    if not Path(marker).exists():
        Path(marker).touch()
        os._exit(3)
    return 2 * x


def die_on(args):
    """Kill the worker for the poisoned value, every time; answer for the others."""
    poison, x = args
    if x == poison:
        os._exit(3)
    return 2 * x


def threads(_):
    return os.environ.get("OMP_NUM_THREADS")
'''


@pytest.fixture()
def tasks_module(tmp_path, monkeypatch):
    """A module of task functions that worker processes can import (spawned workers get ``sys.path``)."""
    (tmp_path / "artefix_test_tasks.py").write_text(textwrap.dedent(TASKS_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    import artefix_test_tasks

    yield artefix_test_tasks
    sys.modules.pop("artefix_test_tasks", None)


def _collect(fn, tasks, jobs):
    results, lost = {}, {}
    run_tasks(fn, tasks, jobs=jobs, on_result=results.__setitem__, on_lost=lost.__setitem__)
    return results, lost


def test_in_process_in_order_and_a_raising_task_is_reported(tasks_module):
    order = []

    def fn(x):
        if x == 2:
            raise ValueError("bad\nvalue")
        return x * 10

    run_tasks(fn, [0, 1, 2, 3], on_result=lambda i, r: order.append((i, r)), on_lost=lambda i, why: order.append(why))
    assert order == [(0, 0), (1, 10), "ValueError: bad value", (3, 30)]
    with pytest.raises(ValueError, match="jobs"):
        run_tasks(fn, [1], jobs=0, on_result=print, on_lost=print)
    assert worker_threads(10**6) == 1


@pytest.mark.slow
def test_workers_that_die_are_replaced_and_only_the_culprit_is_lost(tasks_module, tmp_path):
    results, lost = _collect(tasks_module.die_once, [(str(tmp_path / "died"), x) for x in range(4)], jobs=2)
    assert results == {i: 2 * i for i in range(4)} and lost == {}  # its own retry succeeded, nothing lost
    results, lost = _collect(tasks_module.die_on, [(3, x) for x in range(6)], jobs=2)
    assert set(lost) == {3} and "worker process died" in lost[3]
    assert results == {i: 2 * i for i in range(6) if i != 3}  # the tasks running beside it were rerun, not lost
    results, _ = _collect(tasks_module.threads, [0], jobs=2)
    assert results == {0: str(worker_threads(2))}


@pytest.fixture()
def dask_cluster():
    """A Dask cluster of two single-thread workers in this process (fast to start)."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield cluster, client


def test_dask_cluster_runs_every_task(tasks_module, dask_cluster):
    cluster, client = dask_cluster
    results, lost = {}, {}
    run_tasks(tasks_module.double, list(range(11)), scheduler=client, on_result=results.__setitem__,
              on_lost=lost.__setitem__)  # fmt: skip
    assert results == {i: 2 * i for i in range(11)} and lost == {}
    results.clear()
    run_tasks(int, ["1", "x", "3"], scheduler=cluster.scheduler_address, on_result=results.__setitem__,
              on_lost=lost.__setitem__)  # fmt: skip
    assert results == {0: 1, 2: 3} and list(lost) == [1] and lost[1].startswith("ValueError: invalid literal")
    with pytest.raises(ValueError, match="exclude each other"):
        run_tasks(int, ["1"], jobs=2, scheduler=client, on_result=print, on_lost=print)


@pytest.mark.slow
def test_dask_reruns_the_task_of_a_worker_that_died(tasks_module, tmp_path):
    """Two worker processes; the first run of a task kills its worker: the scheduler reruns it elsewhere."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.run(lambda path: __import__("sys").path.insert(0, path), str(tmp_path))
        results, lost = {}, {}
        tasks = [(str(tmp_path / "died"), x) for x in range(6)]
        run_tasks(tasks_module.die_once, tasks, scheduler=client, on_result=results.__setitem__,
                  on_lost=lost.__setitem__)  # fmt: skip
    assert (tmp_path / "died").exists()  # a worker did die
    assert results == {i: 2 * i for i in range(6)} and lost == {}
