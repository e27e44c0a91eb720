"""Draws of a guide with their importance weights, and deterministic sites of a model."""

from __future__ import annotations

import logging
import math
from typing import Callable, Mapping

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.infer import Predictive
from pyro.infer.importance import vectorized_importance_weights

from ..posterior import SiteInfo

log = logging.getLogger(__name__)

# Pyro raises these when a model/guide is not written for vectorized particles.
_VECTORIZE_ERRORS = (RuntimeError, ValueError, IndexError, NotImplementedError)


def _reshape(value: torch.Tensor, n: int, shape: torch.Size, name: str) -> np.ndarray:
    size = math.prod(shape)
    if value.numel() == n * size:
        value = value.reshape(n, *shape)
    elif value.numel() == size:  # did not depend on the particle
        value = value.reshape(shape).expand(n, *shape)
    else:
        raise RuntimeError(f"site {name!r}: cannot reshape {tuple(value.shape)} to ({n}, *{tuple(shape)})")
    return value.detach().cpu().numpy()


def guide_draws(
    model: Callable,
    guide: Callable,
    data: Mapping[str, torch.Tensor],
    sites: SiteInfo,
    num_draws: int,
    chunk_size: int = 500,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draw z ~ q(z | x) and compute log weights log p(x, z | theta) - log q(z | x).

    Vectorized over draws with ``pyro.infer.importance.vectorized_importance_weights``
    (in chunks of ``chunk_size``); falls back to one trace per draw for programs that are
    not written for vectorization.

    :returns: ``(values, log_weights)``: ``values[site]`` has shape
        ``(num_draws, *site_shape)`` for every latent and deterministic site;
        ``log_weights`` has shape ``(num_draws,)`` (nats).
    """
    names = {**sites.latent, **sites.deterministic}
    chunks: list[tuple[dict, np.ndarray]] = []
    done = 0
    with torch.no_grad():
        try:
            while done < num_draws:
                n = min(chunk_size, num_draws - done)
                log_w, model_trace, _ = vectorized_importance_weights(
                    model,
                    guide,
                    num_samples=n,
                    max_plate_nesting=sites.max_plate_nesting,
                    **data,
                )
                values = {
                    k: _reshape(model_trace.nodes[k]["value"], n, s, k) for k, s in names.items()
                }
                chunks.append((values, log_w.reshape(n).cpu().numpy()))
                done += n
        except _VECTORIZE_ERRORS as exc:
            log.warning("vectorized guide draws failed (%s); drawing one at a time", exc)
            chunks = [_sequential(model, guide, data, names, num_draws)]
    values = {k: np.concatenate([c[0][k] for c in chunks]) for k in names}
    log_weights = np.concatenate([c[1] for c in chunks]).astype(np.float64)
    return values, log_weights


def _sequential(model, guide, data, names, num_draws):
    values = {k: [] for k in names}
    log_weights = []
    for _ in range(num_draws):
        guide_trace = poutine.trace(guide).get_trace(**data)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(**data)
        log_weights.append(float(model_trace.log_prob_sum() - guide_trace.log_prob_sum()))
        for k in names:
            values[k].append(model_trace.nodes[k]["value"].detach().cpu().numpy())
    return {k: np.stack(v) for k, v in values.items()}, np.asarray(log_weights)


def deterministic_sites(
    model: Callable,
    samples: Mapping[str, torch.Tensor],
    data: Mapping[str, torch.Tensor],
    sites: SiteInfo,
) -> dict[str, np.ndarray]:
    """Values of ``pyro.deterministic`` sites at given latent draws.

    :param samples: site -> ``(num_draws, *site_shape)`` latent draws.
    :returns: site -> ``(num_draws, *site_shape)`` arrays. Source: ``pyro.infer.Predictive``.
    """
    if not sites.deterministic:
        return {}
    n = next(iter(samples.values())).shape[0]
    names = list(sites.deterministic)
    with torch.no_grad():
        try:
            out = Predictive(model, posterior_samples=dict(samples), return_sites=names, parallel=True)(**data)
        except _VECTORIZE_ERRORS as exc:
            log.warning("vectorized Predictive failed (%s); running one draw at a time", exc)
            out = Predictive(model, posterior_samples=dict(samples), return_sites=names)(**data)
    return {k: _reshape(out[k], n, sites.deterministic[k], k) for k in names}
