"""Draws from the prior and the prior predictive: ArviZ's ``prior`` and ``prior_predictive``
groups (``az.plot_dist_comparison``, ``az.plot_ppc(group="prior")``).

z ~ p(z | theta) and y ~ p(y | z, theta) from the model with its observed sites
unconditioned (as ``poutine.uncondition``; ``pyro.deterministic`` sites keep their values),
vectorized by ``pyro.infer.Predictive(parallel=True)`` (a plate of draws left of the model's
plates) and otherwise one trace per draw; seeded, so every engine of a comparison gets the
same prior draws, and computed once per posterior and seed. Source: ``arviz.from_pyro(prior=
Predictive(model, num_samples=...)(...))`` is the same recipe.
"""

from __future__ import annotations

import logging
import weakref
from typing import Callable

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import Predictive
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample

from ..posterior import Posterior, SiteInfo

log = logging.getLogger(__name__)

__all__ = ["prior_draws", "PRIOR_DRAWS", "MAX_GROUP_ELEMENTS"]

PRIOR_DRAWS = 500
"""Draws in the ``prior`` / ``prior_predictive`` groups (one chain)."""
MAX_GROUP_ELEMENTS = 1_000_000
"""A predictive group with more scalar values than this is not recorded ("where cheap")."""

_CACHE: "weakref.WeakKeyDictionary[Posterior, dict]" = weakref.WeakKeyDictionary()


class _Unobserve(Messenger):
    """``poutine.uncondition`` for the named sites only (a ``pyro.deterministic`` site, an
    observed Delta, must keep its value)."""

    def __init__(self, names):
        super().__init__()
        self.names = set(names)

    def _pyro_sample(self, msg):
        if msg["is_observed"] and msg["name"] in self.names:
            msg["is_observed"] = False
            msg["infer"]["was_observed"] = True
            msg["infer"]["obs"] = msg["value"]
            msg["value"] = None
            msg["done"] = False


def _one(model, data, names, observed):
    with pyro.validation_enabled(False), _Unobserve(observed):
        trace = poutine.trace(model).get_trace(**data)
    return {name: trace.nodes[name]["value"] for name in names
            if name in trace.nodes and not site_is_subsample(trace.nodes[name])}


def prior_draws(
    posterior: Posterior,
    model: Callable,
    sites: SiteInfo,
    seed: int,
    num_draws: int = PRIOR_DRAWS,
    max_elements: int = MAX_GROUP_ELEMENTS,
) -> tuple[dict[str, np.ndarray] | None, dict[str, np.ndarray] | None]:
    """``num_draws`` draws of every latent and deterministic site from the prior p(z | theta),
    and of every observed site from the prior predictive, with torch seeded by ``seed``
    (the global generator is left as it was).

    :param model: ``posterior``'s model inside ``posterior.session()``.
    :returns: ``(prior, prior_predictive)``: site -> ``(1, num_draws, *site_shape)`` arrays;
        ``(None, None)`` when the draws would hold more than ``max_elements`` values, or
        the model could not be run unconditioned (logged).
    """
    per_draw = sum(int(np.prod(s)) for s in (*sites.latent.values(), *sites.enumerated.values(),
                                              *sites.deterministic.values()))
    per_draw += sum(v.numel() for v in sites.observed.values())
    if num_draws * per_draw > max_elements:
        log.debug("%s: prior groups skipped (%d draws x %d values)", posterior.name, num_draws,
                  per_draw)
        return None, None
    cache = _CACHE.setdefault(posterior, {})
    key = (int(seed), int(num_draws))
    if key not in cache:
        cache[key] = _draw(posterior, model, sites, int(seed), num_draws)
    return cache[key]


def _shape(sites: SiteInfo, name: str) -> tuple:
    for group in (sites.latent, sites.enumerated, sites.deterministic):
        if name in group:
            return tuple(group[name])
    return tuple(sites.observed[name].shape)


def _draw(posterior, model, sites, seed, num_draws):
    names = [*sites.latent, *sites.enumerated, *sites.deterministic, *sites.observed]
    data = posterior.data
    device = next(iter(data.values())).device if data else torch.device("cpu")
    devices = [device] if device.type == "cuda" else []
    unobserved = _Unobserve(sites.observed)(model)
    with torch.random.fork_rng(devices=devices), torch.no_grad(), \
            pyro.validation_enabled(False):
        torch.manual_seed(seed)
        try:  # Pyro's vectorized Predictive: a plate of draws left of the model's plates
            raw = Predictive(unobserved, num_samples=num_draws, return_sites=names,
                             parallel=True)(**data)
            values = {k: raw[k].reshape(num_draws, *_shape(sites, k)) for k in names}
        except Exception as err:  # noqa: BLE001 - any failure means: use the fallback
            log.debug("%s: prior draws: Predictive(parallel=True) failed (%s); one trace per "
                      "draw", posterior.name, err)
            try:
                rows = [_one(model, data, names, sites.observed) for _ in range(num_draws)]
                values = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
            except Exception as err2:  # noqa: BLE001
                log.warning("%s: prior groups not recorded: %s", posterior.name, err2)
                return None, None
    out = {}
    for k, v in values.items():
        if tuple(v.shape[1:]) != tuple(_shape(sites, k)):
            log.warning("%s: prior groups not recorded: site %r drawn with shape %s, expected %s",
                        posterior.name, k, tuple(v.shape[1:]), tuple(_shape(sites, k)))
            return None, None
        out[k] = v.detach().cpu().numpy()[None]
    prior = {k: out[k] for k in names if k not in sites.observed}
    predictive = {k: out[k] for k in sites.observed}
    return prior, predictive or None
