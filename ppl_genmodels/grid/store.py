"""A grid's output folder: one folder per task, its ``result.json`` written last.

``OUT/tasks/<task name>/result.json`` records the task (kind, settings, seed, id), its
summary, wall time and worker, and names the task's files beside it; its presence marks
the task finished, so a rerun skips it (:func:`finished_tasks`).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_path, write_text
from .spec import Task

__all__ = ["RESULT", "task_dir", "finished_tasks", "write_result", "load_results"]

RESULT = "result.json"


def task_dir(out: str | Path, task: Task) -> Path:
    """The folder of ``task``'s results under the grid folder ``out``."""
    return Path(out) / "tasks" / task.name


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def finished_tasks(out: str | Path, tasks: list[Task]) -> set[str]:
    """Ids of the ``tasks`` whose ``result.json`` exists under ``out`` and records the same
    task (kind, settings, seed)."""
    done = set()
    for task in tasks:
        record = _load(task_dir(out, task) / RESULT)
        if record and record.get("task", {}).get("id") == task.id:
            done.add(task.id)
    return done


def write_result(out: str | Path, result: dict) -> Path:
    """Write a task's files, then its ``result.json`` (each atomically; the JSON last)."""
    task = Task(**{k: v for k, v in result["task"].items() if k != "id"})
    folder = task_dir(out, task)
    for name, data in result["files"].items():
        with atomic_path(folder / name) as tmp:
            tmp.write_bytes(data)
    record = {k: v for k, v in result.items() if k != "files"}
    record["files"] = sorted(result["files"])
    write_text(folder / RESULT, json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return folder


def load_results(out: str | Path, tasks: list[Task]) -> list[dict]:
    """The ``result.json`` records of the finished ``tasks``, in the tasks' order."""
    done = finished_tasks(out, tasks)
    return [_load(task_dir(out, t) / RESULT) for t in tasks if t.id in done]
