"""Inference engines: thin wrappers over Pyro, each ``run(posterior, seed) -> InferenceData``.

A user engine is any object with a ``name`` and ``run(posterior, seed)`` returning an
``arviz.InferenceData``; an optional ``validate(posterior)`` is called before any engine
of a comparison starts.
"""

from __future__ import annotations

from typing import Any

from .amortized import Amortized
from .nuts import NUTS
from .rws import RWS
from .svi import SVI

ENGINES = {"svi": SVI, "rws": RWS, "nuts": NUTS, "amortized": Amortized}

__all__ = ["SVI", "RWS", "NUTS", "Amortized", "ENGINES", "get_engine"]


def get_engine(spec: Any, **config):
    """An engine from a name (``"svi"``, ``"rws"``, ``"nuts"``, ``"amortized"``) and config, or a user engine.

    :raises ValueError: unknown name, or an object without ``name`` and ``run``.
    """
    if isinstance(spec, str):
        if spec not in ENGINES:
            raise ValueError(f"unknown engine {spec!r}; built-in engines are {sorted(ENGINES)}")
        return ENGINES[spec](**config)
    if not (hasattr(spec, "name") and callable(getattr(spec, "run", None))):
        raise ValueError(f"an engine needs a `name` and a `run(posterior, seed)` method: {spec!r}")
    return spec
