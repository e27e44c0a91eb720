"""Pointwise log-likelihood of observed sites at posterior draws: ArviZ's ``log_likelihood``
group, which ``az.loo``, ``az.waic``, ``az.compare`` and ``az.plot_khat`` read.

For each draw z_s and each observed site y, ``log p(y_i | z_s, theta)`` for every element i
of the site's batch shape (its plates; an event dimension is summed, as Pyro's ``log_prob``
does). Computed with ``torch.func.vmap`` over draws of one conditioned trace (validation
off, as for the NUTS potential), checked on two draws against plain traces, and
otherwise one trace per draw. Models with enumerated discrete sites are skipped: their
pointwise likelihood needs the discrete sites summed out per observation.

The same vectorized trace gives the posterior predictive: y_rep ~ p(y | z_s, theta) drawn
from each observed site's distribution at the draw (ArviZ's ``posterior_predictive`` group,
which ``az.plot_ppc`` reads), recorded where cheap (:func:`observed_site_draws`).

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

__all__ = ["pointwise_log_likelihood", "observed_site_draws"]

_MAX_LOOP_DRAWS = 20000  # beyond this many draws the per-draw fallback is skipped
_MAX_LOOP_PREDICTIVE = 2000  # likewise for the posterior predictive ("where cheap")


def _site_terms(model, data, observed, latents, sample=False):
    """log p(y | z, theta) per observed site (and, with ``sample``, a draw y_rep from the
    same distribution: the posterior predictive)."""
    with pyro.validation_enabled(False):
        trace = poutine.trace(poutine.condition(model, data=latents)).get_trace(**data)
    out = {name: trace.nodes[name]["fn"].log_prob(trace.nodes[name]["value"]) for name in observed}
    if sample:
        out.update({_REP + name: trace.nodes[name]["fn"].sample() for name in observed})
    return out


_REP = "y_rep::"  # key prefix of predictive draws inside _site_terms' output


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
    return observed_site_draws(model, data, sites, draws, predictive=False)[0]


def observed_site_draws(
    model: Callable,
    data: Mapping[str, torch.Tensor],
    sites: SiteInfo,
    draws: Mapping[str, np.ndarray],
    predictive: bool = True,
    max_predictive_elements: int = 1_000_000,
) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """The pointwise log-likelihood (:func:`pointwise_log_likelihood`) and the posterior
    predictive y_rep ~ p(y | z, theta) at every draw z, from one (vectorized) trace per
    draw: ArviZ's ``log_likelihood`` and ``posterior_predictive`` groups.

    :param predictive: also draw y_rep (from the global torch generator: fork and seed it
        for reproducible draws).
    :param max_predictive_elements: y_rep is skipped when draws x observed elements exceed
        this ("where cheap": e.g. every pixel of 100 images at every draw).
    :returns: ``(log_likelihood, posterior_predictive)``: site -> ``(chain, draw,
        *batch_shape)`` float64 nats, and site -> ``(chain, draw, *site_shape)`` in the
        observed values' dtype; each ``None`` when not recorded (as
        :func:`pointwise_log_likelihood` says; both ``None`` for models with enumerated
        sites, whose discrete sites would have to be drawn first).
    """
    if not sites.observed or sites.enumerated or not sites.latent:
        return None, None
    first = np.asarray(draws[next(iter(sites.latent))])
    chains, num = first.shape[:2]
    n = chains * num
    if predictive and n * sum(v.numel() for v in sites.observed.values()) > max_predictive_elements:
        log.debug("posterior predictive skipped: %d draws x %d observed elements", n,
                  sum(v.numel() for v in sites.observed.values()))
        predictive = False
    dtype = next(iter(sites.observed.values())).dtype
    dtype = dtype if dtype.is_floating_point else torch.get_default_dtype()
    device = next(iter(sites.observed.values())).device
    flat = {k: torch.as_tensor(np.asarray(draws[k]).reshape(n, *shape), dtype=dtype, device=device)
            for k, shape in sites.latent.items()}
    observed = list(sites.observed)
    try:
        with torch.no_grad():
            first_terms = _site_terms(model, data, observed, {k: v[0] for k, v in flat.items()})
    except Exception as err:  # noqa: BLE001
        log.warning("pointwise log-likelihood not recorded: %s", err)
        return None, None
    # one term (e.g. one image with its pixels as an event): nothing to leave out
    with_log_lik = sum(v.numel() for v in first_terms.values()) >= 2
    log_lik = _log_likelihood(model, data, observed, flat, n) if with_log_lik else None
    if log_lik is not None:
        log_lik = {k: v.detach().to(torch.float64).cpu().numpy().reshape(chains, num, *v.shape[1:])
                   for k, v in log_lik.items()}
    replicated = _replicated(model, data, observed, flat, n) if predictive else None
    if replicated is not None:
        replicated = {k: v.detach().cpu().numpy().reshape(chains, num, *v.shape[1:]).astype(
            sites.observed[k].cpu().numpy().dtype, copy=False) for k, v in replicated.items()}
    return log_lik, replicated


def _log_likelihood(model, data, observed, flat, n):
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
                rows = [_site_terms(model, data, observed, {k: v[i] for k, v in flat.items()})
                        for i in range(n)]
        except Exception as err:  # noqa: BLE001
            log.warning("pointwise log-likelihood not recorded: %s", err)
            return None
        result = {k: torch.stack([r[k] for r in rows]) for k in observed}
    return result


def _replicated(model, data, observed, flat, n):
    """y_rep per observed site, ``(n, *site_shape)``: one vectorized trace (``vmap``), or one
    trace per draw up to :data:`_MAX_LOOP_PREDICTIVE` draws (some samplers draw in place,
    which ``vmap`` refuses), else ``None``."""
    def one(latents):
        return {k[len(_REP):]: v for k, v in _site_terms(model, data, observed, latents,
                                                           sample=True).items()
                if k.startswith(_REP)}

    with torch.no_grad():
        try:
            batched = torch.func.vmap(one, randomness="different")(flat)
            plain = one({k: v[0] for k, v in flat.items()})
            if all(batched[k].shape[1:] == plain[k].shape for k in observed):
                return batched
        except Exception as err:  # noqa: BLE001 - any failure means: use the fallback
            log.debug("posterior predictive: vmap failed (%s)", err)
        if n > _MAX_LOOP_PREDICTIVE:
            log.debug("posterior predictive skipped: no vectorized draws, %d draws", n)
            return None
        try:
            rows = [one({k: v[i] for k, v in flat.items()}) for i in range(n)]
        except Exception as err:  # noqa: BLE001
            log.warning("posterior predictive not recorded: %s", err)
            return None
    return {k: torch.stack([r[k] for r in rows]) for k in observed}


def _vmapped(model, data, observed, flat, n):
    def one(latents):
        return _site_terms(model, data, observed, latents)

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
