"""Do a model and guide broadcast over a particle dimension? Vectorized vs sequential weights.

The VI engines evaluate many particles at once (``vectorize_particles=True``): Pyro adds a
plate at dim ``-(max_plate_nesting + 1)`` and every latent gains a leading particle
dimension. Models written for one draw (``X @ beta``, ``b[0] + b[1] * x``) then fail with
a shape error or, worse, silently mix particles (``b[0]`` picks the first particle).
:func:`particles_vectorize` tells the two apart numerically, once, before any engine runs:
it draws two particles in one vectorized trace, evaluates log p(x, z | theta) - log q(z | x)
for each, and compares with one trace per particle. Engines fall back to sequential
particles (``vectorize_particles=False``, one trace per draw) when they differ.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Callable, Mapping

import pyro
import pyro.poutine as poutine
import torch
from opt_einsum import shared_intermediates
from pyro.infer.importance import vectorized_importance_weights
from pyro.infer.mcmc.util import TraceEinsumEvaluator
from pyro.infer.util import plate_log_prob_sum
from pyro.ops.contract import contract_to_tensor
from pyro.poutine.util import prune_subsample_sites

from ..posterior import SiteInfo

log = logging.getLogger(__name__)

__all__ = ["particles_vectorize", "split_particles", "log_weight_at", "enumerated_log_weights"]

# Pyro and torch raise these when a program is not written for vectorized particles.
VECTORIZE_ERRORS = (RuntimeError, ValueError, IndexError, TypeError, NotImplementedError,
                    AssertionError)


def split_particles(value: torch.Tensor, n: int, shape: torch.Size, name: str) -> torch.Tensor:
    """A vectorized site value as ``(n, *shape)`` (one row per particle).

    :raises RuntimeError: the value has neither ``n * prod(shape)`` nor ``prod(shape)``
        elements (a value that does not depend on the particle is repeated).
    """
    size = math.prod(shape)
    if value.numel() == n * size:
        return value.reshape(n, *shape)
    if value.numel() == size:  # did not depend on the particle
        return value.reshape(shape).expand(n, *shape)
    raise RuntimeError(f"site {name!r}: cannot reshape {tuple(value.shape)} to ({n}, *{tuple(shape)})")


def log_weight_at(model: Callable, guide: Callable, data: Mapping[str, torch.Tensor],
                  sites: SiteInfo, values: Mapping[str, torch.Tensor]) -> float:
    """log p(x, z | theta) - log q(z | x) (nats) at one latent value ``values`` (site ->
    tensor of the site's shape), one trace each; enumerated sites are summed out."""
    guide_trace = poutine.trace(poutine.condition(guide, data=dict(values))).get_trace(**data)
    conditioned = poutine.condition(model, data=dict(values))
    if sites.enumerated:
        enum_model = poutine.enum(conditioned, first_available_dim=-(sites.max_plate_nesting + 1))
        model_trace = poutine.trace(enum_model).get_trace(**data)
        log_p = TraceEinsumEvaluator(model_trace, True, sites.max_plate_nesting).log_prob(model_trace)
    else:
        log_p = poutine.trace(conditioned).get_trace(**data).log_prob_sum()
    return float((log_p - guide_trace.log_prob_sum()).detach())


def particles_vectorize(model: Callable, guide: Callable, data: Mapping[str, torch.Tensor],
                        sites: SiteInfo, num_particles: int = 2, seed: int = 0) -> bool:
    """Whether ``num_particles`` vectorized guide draws give the same log weights as the
    same draws evaluated one at a time (relative tolerance 1e-4 plus 1e-3 nats).

    Runs without gradients, seeded, leaving the global RNG state as it was.

    :returns: ``False`` when the vectorized trace raises (a shape error), a site's value
        cannot be split per particle, or a log weight differs (silent mixing of particles).
    """
    weights = enumerated_log_weights if sites.enumerated else vectorized_importance_weights
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            log_w, _, guide_trace = weights(model, guide, num_samples=num_particles,
                                            max_plate_nesting=sites.max_plate_nesting, **data)
            log_w = log_w.reshape(num_particles)
            draws = {k: split_particles(guide_trace.nodes[k]["value"], num_particles, s, k)
                     for k, s in sites.latent.items()}
        except VECTORIZE_ERRORS as exc:
            log.info("the model/guide does not run with vectorized particles (%s: %s)",
                     type(exc).__name__, exc)
            return False
        for i in range(num_particles):
            one = log_weight_at(model, guide, data, sites, {k: v[i] for k, v in draws.items()})
            vec = float(log_w[i])
            if not (math.isfinite(vec) and abs(vec - one) <= 1e-3 + 1e-4 * abs(one)):
                log.info("vectorized particles give log weight %.6g, one at a time %.6g: the "
                         "model does not broadcast over particles", vec, one)
                return False
    return True


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
