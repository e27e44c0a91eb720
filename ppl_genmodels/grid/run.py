"""Run a grid's tasks on a Dask cluster (or serially), write each result atomically, resume.

Layout of the output folder::

    OUT/tasks/<task name>/result.json   written last: its presence marks the task finished
    OUT/tasks/<task name>/<files>       the task's files (InferenceData, SBC ranks, a run)
    OUT/report.md, OUT/*.png, OUT/*.csv  the grid report (:mod:`ppl_genmodels.grid.report`)

Dask: ``distributed.Client`` on an embedded ``LocalCluster`` (worker processes, one thread
each) or on a running scheduler (``dask scheduler`` / ``dask worker``); tasks are submitted
with ``pure=False`` and collected with ``distributed.as_completed`` (Dask documentation,
"Futures").
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from ..io import check_writable
from .spec import GridSpec, validate_tasks
from .store import finished_tasks, write_result
from .tasks import run_task

__all__ = ["run_grid", "GridTaskError"]


class GridTaskError(RuntimeError):
    """A task raised; the message names it. Tasks finished before it stay saved."""


def run_grid(spec: GridSpec, out: str | Path, *, scheduler: str | None = None,
             workers: int = 2, serial: bool = False, dashboard_address: str = ":8787",
             client=None, progress: bool = True, report: bool = True,
             echo: Callable[[str], None] = lambda s: print(s, flush=True)) -> dict:
    """Run the spec's unfinished tasks and write the grid report.

    :param out: output folder (created; checked writable before any work).
    :param scheduler: address of a running Dask scheduler (``tcp://HOST:PORT``); ``None``
        starts a ``LocalCluster`` of ``workers`` processes with one thread each.
    :param serial: run the tasks one after the other in this process, without Dask.
    :param dashboard_address: the LocalCluster's dashboard (``":0"``: any free port).
    :param client: a ``distributed.Client`` to use as it is (``scheduler`` and ``workers``
        are then ignored; it is not closed).
    :returns: ``{"ran": n, "skipped": n, "report": path or None, "dashboard": link or None}``.
    :raises GridSpecError: an engine setting or training config is invalid (before any task
        runs); :class:`~ppl_genmodels.io.OutputFolderError`: ``out`` is not writable;
        :class:`GridTaskError`: a task raised (finished tasks stay saved: rerun to resume).
    """
    validate_tasks(spec.tasks)
    check_writable(out)
    done = finished_tasks(out, spec.tasks)
    todo = [t for t in spec.tasks if t.id not in done]
    echo(f"grid: {len(spec.tasks)} task(s), {len(done)} already finished, {len(todo)} to run")
    dashboard = None
    if todo and serial:
        for task in _bar(todo, progress, len(todo)):
            try:
                result = run_task(task)
            except Exception as exc:
                raise _failed(task.name, exc, out) from exc
            write_result(out, result)
    elif todo:
        dashboard = _run_dask(todo, out, scheduler, workers, dashboard_address, progress, echo,
                              client)
    path = None
    if report:
        from .report import write_grid_report

        path = write_grid_report(spec, out)
        echo(f"grid report: {path}")
    return {"ran": len(todo), "skipped": len(done), "report": path, "dashboard": dashboard}


def _failed(name: str, exc: Exception, out) -> GridTaskError:
    return GridTaskError(f"task {name} failed: {type(exc).__name__}: {exc}; finished tasks are "
                         f"saved under {out}: fix the cause and rerun the grid to resume")


def _bar(iterable, progress: bool, total: int):
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc="grid tasks", disable=not progress, file=sys.stderr)


def _run_dask(todo, out, scheduler, workers, dashboard_address, progress, echo,
              given=None) -> str | None:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if given is not None:
        client = given
    elif scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=dashboard_address)
        client = Client(cluster)
    else:
        client = Client(scheduler, timeout="10s")
    try:
        link = client.dashboard_link
        where = f"scheduler {client.scheduler.address}" if scheduler or given else \
            f"LocalCluster of {workers} worker process(es)"
        echo(f"grid: {where}; dashboard: {link or 'none'}")
        futures = [client.submit(run_task, task, key=f"{task.name}", pure=False) for task in todo]
        for future in _bar(as_completed(futures), progress, len(futures)):
            try:
                result = future.result()
            except Exception as exc:
                raise _failed(future.key, exc, out) from exc
            write_result(out, result)
        return link
    finally:
        if given is None:
            client.close()
        if cluster is not None:
            cluster.close()
