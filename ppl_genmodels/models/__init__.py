"""Built-in models: one module per model with its model, guide, data and reference.

The list of models, with their descriptions and engines, is plain data in
:mod:`ppl_genmodels.models.registry`; :func:`get_model` imports a model's module (and with
it torch and Pyro) only when its posterior, reference or budgets are asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType

from .registry import ModelInfo, list_models, model_info

__all__ = ["list_models", "get_model", "ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: its registry entry (:class:`~ppl_genmodels.models.registry.ModelInfo`)
    and, on first use, the module that defines it."""

    info: ModelInfo

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def description(self) -> str:
        return self.info.description

    @property
    def engines(self) -> tuple[str, ...]:
        """Built-in engines that can run this model, e.g. ``("svi", "nuts")`` for models with
        enumerated discrete sites, which reweighted wake-sleep cannot sum out."""
        return self.info.engines

    @cached_property
    def module(self) -> ModuleType:
        """The module that defines the model (imported on first access)."""
        return importlib.import_module(self.info.module)

    def posterior(self, quick: bool = False, seed: int = 0):
        """Build the model's :class:`~ppl_genmodels.Posterior` (``quick``: small budgets).

        :raises ValueError: a model without latent variables (``fvbn``, ``made``,
            ``pixelcnn``) has no posterior; a trainable model (``vae``, ``sbn``) has no built-in theta: its
            posterior comes from a ``ppl-genmodels train`` run
            (:func:`ppl_genmodels.learning.posterior_from_checkpoint`).
        """
        if not self.info.latent:
            raise ValueError(f"{self.name} has no latent variables (exact likelihood): there is "
                             f"no posterior to infer; use `ppl-genmodels train {self.name} "
                             "--method mle` and `evaluate`")
        if self.info.trainable:
            raise ValueError(f"{self.name} has no built-in theta: train one (`ppl-genmodels train "
                             f"{self.name} ...`) and pass --checkpoint RUN_DIR")
        return self.module.make_posterior(quick=quick, seed=seed)

    def reference(self, posterior=None):
        """Reference moments/draws, or ``None`` when the model has none. With ``posterior``
        the parameters carry its coords' labels (``theta[Choate]``, as the engines' results
        name them; :meth:`~ppl_genmodels.Posterior.parameter_labels`), else positions
        (``theta[0]``)."""
        reference = self.module.reference(posterior)
        if reference is not None and posterior is not None and posterior.coords:
            reference = reference.relabel(posterior.parameter_labels())
        return reference

    def engine_config(self, quick: bool = False) -> dict:
        """Engine name -> keyword arguments tuned for this model."""
        return self.module.engine_config(quick)


def get_model(name: str) -> ModelSpec:
    """The built-in model ``name``; its module is imported on first use, not here.

    :raises ValueError: unknown name (the message lists the known ones).
    """
    return ModelSpec(model_info(name))
