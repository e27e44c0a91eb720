"""What the variational engines (SVI, RWS) share: fit a guide, then draw from it."""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from dataclasses import asdict

import numpy as np
import pyro
import pyro.optim
from tqdm.auto import tqdm

from .._validate import check_int, check_positive, check_seed
from ..posterior import Posterior
from ._draws import guide_draws, param_store_state
from ._particles import particles_vectorize
from .base import EngineResult
from .result import engine_attrs, make_inference_data

log = logging.getLogger(__name__)

# Posterior -> whether its model and guide broadcast over a particle dim (found once).
_VECTORIZES: "weakref.WeakKeyDictionary[Posterior, bool]" = weakref.WeakKeyDictionary()


def vectorizes(posterior: Posterior) -> bool:
    """Whether ``posterior``'s model and guide broadcast over a particle dimension
    (:func:`~._particles.particles_vectorize`, run once per posterior and remembered).
    Needs a guide; runs in ``posterior.session()``."""
    if posterior not in _VECTORIZES:
        sites = posterior.validate()
        with posterior.session() as (model, guide):
            _VECTORIZES[posterior] = particles_vectorize(model, guide, posterior.data, sites)
        if not _VECTORIZES[posterior]:
            log.warning("%s: the model does not broadcast over a particle dimension; SVI/RWS "
                        "use one trace per particle (slower)", posterior.name)
    return _VECTORIZES[posterior]


def accepts_observations(guide) -> bool:
    """Whether ``guide`` takes an ``observations=`` keyword (or ``**kwargs``), as Pyro's
    reweighted wake-sleep passes in its sleep phase (unknown signatures pass)."""
    try:
        parameters = inspect.signature(guide).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == "observations" or p.kind is inspect.Parameter.VAR_KEYWORD
               for p in parameters)


class VariationalEngine:
    """Base of engines that fit the posterior's guide with ``pyro.infer.SVI``.

    Subclasses are dataclasses that provide ``name``, ``loss_names``,
    ``particles_per_step`` and ``_make_loss()``; those whose loss sums out sites marked
    ``infer={'enumerate': 'parallel'}`` set ``supports_enumeration = True`` and define
    ``_make_enum_loss(max_plate_nesting, vectorize)``. :meth:`run` returns the fitted
    private copy of the guide and its Pyro param-store state in the
    :class:`~.base.EngineResult`; the engine itself is not changed by a run.

    Particles are vectorized (``vectorize_particles=True``) when the model and guide
    broadcast over a particle dimension (:func:`vectorizes`, found in :meth:`validate`);
    otherwise the loss and the final draws use one trace per particle, as plain Pyro
    with ``vectorize_particles=False`` would. ``attrs['vectorized_particles']`` says which.
    """

    name = "vi"
    loss_names: tuple[str, ...] = ("loss",)
    supports_enumeration = False
    min_particles = 1

    def _check_settings(self) -> None:
        """:raises ValueError: a count that is not an integer in range, or ``lr`` not > 0."""
        check_int("num_steps", self.num_steps, 0, self.name)
        check_int("num_draws", self.num_draws, 1, self.name)
        check_int("num_particles", self.num_particles, self.min_particles, self.name)
        check_positive("lr", self.lr, self.name)

    def validate(self, posterior: Posterior) -> None:
        """:raises ValueError: bad settings (:meth:`_check_settings`), the posterior has no
        guide, or enumerated latent sites that this engine's loss cannot sum out. Finds
        whether particles can be vectorized (:func:`vectorizes`)."""
        self._check_settings()
        sites = posterior.validate()
        if posterior.guide is None:
            raise ValueError(f"{self.name} needs a guide; Posterior.guide is None")
        if sites.enumerated and not self.supports_enumeration:
            raise ValueError(
                f"{self.name}: sites {sorted(sites.enumerated)} are marked for enumeration, "
                f"which {self.name}'s loss cannot sum out; use svi (TraceEnum_ELBO) or nuts"
            )
        vectorizes(posterior)

    def _fit_model(self, model):
        """The model the loss sees (subclasses may hide sites it mishandles)."""
        return model

    def _optimizer(self):
        # Decay the learning rate tenfold over the run: less SGD noise in the final guide.
        lrd = 0.1 ** (1.0 / max(self.num_steps, 1))
        return pyro.optim.ClippedAdam({"lr": self.lr, "lrd": lrd, "clip_norm": 10.0})

    def run(self, posterior: Posterior, seed: int = 0, *, progress: bool = True) -> EngineResult:
        """Fit the guide for ``num_steps`` steps, then draw ``num_draws`` times from it.

        :returns: :class:`~.base.EngineResult`: InferenceData with one chain (see
            :mod:`ppl_genmodels.infer.result`), the fitted guide and its param-store state.
        :raises ValueError: as :meth:`validate`, ``seed`` not an integer >= 0, or a
            distribution refusing a value during a step (message names engine and step).
        """
        seed = check_seed(seed)
        self.validate(posterior)
        sites = posterior.validate()
        vectorize = vectorizes(posterior)
        pyro.set_rng_seed(seed)
        start = time.perf_counter()
        losses = np.zeros((self.num_steps, len(self.loss_names)))
        with posterior.session() as (model, guide):
            loss = (self._make_enum_loss(sites.max_plate_nesting, vectorize) if sites.enumerated
                    else self._make_loss(vectorize))
            svi = pyro.infer.SVI(self._fit_model(model), guide, self._optimizer(), loss=loss)
            bar = tqdm(range(self.num_steps), desc=f"{posterior.name}: {self.name}",
                       disable=not progress, leave=False, mininterval=0.5)
            for step in bar:
                try:
                    loss = svi.step(**posterior.data)
                except ValueError as exc:  # Pyro's distribution validation, mid-run
                    raise ValueError(f"{self.name} on {posterior.name!r}, step {step}: {exc}") from exc
                losses[step] = loss
                if step % 50 == 0:
                    bar.set_postfix({n: f"{v:.4g}" for n, v in zip(self.loss_names, losses[step])})
            values, log_weights = guide_draws(model, guide, posterior.data, sites, self.num_draws,
                                              vectorize=vectorize)
            param_state = param_store_state()
        wall = time.perf_counter() - start
        attrs = engine_attrs(
            self.name, asdict(self), seed, wall, self.num_steps * self.particles_per_step, posterior
        )
        attrs["vectorized_particles"] = int(vectorize)
        idata = make_inference_data(
            posterior,
            draws={k: v[None] for k, v in values.items()},
            sample_stats={"log_weight": log_weights[None]},
            attrs=attrs,
            step_stats={n: losses[:, i] for i, n in enumerate(self.loss_names)},
        )
        return EngineResult(idata, guide=guide, param_state=param_state)
