"""Inference engines: thin wrappers over Pyro, each ``run(posterior, seed) -> EngineResult``.

The contract (:class:`Engine`, :class:`EngineResult`) is in :mod:`ppl_genmodels.infer.base`.
A user engine is any object with a ``name`` and ``run(posterior, seed)`` returning an
``arviz.InferenceData`` (optional ``validate(posterior)``); :func:`get_engine` adapts it.
:func:`guide_draws` and :func:`deterministic_sites` are the draw helpers the engines share,
public for the SBC driver.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._draws import deterministic_sites, guide_draws
from .amortized import Amortized
from .cavi import CAVI
from .base import BatchedEngine, Engine, EngineResult, GuideEngine, UserEngine
from .nuts import NUTS
from .pyro_nuts import PyroNUTS
from .rws import RWS
from .svi import SVI

ENGINES = {"svi": SVI, "rws": RWS, "nuts": NUTS, "pyro_nuts": PyroNUTS, "amortized": Amortized,
           "cavi": CAVI}

__all__ = ["SVI", "RWS", "NUTS", "PyroNUTS", "Amortized", "CAVI", "ENGINES", "get_engine", "Engine",
           "EngineResult", "GuideEngine", "BatchedEngine", "UserEngine", "guide_draws", "deterministic_sites"]


def get_engine(spec: Any, **config) -> Engine:
    """An engine from a name (``"svi"``, ``"rws"``, ``"nuts"`` (the ensemble sampler),
    ``"pyro_nuts"`` (Pyro's sampler), ``"amortized"``, ``"cavi"`` (mean-field CAVI of
    the conjugate Gaussian mixture)) and config,
    or from an object. Built-in engine objects (and :class:`UserEngine`) are returned as
    they are; any other object is wrapped once in :class:`UserEngine`, the one place where
    a user engine is adapted to the :class:`Engine` contract.

    :raises ValueError: unknown name, unknown or bad settings (naming the engine), config
        given with an engine object, or an object without ``name`` and ``run``.
    """
    if isinstance(spec, str):
        if spec not in ENGINES:
            raise ValueError(f"unknown engine {spec!r}; built-in engines are {sorted(ENGINES)}")
        cls = ENGINES[spec]
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise ValueError(f"{spec}: unknown setting(s) {unknown}; its settings are {known}")
        return cls(**config)
    if config:
        raise ValueError(f"settings {sorted(config)} apply to engines named by a string, not "
                         f"to the object {spec!r}")
    if isinstance(spec, (UserEngine, *ENGINES.values())):
        return spec
    return UserEngine(spec)
