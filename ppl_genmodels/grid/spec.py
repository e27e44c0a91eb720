"""A grid spec (TOML): what to run, checked whole before any task starts, and its tasks.

A spec has up to three kinds of entries, each an array of tables, and an optional ``[grid]``
table::

    [grid]
    seeds = [0, 1]                 # default seeds of every entry
    threads = 1                    # torch CPU threads per task

    [[compare]]                    # one task per model x engine x budget x seed
    models = ["normal_normal", "eight_schools"]
    engines = ["svi", "nuts"]
    quick = true                   # start from the model's quick budgets
    [compare.budgets]              # per engine: a list of engine settings, one per budget
    svi = [{num_steps = 100}, {num_steps = 400}]

    [[sbc]]                        # one task per batch; a batch is one seed
    model = "normal_normal"
    engine = "nuts"
    simulations = 20               # per batch (>= 10)
    seeds = [0, 1, 2]

    [[train]]                      # one task per method x seed
    model = "vae"
    data = "digits"
    methods = ["svi", "iwae"]
    epochs = 1
    # data_dir = "../shared/data"  # for the MNIST sets: the same path on every worker

A task is plain data (:class:`Task`: kind, settings, seed); its identity is the hash of
that data (:attr:`Task.id`), so a grid resumed after an interruption, or rerun with more
seeds or budgets, skips every task whose result is already on disk.

Reading the spec imports neither torch nor Pyro; :func:`validate_tasks` (engine settings,
training configs) imports them.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["GridSpec", "Task", "GridSpecError", "load_spec", "parse_spec", "validate_tasks"]

KINDS = ("compare", "sbc", "train")
_GRID_KEYS = {"seeds", "threads", "title"}
_KEYS = {
    "compare": {"models", "engines", "seeds", "quick", "budgets"},
    "sbc": {"model", "engine", "simulations", "draws", "seeds", "quick", "alpha"},
    "train": {"model", "data", "data_dir", "methods", "epochs", "batch_size", "num_particles",
              "lr", "num_train", "model_kwargs", "seeds", "max_time_s"},
}


class GridSpecError(ValueError):
    """A grid spec that cannot run; the message names the entry and the key."""


@dataclass(frozen=True)
class Task:
    """One unit of work of a grid: ``kind`` (``compare``, ``sbc`` or ``train``), its
    ``settings`` (JSON-able plain data) and ``seed``.

    :ivar id: 12 hex digits of the SHA-256 of ``(kind, settings, seed)`` in canonical JSON:
        the task's identity for resuming.
    """

    kind: str
    settings: dict
    seed: int
    threads: int = 1

    @property
    def id(self) -> str:
        blob = json.dumps([self.kind, self.settings, self.seed], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        """A readable folder name: kind, model, engine or method, budget index, seed, id."""
        s = self.settings
        parts = [self.kind, s["model"], s.get("engine") or s.get("method")]
        if "budget" in s:
            parts.append(f"b{s['budget']}")
        return "-".join(parts + [f"s{self.seed}", self.id])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "settings": self.settings, "seed": self.seed,
                "threads": self.threads, "id": self.id}


@dataclass
class GridSpec:
    """A parsed spec: its tasks in a fixed order, and where it came from."""

    tasks: list[Task]
    source: str = "<string>"
    title: str = "ppl-genmodels grid"
    raw: dict = field(default_factory=dict)


def load_spec(path: str | Path) -> GridSpec:
    """Read and check a TOML spec file (:func:`parse_spec`).

    :raises GridSpecError: the file is missing, not TOML, or the spec is invalid (the
        message names the file, entry and key).
    """
    path = Path(path)
    if not path.is_file():
        raise GridSpecError(f"grid spec {path} not found")
    if path.suffix not in (".toml",):
        raise GridSpecError(f"grid spec {path}: expected a .toml file")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise GridSpecError(f"grid spec {path} is not valid TOML: {exc}") from exc
    return parse_spec(raw, source=str(path))


def _int_list(where: str, value, low: int = 0) -> list[int]:
    if not isinstance(value, list) or not value:
        raise GridSpecError(f"{where} must be a non-empty list of integers, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise GridSpecError(f"{where}: {v!r} is not an integer >= {low}")
    if len(set(value)) != len(value):
        raise GridSpecError(f"{where} has repeated values {value!r}")
    return list(value)


def _str_list(where: str, value, known) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise GridSpecError(f"{where} must be a non-empty list of names, got {value!r}")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise GridSpecError(f"{where}: unknown {unknown}; known: {list(known)}")
    return list(value)


def _check_number(where: str, value, kind=int, low=1):
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) \
            or value < low:
        raise GridSpecError(f"{where} must be {'a number' if kind is float else 'an integer'} "
                            f">= {low}, got {value!r}")
    return value


def parse_spec(raw: dict, source: str = "<string>") -> GridSpec:
    """Turn a spec (the dict TOML gives) into tasks, checking names, keys and numbers.

    Engine settings and training configs are checked by :func:`validate_tasks`.

    :raises GridSpecError: naming the entry (``compare[0]``) and the key.
    """
    from ..models.registry import ENGINE_NAMES, MODELS, SBC_ENGINE_NAMES

    where0 = f"grid spec {source}"
    unknown = sorted(set(raw) - set(KINDS) - {"grid"})
    if unknown:
        raise GridSpecError(f"{where0}: unknown section(s) {unknown}; sections: grid, "
                            f"{', '.join(KINDS)}")
    grid = raw.get("grid", {})
    if not isinstance(grid, dict):
        raise GridSpecError(f"{where0}: [grid] must be a table")
    bad = sorted(set(grid) - _GRID_KEYS)
    if bad:
        raise GridSpecError(f"{where0}: [grid] has unknown key(s) {bad}; keys: {sorted(_GRID_KEYS)}")
    default_seeds = _int_list(f"{where0}: [grid] seeds", grid.get("seeds", [0]))
    threads = _check_number(f"{where0}: [grid] threads", grid.get("threads", 1))
    tasks: list[Task] = []
    for kind in KINDS:
        entries = raw.get(kind, [])
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list):
            raise GridSpecError(f"{where0}: {kind} must be a table or an array of tables")
        for i, entry in enumerate(entries):
            where = f"{where0}: {kind}[{i}]"
            if not isinstance(entry, dict):
                raise GridSpecError(f"{where} must be a table")
            bad = sorted(set(entry) - _KEYS[kind])
            if bad:
                raise GridSpecError(f"{where} has unknown key(s) {bad}; keys: {sorted(_KEYS[kind])}")
            seeds = _int_list(f"{where} seeds", entry.get("seeds", default_seeds))
            quick = entry.get("quick", False)
            if not isinstance(quick, bool):
                raise GridSpecError(f"{where} quick must be true or false, got {quick!r}")
            make = {"compare": _compare_tasks, "sbc": _sbc_tasks, "train": _train_tasks}[kind]
            tasks += make(where, entry, seeds, quick, threads, MODELS, ENGINE_NAMES, SBC_ENGINE_NAMES)
    if not tasks:
        raise GridSpecError(f"{where0} has no tasks: add a [[compare]], [[sbc]] or [[train]] entry")
    ids = [t.id for t in tasks]
    if len(set(ids)) != len(ids):
        raise GridSpecError(f"{where0} names the same task twice (same settings and seed)")
    return GridSpec(tasks, source, str(grid.get("title", "ppl-genmodels grid")), raw)


def _runnable_models(models) -> list[str]:
    return [n for n, m in models.items() if not m.trainable and not m.fixed_theta]


def _compare_tasks(where, entry, seeds, quick, threads, models, engine_names, _):
    if "models" not in entry or "engines" not in entry:
        raise GridSpecError(f"{where} needs models and engines")
    names = _str_list(f"{where} models", entry["models"], _runnable_models(models))
    engines = _str_list(f"{where} engines", entry["engines"], engine_names)
    for model in names:
        missing = [e for e in engines if e not in models[model].engines]
        if missing:
            raise GridSpecError(f"{where}: model {model} cannot run engine(s) {missing}; "
                                f"its engines: {list(models[model].engines)}")
    budgets = entry.get("budgets", {})
    if not isinstance(budgets, dict):
        raise GridSpecError(f"{where} budgets must be a table engine = [{{...}}, ...]")
    extra = sorted(set(budgets) - set(engines))
    if extra:
        raise GridSpecError(f"{where} budgets for engine(s) {extra} not in engines {engines}")
    for engine, points in budgets.items():
        if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
            raise GridSpecError(f"{where} budgets.{engine} must be a non-empty list of tables "
                                f"of engine settings, e.g. [{{num_steps = 100}}]")
    tasks = []
    for model in names:
        for engine in engines:
            for b, budget in enumerate(budgets.get(engine, [{}])):
                settings = {"model": model, "engine": engine, "quick": quick, "budget": b,
                            "engine_settings": dict(budget)}
                tasks += [Task("compare", settings, s, threads) for s in seeds]
    return tasks


def _sbc_tasks(where, entry, seeds, quick, threads, models, _, sbc_engines):
    for key in ("model", "engine", "simulations"):
        if key not in entry:
            raise GridSpecError(f"{where} needs {key}")
    model = _str_list(f"{where} model", entry["model"], _runnable_models(models))
    engine = _str_list(f"{where} engine", entry["engine"], sbc_engines)
    if len(model) != 1 or len(engine) != 1:
        raise GridSpecError(f"{where}: one model and one engine per [[sbc]] entry")
    settings = {"model": model[0], "engine": engine[0], "quick": quick,
                "simulations": _check_number(f"{where} simulations", entry["simulations"], low=10),
                "draws": _check_number(f"{where} draws", entry.get("draws", 99)),
                "alpha": entry.get("alpha", 0.05)}
    alpha = settings["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise GridSpecError(f"{where} alpha must lie in (0, 1), got {alpha!r}")
    return [Task("sbc", settings, s, threads) for s in seeds]


def _train_tasks(where, entry, seeds, quick, threads, models, _, __):
    from ..data.datasets import IMAGE_DATASETS
    from ..learning.methods import METHODS

    for key in ("model", "data", "methods", "epochs"):
        if key not in entry:
            raise GridSpecError(f"{where} needs {key}")
    model = _str_list(f"{where} model", entry["model"],
                      [n for n, m in models.items() if m.trainable])
    data = _str_list(f"{where} data", entry["data"], IMAGE_DATASETS)
    methods = _str_list(f"{where} methods", entry["methods"], METHODS)
    if len(model) != 1 or len(data) != 1:
        raise GridSpecError(f"{where}: one model and one data set per [[train]] entry")
    data_dir = entry.get("data_dir")
    if data_dir is not None and not Path(data_dir).is_dir():
        raise GridSpecError(f"{where} data_dir {data_dir!r} is not a folder")
    base = {"model": model[0], "data": data[0],
            "data_dir": str(Path(data_dir).resolve()) if data_dir else None,
            "epochs": _check_number(f"{where} epochs", entry["epochs"]),
            "batch_size": _check_number(f"{where} batch_size", entry.get("batch_size", 100)),
            "num_particles": entry.get("num_particles"),
            "lr": _check_number(f"{where} lr", entry.get("lr", 1e-3), float, low=0),
            "num_train": entry.get("num_train"),
            "max_time_s": entry.get("max_time_s"),
            "model_kwargs": dict(entry.get("model_kwargs", {}))}
    return [Task("train", {**base, "method": m}, s, threads) for m in methods for s in seeds]


def validate_tasks(tasks: list[Task]) -> None:
    """The checks that need the engines and the trainer: every compare task's engine
    settings build an engine (unknown or out-of-range settings are refused) and every
    training config validates. Runs nothing.

    :raises GridSpecError: naming the task and the problem.
    """
    from ..infer import get_engine
    from ..learning.trainer import TrainConfig
    from ..models import get_model

    for task in tasks:
        s = task.settings
        try:
            if task.kind == "compare":
                get_engine(s["engine"], **engine_settings(s))
            elif task.kind == "train":
                TrainConfig(s["model"], s["data"], s["data_dir"], s["method"], s["epochs"],
                            s["batch_size"], s["num_particles"], s["lr"], task.seed,
                            s["num_train"], 1.0, dict(s["model_kwargs"])).validate()
                if s["data"] != "digits" and s["data_dir"] is None:
                    raise ValueError(f"data {s['data']!r} needs data_dir")
            elif task.kind == "sbc":
                get_model(s["model"])
        except (ValueError, TypeError) as exc:
            raise GridSpecError(f"task {task.name}: {exc}") from exc


def engine_settings(settings: dict[str, Any]) -> dict:
    """A compare task's engine settings: the model's budgets (quick or full) for the
    engine, updated by the spec's budget point."""
    from ..models import get_model

    base = get_model(settings["model"]).engine_config(settings["quick"]).get(settings["engine"], {})
    return {**base, **settings["engine_settings"]}
