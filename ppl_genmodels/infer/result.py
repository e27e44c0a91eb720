"""The layout of ``EngineResult.idata`` (:mod:`.base`): an ``arviz.InferenceData`` with the
same layout for every engine.

Groups:

- ``posterior``: every latent and deterministic site, dims ``(chain, draw, *site_shape)``.
- ``sample_stats``: per-draw statistics with dims ``(chain, draw)``. NUTS: ``diverging``,
  ``energy``, ``tree_depth``, ``n_steps`` (leapfrog steps), ``step_size``,
  ``acceptance_rate``, ``lp`` (ArviZ's schema names). VI engines: ``log_weight`` =
  log p(x, z | theta) - log q(z | x) in nats, plus the optimisation trace with dim
  ``step`` (``loss`` for SVI; ``loss_wake_theta`` and ``loss_phi`` for RWS).
- ``observed_data``: observed sites; ``constant_data``: other entries of ``data``.
- ``log_likelihood``: log p(y_i | z, theta) per observed site, dims ``(chain, draw,
  *batch)`` (nats; :mod:`._log_likelihood`), so ``az.loo`` / ``az.compare`` apply. Absent
  for models with enumerated sites. For VI engines the draws come from q, not the
  posterior: importance-weight them before reading LOO off them.
- ``posterior_predictive``: y_rep ~ p(y | z, theta) at every draw, per observed site, dims
  ``(chain, draw, *site_shape)`` (``az.plot_ppc``); ``prior`` and ``prior_predictive``:
  :data:`._prior.PRIOR_DRAWS` draws (one chain) of the latent and observed sites from the
  model with nothing observed, the same for every engine of a run seed. Each is recorded
  where cheap: not for models with enumerated sites (posterior predictive), nor beyond
  :data:`._prior.MAX_GROUP_ELEMENTS` values, nor for runs of many posteriors at once.
- Dims and coords: those the posterior declares (``Posterior(dims=..., coords=...)``, e.g.
  ``theta`` over ``school``), in every group; ArviZ's defaults (``theta_dim_0``) otherwise.
- ``attrs`` (on every group): ``engine``, ``config`` (JSON), ``seed``, ``wall_time_s``,
  ``grad_evals``, ``posterior_name`` and library versions.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np
import torch
import xarray as xr

from .. import _arviz
from ..posterior import Posterior
from ._log_likelihood import observed_site_draws
from ._prior import MAX_GROUP_ELEMENTS, prior_draws

__all__ = ["make_inference_data", "engine_attrs"]


def engine_attrs(engine: str, config: Mapping, seed: int, wall_time_s: float, grad_evals: int,
                 posterior: Posterior) -> dict:
    """The ``attrs`` every engine writes (JSON-serialisable scalars, netCDF-safe)."""
    return {
        "engine": engine,
        "config": json.dumps(dict(config), sort_keys=True),
        "seed": int(seed),
        "wall_time_s": float(wall_time_s),
        "grad_evals": int(grad_evals),
        "posterior_name": posterior.name,
        **_arviz.versions(),
    }


def make_inference_data(
    posterior: Posterior,
    draws: Mapping[str, np.ndarray],
    sample_stats: Mapping[str, np.ndarray],
    attrs: Mapping,
    step_stats: Mapping[str, np.ndarray] | None = None,
    predictive: bool = True,
) -> "_arviz.InferenceData":
    """Assemble an InferenceData (layout: the module docstring).

    :param draws: site -> ``(chain, draw, *site_shape)`` arrays.
    :param sample_stats: name -> ``(chain, draw)`` arrays.
    :param attrs: engine attrs (:func:`engine_attrs`); its ``seed`` seeds the predictive draws.
    :param step_stats: name -> ``(num_steps,)`` optimisation traces (dim ``step``).
    :param predictive: record the ``posterior_predictive``, ``prior`` and
        ``prior_predictive`` groups (where cheap; ``False`` for batched runs of many
        posteriors).
    """
    sites = posterior.validate()
    observed = {k: v.cpu().numpy() for k, v in sites.observed.items()}
    constant = {
        k: v.cpu().numpy() for k, v in posterior.data.items() if k not in observed
    }
    seed = int(attrs.get("seed", 0))
    prior = prior_predictive = None
    devices = [d for d in {v.device for v in posterior.data.values()} if d.type == "cuda"]
    with posterior.session() as (model, _), torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        log_likelihood, posterior_predictive = observed_site_draws(
            model, posterior.data, sites, draws, predictive=predictive,
            max_predictive_elements=MAX_GROUP_ELEMENTS)
        if predictive:
            prior, prior_predictive = prior_draws(posterior, model, sites, seed)
    idata = _arviz.from_dict(
        posterior=dict(draws),
        sample_stats=dict(sample_stats),
        log_likelihood=log_likelihood,
        posterior_predictive=posterior_predictive,
        prior=prior,
        prior_predictive=prior_predictive,
        observed_data=observed or None,
        constant_data=constant or None,
        coords=posterior.coords or None,
        dims=posterior.dims or None,
        attrs=dict(attrs),
    )
    for group in ("posterior", "sample_stats"):  # survive per-group netCDF reads too
        if group in idata.groups():
            getattr(idata, group).attrs.update(attrs)
    if step_stats:
        for key, values in step_stats.items():
            values = np.asarray(values, dtype=np.float64)
            idata.sample_stats[key] = xr.DataArray(
                values, dims=("step",), coords={"step": np.arange(values.shape[0])}
            )
    return idata
