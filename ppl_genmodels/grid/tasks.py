"""Run one grid task (in a Dask worker or in this process) and return its results as data.

A task returns its summary and its files as bytes rather than writing them where it runs,
so that workers on other machines need no shared file system: the process that runs the
grid writes each task's files atomically under its output folder
(:func:`ppl_genmodels.grid.run.run_grid`).
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from pathlib import Path

from .spec import Task, engine_settings

__all__ = ["run_task", "TASK_RUNNERS"]


def run_task(task: Task) -> dict:
    """Run ``task`` and return ``{"task", "summary", "files", "wall_s", "worker"}``.

    ``summary`` is JSON-able (numbers in nats and seconds as in the engines' tables);
    ``files`` maps file names to bytes (an engine's InferenceData as ``<engine>.nc``, an
    SBC batch's ranks as ``sbc.nc``, a training run's folder).

    :raises ValueError: the task cannot run (e.g. a data set missing on this worker).
    """
    import importlib

    import torch

    importlib.import_module("pyro")  # first: importing Pyro sets the "pyro" logger's level

    torch.set_num_threads(task.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    start = time.perf_counter()
    summary, files = TASK_RUNNERS[task.kind](task)
    return {"task": task.to_dict(), "summary": summary, "files": files,
            "wall_s": time.perf_counter() - start, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


def _finite(value):
    import math

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(float(value)) else None
    return value


def _compare(task: Task):
    from ..harness.compare import compare
    from ..models import get_model

    s = task.settings
    spec = get_model(s["model"])
    posterior = spec.posterior(quick=s["quick"], seed=task.seed)
    settings = engine_settings(s)
    comparison = compare(posterior, engines=[s["engine"]], seed=task.seed,
                         reference=spec.reference(posterior),
                         engine_config={s["engine"]: settings}, progress=False)
    row = comparison.engine_table.iloc[0].to_dict()
    summary = {k: _finite(v.item() if hasattr(v, "item") else v) for k, v in row.items()}
    summary["baseline"] = comparison.baseline
    summary["engine_settings"] = settings
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{s['engine']}.nc"
        comparison.idata[s["engine"]].to_netcdf(str(path))
        files = {path.name: path.read_bytes()}
    return summary, files


def _sbc(task: Task):
    from ..sbc import sbc

    s = task.settings
    result = sbc(s["model"], s["engine"], num_simulations=s["simulations"], num_draws=s["draws"],
                 seed=task.seed, progress=False, quick=s["quick"], alpha=s["alpha"])
    tests = result.tests()
    summary = {"passed": result.passed, "num_simulations": result.num_simulations,
               "min_ecdf_p": float(tests["ecdf_p"].min()),
               "failed": [p for p, v in tests["verdict"].items() if v == "fail"]}
    with tempfile.TemporaryDirectory() as tmp:
        path = result.save(Path(tmp) / "sbc.nc")
        files = {"sbc.nc": Path(path).read_bytes()}
    return summary, files


def _train(task: Task):
    from ..learning import train

    s = task.settings
    with tempfile.TemporaryDirectory() as tmp:
        run = train(s["model"], s["data"], data_dir=s["data_dir"], method=s["method"],
                    epochs=s["epochs"], batch_size=s["batch_size"],
                    num_particles=s["num_particles"], lr=s["lr"], seed=task.seed,
                    num_train=s["num_train"], model_kwargs=s["model_kwargs"],
                    max_time_s=s["max_time_s"], out=Path(tmp) / "run", progress=False)
        last = run.history[-1]
        summary = {k: _finite(last.get(k)) for k in ("epoch", "loss", "test_elbo", "time_s")}
        files = {f"run/{k}": v for k, v in _read_folder(Path(tmp) / "run").items()}
    return summary, files


TASK_RUNNERS = {"compare": _compare, "sbc": _sbc, "train": _train}
"""Task kind -> ``runner(task) -> (summary, files)``."""
