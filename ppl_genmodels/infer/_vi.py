"""What the variational engines (SVI, RWS) share: fit a guide, then draw from it."""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import pyro
import pyro.optim
from tqdm.auto import tqdm

from ..posterior import Posterior
from ._draws import guide_draws, param_store_state
from .base import EngineResult
from .result import engine_attrs, make_inference_data


class VariationalEngine:
    """Base of engines that fit the posterior's guide with ``pyro.infer.SVI``.

    Subclasses are dataclasses that provide ``name``, ``loss_names``,
    ``particles_per_step`` and ``_make_loss()``; those whose loss sums out sites marked
    ``infer={'enumerate': 'parallel'}`` set ``supports_enumeration = True`` and define
    ``_make_enum_loss(max_plate_nesting)``. :meth:`run` returns the fitted private copy of
    the guide and its Pyro param-store state in the :class:`~.base.EngineResult`; the
    engine itself is not changed by a run.
    """

    name = "vi"
    loss_names: tuple[str, ...] = ("loss",)
    supports_enumeration = False

    def validate(self, posterior: Posterior) -> None:
        """:raises ValueError: the posterior has no guide, or enumerated latent sites that
        this engine's loss cannot sum out."""
        sites = posterior.validate()
        if posterior.guide is None:
            raise ValueError(f"{self.name} needs a guide; Posterior.guide is None")
        if sites.enumerated and not self.supports_enumeration:
            raise ValueError(
                f"{self.name}: sites {sorted(sites.enumerated)} are marked for enumeration, "
                f"which {self.name}'s loss cannot sum out; use svi (TraceEnum_ELBO) or nuts"
            )
        if self.num_steps < 0 or self.num_draws < 1:
            raise ValueError(f"{self.name}: num_steps must be >= 0 and num_draws >= 1")

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
        :raises ValueError: as :meth:`validate`.
        """
        self.validate(posterior)
        sites = posterior.validate()
        pyro.set_rng_seed(seed)
        start = time.perf_counter()
        losses = np.zeros((self.num_steps, len(self.loss_names)))
        with posterior.session() as (model, guide):
            loss = (self._make_enum_loss(sites.max_plate_nesting) if sites.enumerated
                    else self._make_loss())
            svi = pyro.infer.SVI(self._fit_model(model), guide, self._optimizer(), loss=loss)
            bar = tqdm(range(self.num_steps), desc=f"{posterior.name}: {self.name}",
                       disable=not progress, leave=False, mininterval=0.5)
            for step in bar:
                loss = svi.step(**posterior.data)
                losses[step] = loss
                if step % 50 == 0:
                    bar.set_postfix({n: f"{v:.4g}" for n, v in zip(self.loss_names, losses[step])})
            values, log_weights = guide_draws(model, guide, posterior.data, sites, self.num_draws)
            param_state = param_store_state()
        wall = time.perf_counter() - start
        attrs = engine_attrs(
            self.name, asdict(self), seed, wall, self.num_steps * self.particles_per_step, posterior
        )
        idata = make_inference_data(
            posterior,
            draws={k: v[None] for k, v in values.items()},
            sample_stats={"log_weight": log_weights[None]},
            attrs=attrs,
            step_stats={n: losses[:, i] for i, n in enumerate(self.loss_names)},
        )
        return EngineResult(idata, guide=guide, param_state=param_state)
