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
- ``attrs`` (on every group): ``engine``, ``config`` (JSON), ``seed``, ``wall_time_s``,
  ``grad_evals``, ``posterior_name`` and library versions.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np
import xarray as xr

from .. import _arviz
from ..posterior import Posterior
from ._log_likelihood import pointwise_log_likelihood

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
) -> "_arviz.InferenceData":
    """Assemble an InferenceData.

    :param draws: site -> ``(chain, draw, *site_shape)`` arrays.
    :param sample_stats: name -> ``(chain, draw)`` arrays.
    :param step_stats: name -> ``(num_steps,)`` optimisation traces (dim ``step``).
    """
    sites = posterior.validate()
    observed = {k: v.cpu().numpy() for k, v in sites.observed.items()}
    constant = {
        k: v.cpu().numpy() for k, v in posterior.data.items() if k not in observed
    }
    with posterior.session() as (model, _):
        log_likelihood = pointwise_log_likelihood(model, posterior.data, sites, draws)
    idata = _arviz.from_dict(
        posterior=dict(draws),
        sample_stats=dict(sample_stats),
        log_likelihood=log_likelihood,
        observed_data=observed or None,
        constant_data=constant or None,
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
