"""Built-in models: one module per model with its model, guide, data and reference.

Each module defines ``NAME``, ``DESCRIPTION``, ``make_posterior(quick, seed)``,
``reference(posterior)`` (a :class:`~ppl_genmodels.reference.Reference` or ``None``)
and ``engine_config(quick)`` (engine name -> keyword arguments), and optionally
``ENGINES`` (the built-in engines it supports; default :data:`DEFAULT_ENGINES`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

__all__ = ["list_models", "get_model", "ModelSpec"]

_MODULES = {
    "eight_schools": "eight_schools",
    "normal_normal": "normal_normal",
    "vae_digits": "vae_digits",
    "vae": "vae",
    "sbn": "sbn",
    "kidiq": "kidiq",
    "gauss_mix": "gauss_mix",
    "neals_funnel": "neals_funnel",
    "banana": "banana",
    "linear_regression": "linear_regression",
    "logistic_regression": "logistic_regression",
    "enum_mixture": "enum_mixture",
}

DEFAULT_ENGINES = ("svi", "rws", "nuts")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model; thin view of its module."""

    name: str
    module: ModuleType

    @property
    def description(self) -> str:
        return self.module.DESCRIPTION

    @property
    def engines(self) -> tuple[str, ...]:
        """Built-in engines that can run this model (module's ``ENGINES``, else all three).

        E.g. ``("svi", "nuts")`` for models with enumerated discrete sites, which
        reweighted wake-sleep cannot sum out.
        """
        return tuple(getattr(self.module, "ENGINES", DEFAULT_ENGINES))

    def posterior(self, quick: bool = False, seed: int = 0):
        """Build the model's :class:`~ppl_genmodels.Posterior` (``quick``: small budgets)."""
        return self.module.make_posterior(quick=quick, seed=seed)

    def reference(self, posterior=None):
        """Reference moments/draws, or ``None`` when the model has none."""
        return self.module.reference(posterior)

    def engine_config(self, quick: bool = False) -> dict:
        """Engine name -> keyword arguments tuned for this model."""
        return self.module.engine_config(quick)


def list_models() -> list[str]:
    """Names of the built-in models."""
    return sorted(_MODULES)


def get_model(name: str) -> ModelSpec:
    """:raises ValueError: unknown name (the message lists the known ones)."""
    if name not in _MODULES:
        raise ValueError(f"unknown model {name!r}; built-in models are {list_models()}")
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return ModelSpec(name=name, module=module)
