"""SBC checkpoints: the settings a run is keyed by, per-batch ``.npz`` files, seeds that
depend only on ``(seed, simulation)``, and the amortized guide trained once and kept."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..infer import get_engine
from ..fingerprint import fingerprint, tensor_hash
from ..io import atomic_path, damaged, load_torch, write_text
from ..posterior import Posterior

__all__ = ["CONFIG_FILE", "GUIDE_FILE", "data_hash", "source_settings", "guide_hash", "seeds_for", "write_batch",
           "read_batches", "prepare_checkpoint", "train_guide"]

CONFIG_FILE = "sbc_config.json"
GUIDE_FILE = "amortized_guide.pt"
BATCH_GLOB = "batch_*.npz"


def data_hash(posterior: Posterior) -> str:
    """SHA-1 of the posterior's data (keys, shapes, dtypes and bytes), hex."""
    h = hashlib.sha1()
    for key in sorted(posterior.data):
        h.update(key.encode())
        h.update(tensor_hash(posterior.data[key]).encode())
    return h.hexdigest()


def source_settings(posterior: Posterior) -> dict[str, str]:
    """The settings that key a run beyond its options (:mod:`ppl_genmodels.fingerprint`):
    ``model_source`` and ``guide_source`` (name + source; a Module guide's initial state),
    ``theta`` (frozen parameters) and the package ``version``."""
    fp = fingerprint(posterior)
    return {"model_source": fp["model"], "guide_source": fp["guide"], "theta": fp["theta"],
            "version": fp["version"]}


def _module_of(guide: Any) -> torch.nn.Module | None:
    """The ``nn.Module`` holding a guide's parameters (the guide, or its bound method's
    owner), or ``None`` for a function guide."""
    owner = guide if isinstance(guide, torch.nn.Module) else getattr(guide, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def guide_hash(guide: Any) -> str:
    """SHA-1 of a guide's qualified name and, for Module guides, its state dict, hex."""
    h = hashlib.sha1(getattr(guide, "__qualname__", type(guide).__qualname__).encode())
    owner = _module_of(guide)
    if owner is not None:
        for name, tensor in owner.state_dict().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def seeds_for(seed: int, index: int) -> tuple[int, int]:
    """(simulation seed, inference seed) of simulation ``index``, each < 2**32.

    They depend only on ``(seed, index)`` (``numpy.random.SeedSequence``): batches can run
    in any order and a resumed run redoes exactly the same simulations."""
    a, b = np.random.SeedSequence([seed, index]).generate_state(2)
    return int(a), int(b)


def write_batch(directory: Path, batch: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Write one batch's arrays to ``batch_<batch>.npz`` (atomically)."""
    with atomic_path(directory / f"batch_{batch:05d}.npz") as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)


def read_batches(directory: Path, num_batches: int) -> dict[int, dict[str, np.ndarray]]:
    """Batch index -> arrays of every ``batch_*.npz`` in ``directory`` below ``num_batches``.

    :raises DamagedFileError: a batch file cannot be read (naming it: delete it to redo
        its simulations).
    """
    out = {}
    for path in sorted(directory.glob(BATCH_GLOB)):
        try:
            batch = int(path.stem.split("_")[1])
        except ValueError:
            continue  # not a name write_batch gives
        if batch < num_batches:
            try:
                with np.load(path) as f:
                    out[batch] = {k: f[k] for k in f.files}
                if "seed" not in out[batch]:
                    raise KeyError("no 'seed' array")
            except Exception as exc:  # zip, pickle and format errors alike
                raise damaged(path, exc, "delete it to redo its simulations, or rerun with "
                                         "--force to start over") from exc
    return out


def prepare_checkpoint(directory: Path | None, settings: dict, resume: bool) -> None:
    """Create ``directory`` and record ``settings`` in it (``CONFIG_FILE``).

    :param resume: keep checkpoints of a run with the same settings; ``False`` deletes the
        batches and the trained guide first.
    :raises ValueError: ``resume`` and the folder holds a run with other settings;
        :class:`~ppl_genmodels.io.DamagedFileError` (a ``ValueError``): its settings file
        cannot be read.
    """
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / CONFIG_FILE
    if config.exists() and resume:
        try:
            old = json.loads(config.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise damaged(config, exc, "rerun with --force (resume=False) to start over") from exc
        diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
        if diff:
            shown = ", ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in diff[:4])
            raise ValueError(
                f"checkpoint folder {directory} holds an SBC run with other settings ({shown}); "
                "use another folder or resume=False (CLI: --force) to start over"
            )
    elif not resume:
        for path in list(directory.glob(BATCH_GLOB)) + [directory / GUIDE_FILE]:
            if path.exists():
                path.unlink()
    write_text(config, json.dumps(settings, sort_keys=True, indent=1))


def train_guide(posterior: Posterior, train_engine: str, config: dict, seed: int,
                progress: bool, directory: Path | None):
    """Train the posterior's guide once with ``train_engine`` (or load it from ``directory``).

    :returns: ``(guide, param_state)``: the trained guide (a private copy for Module
        guides) and Pyro param-store values for function guides.
    """
    path = directory / GUIDE_FILE if directory is not None else None
    if path is not None and path.exists():
        saved = load_torch(path, ("state_dict", "param_state"))
        guide = posterior.guide
        owner = _module_of(guide)
        if owner is not None:
            owner = copy.deepcopy(owner)
            owner.load_state_dict(saved["state_dict"])
            guide = owner if isinstance(guide, torch.nn.Module) else getattr(owner, guide.__name__)
        return guide, saved["param_state"]
    trained = get_engine(train_engine, **config).run(posterior, seed=seed, progress=progress)
    if path is not None:
        owner = _module_of(trained.guide)
        state = owner.state_dict() if owner is not None else {}
        with atomic_path(path) as tmp:
            torch.save({"state_dict": state, "param_state": trained.param_state}, tmp)
    return trained.guide, trained.param_state
