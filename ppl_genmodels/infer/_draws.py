"""Draws of a guide with their importance weights, and deterministic sites of a model."""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Callable, Mapping

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from opt_einsum import shared_intermediates
from pyro.infer import Predictive
from pyro.infer.importance import vectorized_importance_weights
from pyro.infer.mcmc.util import TraceEinsumEvaluator
from pyro.infer.util import plate_log_prob_sum
from pyro.ops.contract import contract_to_tensor
from pyro.poutine.util import prune_subsample_sites

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
    not written for vectorization. When the model has sites marked
    ``infer={'enumerate': 'parallel'}`` (``sites.enumerated``), the guide covers only the
    other latents z and log p(x, z | theta) = log sum_a p(x, z, a | theta) is computed by
    summing the enumerated sites out exactly (:func:`enumerated_log_weights`).

    :returns: ``(values, log_weights)``: ``values[site]`` has shape
        ``(num_draws, *site_shape)`` for every latent and deterministic site;
        ``log_weights`` has shape ``(num_draws,)`` (nats).
    """
    names = {**sites.latent, **sites.deterministic}
    chunks: list[tuple[dict, np.ndarray]] = []
    done = 0
    weights = enumerated_log_weights if sites.enumerated else vectorized_importance_weights
    with torch.no_grad():
        try:
            while done < num_draws:
                n = min(chunk_size, num_draws - done)
                log_w, model_trace, _ = weights(
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
            chunks = [_sequential(model, guide, data, names, num_draws, sites)]
    values = {k: np.concatenate([c[0][k] for c in chunks]) for k in names}
    log_weights = np.concatenate([c[1] for c in chunks]).astype(np.float64)
    return values, log_weights


def enumerated_log_weights(model, guide, *, num_samples, max_plate_nesting, **data):
    """Importance weights of a model whose discrete sites are summed out by enumeration.

    Draws ``num_samples`` z ~ q(z | x) at once (a vectorized particle plate at dim
    ``-(max_plate_nesting + 1)``), replays the model on them under ``poutine.enum`` (enum
    dims left of the particle dim) and contracts the enumerated dims with Pyro's
    sum-product ``pyro.ops.contract.contract_to_tensor``, keeping the particle dim: the
    same marginalization ``TraceEnum_ELBO`` and NUTS (``TraceEinsumEvaluator``) use.

    :param max_plate_nesting: plates the model nests (without the particle plate).
    :returns: ``(log_weights, model_trace, guide_trace)`` like
        ``pyro.infer.importance.vectorized_importance_weights``: log_weights ``(num_samples,)``
        = log sum_a p(x, z, a | theta) - log q(z | x) in nats.
    """
    particle_dim = -(max_plate_nesting + 1)

    def vectorize(fn):
        def _fn(**kwargs):
            with pyro.plate("num_particles_vectorized", num_samples, dim=particle_dim):
                return fn(**kwargs)
        return _fn

    guide_trace = poutine.trace(vectorize(guide)).get_trace(**data)
    enum_model = poutine.enum(poutine.replay(vectorize(model), trace=guide_trace),
                              first_available_dim=particle_dim - 1)
    model_trace = poutine.trace(enum_model).get_trace(**data)
    guide_trace = prune_subsample_sites(guide_trace)
    model_trace = prune_subsample_sites(model_trace)
    guide_trace.compute_log_prob()
    model_trace.compute_log_prob()
    guide_trace.pack_tensors()
    model_trace.pack_tensors(guide_trace.plate_to_symbol)
    particle = guide_trace.plate_to_symbol["num_particles_vectorized"]
    factors = OrderedDict()
    for site in model_trace.nodes.values():
        if site["type"] != "sample":
            continue
        ordinal = frozenset(model_trace.plate_to_symbol[f.name]
                            for f in site["cond_indep_stack"] if f.vectorized)
        factors.setdefault(ordinal, []).append(site["packed"]["log_prob"])
    enum_symbols = set(model_trace.symbol_to_dim) - set(model_trace.plate_to_symbol.values())
    with shared_intermediates() as cache:
        log_p = contract_to_tensor(factors, enum_symbols,
                                   target_ordinal=frozenset({particle}), cache=cache)
    log_p = torch.einsum(f"{log_p._pyro_dims}->{particle}", log_p) if log_p.dim() else (
        log_p.expand(num_samples))
    log_q = plate_log_prob_sum(guide_trace, particle)
    return log_p - log_q, model_trace, guide_trace


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
