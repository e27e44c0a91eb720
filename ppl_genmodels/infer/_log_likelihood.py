"""Pointwise log-likelihood of observed sites at posterior draws: ArviZ's ``log_likelihood``
group, which ``az.loo``, ``az.waic``, ``az.compare`` and ``az.plot_khat`` read.

For each draw z_s and each observed site y, ``log p(y_i | z_s, theta)`` for every element i
of the site's batch shape (its plates; an event dimension is summed, as Pyro's ``log_prob``
does). Computed with ``torch.func.vmap`` over draws of one conditioned trace (validation
off, as for the NUTS potential), checked on two draws against plain traces, and
otherwise one trace per draw. Models with enumerated discrete sites are skipped: their
pointwise likelihood needs the discrete sites summed out per observation.

Source: the group's layout is ArviZ's schema (``arviz.from_pyro`` writes the same:
``log_likelihood[site]`` with dims ``(chain, draw, *batch)``).
"""

from __future__ import annotations

import logging
from typing import Callable, Mapping

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from ..posterior import SiteInfo

log = logging.getLogger(__name__)

__all__ = ["pointwise_log_likelihood"]

_MAX_LOOP_DRAWS = 20000  # beyond this many draws the per-draw fallback is skipped


def _site_log_likelihood(model, data, observed, latents):
    with pyro.validation_enabled(False):
        trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(**data)
    return {name: trace.nodes[name]["fn"].log_prob(trace.nodes[name]["value"])
            for name in observed}


def pointwise_log_likelihood(
    model: Callable,
    data: Mapping[str, torch.Tensor],
    sites: SiteInfo,
    draws: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray] | None:
    """``log p(y_i | z, theta)`` per observed site, element and draw.

    :param model: the (session's) model; ``data`` its keyword arguments.
    :param sites: the posterior's :class:`~ppl_genmodels.posterior.SiteInfo`.
    :param draws: latent site -> ``(chain, draw, *site_shape)`` constrained values.
    :returns: observed site -> ``(chain, draw, *batch_shape)`` float64 (nats), or ``None``
        when the model has no observed site, has enumerated sites, has a single pointwise
        term in all (one observation: leave-one-out has nothing to leave out), or its
        likelihood could not be evaluated at the draws (logged).
    """
    if not sites.observed or sites.enumerated or not sites.latent:
        return None
    first = np.asarray(draws[next(iter(sites.latent))])
    chains, num = first.shape[:2]
    n = chains * num
    dtype = next(iter(sites.observed.values())).dtype
    dtype = dtype if dtype.is_floating_point else torch.get_default_dtype()
    device = next(iter(sites.observed.values())).device
    flat = {k: torch.as_tensor(np.asarray(draws[k]).reshape(n, *shape), dtype=dtype, device=device)
            for k, shape in sites.latent.items()}
    observed = list(sites.observed)
    try:
        with torch.no_grad():
            first_terms = _site_log_likelihood(model, data, observed,
                                               {k: v[0] for k, v in flat.items()})
    except Exception as err:  # noqa: BLE001
        log.warning("pointwise log-likelihood not recorded: %s", err)
        return None
    if sum(v.numel() for v in first_terms.values()) < 2:
        return None  # one term (e.g. one image with its pixels as an event): nothing to leave out
    try:
        with torch.no_grad():
            result = _vmapped(model, data, observed, flat, n)
    except Exception as err:  # noqa: BLE001 - any failure means: use the fallback
        log.debug("pointwise log-likelihood: vmap failed (%s); one trace per draw", err)
        result = None
    if result is None:
        if n > _MAX_LOOP_DRAWS:
            log.warning("pointwise log-likelihood skipped: the model does not vectorize over "
                        "draws and there are %d of them", n)
            return None
        try:
            with torch.no_grad():
                rows = [_site_log_likelihood(model, data, observed,
                                             {k: v[i] for k, v in flat.items()})
                        for i in range(n)]
        except Exception as err:  # noqa: BLE001
            log.warning("pointwise log-likelihood not recorded: %s", err)
            return None
        result = {k: torch.stack([r[k] for r in rows]) for k in observed}
    return {k: v.detach().to(torch.float64).cpu().numpy().reshape(chains, num, *v.shape[1:])
            for k, v in result.items()}


def _vmapped(model, data, observed, flat, n):
    def one(latents):
        return _site_log_likelihood(model, data, observed, latents)

    batched = torch.func.vmap(one, randomness="different")(flat)
    # Check against plain traces on two draws: a model that silently mixes draws (or
    # broadcasts wrongly under vmap) is caught here.
    for i in sorted({0, n - 1}):
        plain = one({k: v[i] for k, v in flat.items()})
        for k in observed:
            if batched[k][i].shape != plain[k].shape or not torch.allclose(
                    batched[k][i], plain[k], rtol=1e-4, atol=1e-4):
                return None
    return batched
