"""Simulated data sets for SBC: z ~ p(z), x ~ p(x | z) from the posterior's own model."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.poutine.uncondition_messenger import UnconditionMessenger

from ..posterior import Posterior

__all__ = ["observed_keys", "simulate"]


def observed_keys(posterior: Posterior, overrides: Mapping[str, str] | None) -> dict[str, str]:
    """Observed site -> keyword of ``posterior.data`` holding its value.

    A site is matched to the one data entry equal to its observed value (same shape and
    values), unless ``overrides`` names the keyword.

    :raises ValueError: an override names an unknown keyword or a site that is not
        observed, or a site matches no or several data entries.
    """
    sites = posterior.validate()
    overrides = dict(overrides or {})
    out = {}
    for site, value in sites.observed.items():
        if site in overrides:
            key = overrides[site]
            if key not in posterior.data:
                raise ValueError(f"observed_keys[{site!r}] = {key!r} is not a data keyword; "
                                 f"keywords are {sorted(posterior.data)}")
            out[site] = key
            continue
        matches = [k for k, v in posterior.data.items()
                   if v.shape == value.shape and torch.equal(v.to(value.dtype), value)]
        if len(matches) != 1:
            raise ValueError(
                f"cannot tell which data keyword holds observed site {site!r} (candidates "
                f"{matches or 'none'}); pass observed_keys={{{site!r}: 'keyword'}}"
            )
        out[site] = matches[0]
    for site in overrides:
        if site not in sites.observed:
            raise ValueError(f"observed_keys names {site!r}, which is not an observed site; "
                             f"observed sites are {sorted(sites.observed)}")
    return out


class _UnconditionData(UnconditionMessenger):
    """``poutine.uncondition`` for data sites only: a ``pyro.deterministic`` site keeps
    its computed value (unconditioned, Pyro re-samples its Delta and, inside a plate,
    broadcasts it to the wrong shape)."""

    def _pyro_sample(self, msg):
        if msg["infer"].get("_deterministic"):
            return
        super()._pyro_sample(msg)


def simulate(posterior: Posterior, keys: Mapping[str, str], sites_to_rank: Sequence[str],
             seed: int) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor]]:
    """z ~ p(z | theta), x ~ p(x | z, theta) from the posterior's own model.

    Observed sites are unconditioned (``pyro.poutine.uncondition``); every other data
    entry (covariates such as eight schools' sigma) stays as given.

    :param keys: :func:`observed_keys` of the posterior.
    :param sites_to_rank: latent and deterministic sites whose simulated values are returned.
    :returns: ``(true_values, data)``: site -> value array (shape of one draw) and the data
        dict with simulated observations.
    """
    pyro.set_rng_seed(seed)
    with posterior.session() as (model, _), torch.no_grad():
        trace = poutine.trace(_UnconditionData()(model)).get_trace(**posterior.data)
    data = dict(posterior.data)
    for site, key in keys.items():
        value = trace.nodes[site]["value"].detach()
        data[key] = value.reshape(posterior.data[key].shape).to(posterior.data[key].dtype)
    true_values = {s: trace.nodes[s]["value"].detach().cpu().numpy() for s in sites_to_rank}
    return true_values, data
