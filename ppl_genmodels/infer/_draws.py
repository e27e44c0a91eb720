"""Draws of a guide with their importance weights, and deterministic sites of a model."""

from __future__ import annotations

import logging
from typing import Callable, Mapping

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import Predictive
from pyro.infer.importance import vectorized_importance_weights
from pyro.infer.mcmc.util import TraceEinsumEvaluator

from ..posterior import SiteInfo
from ._particles import enumerated_log_weights, particles_vectorize, split_particles

log = logging.getLogger(__name__)

# Pyro raises these when a model/guide is not written for vectorized particles.
_VECTORIZE_ERRORS = (RuntimeError, ValueError, IndexError, NotImplementedError)


def _reshape(value: torch.Tensor, n: int, shape: torch.Size, name: str) -> np.ndarray:
    return split_particles(value, n, shape, name).detach().cpu().numpy()


def guide_draws(
    model: Callable,
    guide: Callable,
    data: Mapping[str, torch.Tensor],
    sites: SiteInfo,
    num_draws: int,
    chunk_size: int = 500,
    vectorize: bool | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draw z ~ q(z | x) and compute log weights log p(x, z | theta) - log q(z | x).

    Vectorized over draws with ``pyro.infer.importance.vectorized_importance_weights``
    (in chunks of ``chunk_size``); one trace per draw for programs that are not written for
    vectorization: ``vectorize=False``, or ``None`` (default) when
    :func:`~._particles.particles_vectorize` finds that vectorized log weights differ from
    sequential ones (or a vectorized chunk raises). When the model has sites marked
    ``infer={'enumerate': 'parallel'}`` (``sites.enumerated``), the guide covers only the
    other latents z and log p(x, z | theta) = log sum_a p(x, z, a | theta) is computed by
    summing the enumerated sites out exactly (:func:`enumerated_log_weights`).

    :returns: ``(values, log_weights)``: ``values[site]`` has shape
        ``(num_draws, *site_shape)`` for every latent and deterministic site;
        ``log_weights`` has shape ``(num_draws,)`` (nats).
    """
    names = {**sites.latent, **sites.deterministic}
    if vectorize is None:
        vectorize = particles_vectorize(model, guide, data, sites)
    chunks: list[tuple[dict, np.ndarray]] = []
    with torch.no_grad():
        if vectorize:
            try:
                chunks = _vectorized(model, guide, data, names, num_draws, sites, chunk_size)
            except _VECTORIZE_ERRORS as exc:
                log.warning("vectorized guide draws failed (%s); drawing one at a time", exc)
                vectorize = False
        if not vectorize:
            chunks = [_sequential(model, guide, data, names, num_draws, sites)]
    values = {k: np.concatenate([c[0][k] for c in chunks]) for k in names}
    log_weights = np.concatenate([c[1] for c in chunks]).astype(np.float64)
    return values, log_weights


def _vectorized(model, guide, data, names, num_draws, sites, chunk_size):
    weights = enumerated_log_weights if sites.enumerated else vectorized_importance_weights
    chunks, done = [], 0
    while done < num_draws:
        n = min(chunk_size, num_draws - done)
        log_w, model_trace, _ = weights(model, guide, num_samples=n,
                                        max_plate_nesting=sites.max_plate_nesting, **data)
        values = {k: _reshape(model_trace.nodes[k]["value"], n, s, k) for k, s in names.items()}
        chunks.append((values, log_w.reshape(n).cpu().numpy()))
        done += n
    return chunks


def _sequential(model, guide, data, names, num_draws, sites):
    values = {k: [] for k in names}
    log_weights = []
    for _ in range(num_draws):
        guide_trace = poutine.trace(guide).get_trace(**data)
        replayed = poutine.replay(model, trace=guide_trace)
        if sites.enumerated:
            # Sum the enumerated sites out as pyro.infer.mcmc does for NUTS.
            enum_model = poutine.enum(replayed, first_available_dim=-(sites.max_plate_nesting + 1))
            model_trace = poutine.trace(enum_model).get_trace(**data)
            evaluator = TraceEinsumEvaluator(model_trace, True, sites.max_plate_nesting)
            log_p = evaluator.log_prob(model_trace)
        else:
            model_trace = poutine.trace(replayed).get_trace(**data)
            log_p = model_trace.log_prob_sum()
        log_weights.append(float((log_p - guide_trace.log_prob_sum()).detach()))
        for k in names:
            values[k].append(model_trace.nodes[k]["value"].detach().cpu().numpy())
    return {k: np.stack(v) for k, v in values.items()}, np.asarray(log_weights)


def param_store_state() -> dict[str, torch.Tensor]:
    """A detached copy of every entry of Pyro's current param store (name -> tensor)."""
    return {k: v.detach().clone() for k, v in pyro.get_param_store().items()}


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
