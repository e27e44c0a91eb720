"""The L posterior draws each SBC rank is taken among: from an engine's result (MCMC draws
thinned by ESS, iid VI draws as they are) or from an amortized guide."""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pyro
import torch

from .. import _arviz
from ..diagnostics import flat_draws
from ..infer import guide_draws
from ..posterior import Posterior

__all__ = ["flat_values", "select_draws", "engine_draws", "amortized_draws"]


def flat_values(values: Mapping[str, np.ndarray],
                posterior: Posterior | None = None) -> dict[str, np.ndarray]:
    """site -> ``(n, *site_shape)`` arrays to scalar label -> ``(n,)``, labelled like
    :func:`~ppl_genmodels.diagnostics.flat_draws` labels an engine's result (ArviZ's
    labeller with ``posterior``'s dims and coords: ``"theta[Choate]"``; ``"theta[3]"``
    without coords)."""
    dims = {k: v for k, v in posterior.dims.items() if k in values} if posterior else {}
    coords = posterior.coords if posterior else {}
    dataset = _arviz.dict_to_dataset({k: np.asarray(v)[None] for k, v in values.items()},
                                     dims=dims or None, coords=coords or None)
    return {label: v[0] for label, v in _arviz.flat_values(dataset).items()}


def select_draws(draws: np.ndarray, num_draws: int, thin: int | str,
                 ess_min: float) -> tuple[np.ndarray, int, bool]:
    """L near-independent draws from ``(chains, M, P)`` MCMC draws.

    Thinning step t = ceil(chains * M / min ESS) (Talts et al. 2018, sec. 5.1: thin so the
    kept draws are roughly independent) or the given int. From each chain every t-th draw
    is kept; L of those are taken evenly spaced. If fewer than L survive, L draws evenly
    spaced over all draws are used and ``under_thinned`` is True.

    :returns: ``(selected (L, P), t, under_thinned)``.
    """
    chains, m, p = draws.shape
    if thin == "ess":
        t = max(1, math.ceil(chains * m / ess_min)) if np.isfinite(ess_min) and ess_min > 0 else m
    else:
        t = int(thin)
    kept = draws[:, ::t].reshape(-1, p)
    under = kept.shape[0] < num_draws
    pool = draws.reshape(-1, p) if under else kept
    idx = np.round(np.linspace(0, pool.shape[0] - 1, num_draws)).astype(int)
    return pool[idx], t, bool(under)


def engine_draws(idata, names: Sequence[str], num_draws: int, thin: int | str,
                 variational: bool) -> tuple[np.ndarray, tuple[float, int, bool]]:
    """The L draws of one engine result.

    :param names: the P scalar parameters, labelled as :func:`flat_values` labels them.
    :param variational: the draws are iid from a guide: the first L are used, unthinned.
    :returns: ``(draws (L, P), (ess_min, thin, under_thinned))``; ``ess_min`` is the
        smallest bulk ESS over parameters (NaN for VI).
    :raises RuntimeError: the result lacks a parameter, or a VI result has fewer than L draws.
    """
    flat = flat_draws(idata)
    missing = [n for n in names if n not in flat]
    if missing:
        raise RuntimeError(f"the engine's result lacks parameters {missing[:5]}")
    draws = np.stack([flat[n] for n in names], axis=-1)  # (chains, M, P)
    if variational:  # iid draws from q: no thinning needed
        pool = draws.reshape(-1, draws.shape[-1])
        if pool.shape[0] < num_draws:
            raise RuntimeError(f"engine returned {pool.shape[0]} draws, fewer than L={num_draws}")
        return pool[:num_draws], (math.nan, 1, False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        ess = _arviz.ess(idata, method="bulk")
    ess_min = min(float(np.nanmin(np.asarray(ess[v].values))) for v in ess.data_vars)
    selected, t, under = select_draws(draws, num_draws, thin, ess_min)
    return selected, (ess_min, t, under)


def amortized_draws(posterior: Posterior, guide: Any, param_state: Mapping[str, torch.Tensor],
                    data: Mapping[str, torch.Tensor], sites: Sequence[str], names: Sequence[str],
                    num_draws: int, seed: int) -> np.ndarray:
    """L draws of a trained guide q(z | x) at simulated ``data``, no refit.

    :param guide: the trained guide; ``param_state``: its Pyro param-store values.
    :param sites: the sites to rank; ``names``: their P scalar labels.
    :returns: ``(L, P)`` draws.
    :raises ValueError: the guide does not fit the simulated data (``Posterior.validate``).
    """
    simulated = posterior.replace(guide=guide, data=data)
    sim_sites = simulated.validate()  # also checks the guide on the new data
    with simulated.session() as (model, private_guide):
        store = pyro.get_param_store()
        for key, value in param_state.items():
            store[key] = value.detach().clone()
        pyro.set_rng_seed(seed)
        values, _ = guide_draws(model, private_guide, data, sim_sites, num_draws)
    flat = flat_values({k: values[k] for k in sites}, posterior)
    return np.stack([flat[n] for n in names], axis=-1)
