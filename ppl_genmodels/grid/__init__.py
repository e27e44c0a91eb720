"""Grids of comparisons, SBC batches and training runs as tasks on a Dask cluster.

``load_spec(path)`` reads a TOML spec (:mod:`.spec`) into tasks; ``run_grid(spec, out)``
runs the unfinished ones on an embedded ``LocalCluster``, a running scheduler or serially
(:mod:`.run`), writes each task's results atomically under ``out/tasks/`` and the grid
report (:mod:`.report`): verdict counts per model x engine across seeds, error vs budget,
SBC pooled across batches, training runs.
"""

from __future__ import annotations

from .run import run_grid
from .store import finished_tasks, load_results
from .spec import GridSpec, GridSpecError, Task, load_spec, parse_spec, validate_tasks

__all__ = ["GridSpec", "GridSpecError", "Task", "load_spec", "parse_spec", "validate_tasks",
           "run_grid", "finished_tasks", "load_results", "write_grid_report"]


def __getattr__(name):
    # The report pulls in matplotlib and the SBC result: import it only when asked for.
    if name == "write_grid_report":
        from .report import write_grid_report

        return write_grid_report
    raise AttributeError(f"module 'ppl_genmodels.grid' has no attribute {name!r}")
