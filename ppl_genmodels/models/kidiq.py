"""Child IQ regression on the mother's IQ (posteriordb ``kidiq-kidscore_momiq``).

posteriordb's Stan program ``kidscore_momiq.stan``:

    beta[0], beta[1] ~ flat (improper uniform on R);  sigma ~ HalfCauchy(2.5)
    kid_score[n] ~ Normal(beta[0] + beta[1] * mom_iq[n], sigma),  n = 1..434

sampled here in a centred parameterization of the same posterior:

    alpha, slope ~ flat;  sigma ~ HalfCauchy(2.5);  m = mean(mom_iq)
    kid_score[n] ~ Normal(alpha + slope * (mom_iq[n] - m), sigma)
    beta = (alpha - slope * m, slope)                         (deterministic)

The map (alpha, slope) -> beta is linear with unit Jacobian and the prior is flat, so
p(beta, sigma | data) is exactly Stan's. Why: with uncentred ``mom_iq`` (mean 100) beta[0]
and beta[1] have posterior correlation -0.99 and NUTS with a diagonal mass matrix needs
about 60 leapfrog steps per draw (5 minutes on one thread); centred, a few. The flat
prior's log-density is 0; a proper Normal is used only to *simulate* (alpha, slope) where
a prior draw is needed (model tracing, RWS's sleep phase), via ``.mask(False)``, which
drops it from log p.

Data: Gelman & Hill (2007), *Data Analysis Using Regression and Multilevel/Hierarchical
Models*, ch. 3; copied from posteriordb into ``data/kidiq.json`` by
``scripts/make_posteriordb_references.py``.

Reference: posteriordb ``kidiq-kidscore_momiq`` (10 x 1000 Stan NUTS draws), summarised in
``references/kidiq_kidscore_momiq.json``; citation in that file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..posterior import Posterior
from ..reference import Reference

NAME = "kidiq"

DATA_FILE = Path(__file__).parent / "data" / "kidiq.json"
REFERENCE_FILE = Path(__file__).parent / "references" / "kidiq_kidscore_momiq.json"
# Only for simulating alpha (see the module docstring); absent from the density.
FLAT_PRIOR_SIMULATION_SCALE = 30.0


DIMS = {"beta": ["coef"], "kid_score": ["child"], "mom_iq": ["child"]}
"""ArviZ dims of the sites and data entries (``Posterior(dims=...)``)."""


def model(kid_score, mom_iq):
    """kid_score, mom_iq: (N,) test scores and IQ points."""
    centre = mom_iq.mean()
    # Flat prior: simulated from a broad Normal, masked out of log p (see docstring).
    alpha = pyro.sample("alpha", dist.Normal(100.0, FLAT_PRIOR_SIMULATION_SCALE).mask(False))
    slope = pyro.sample("slope", dist.Normal(0.0, 1.0).mask(False))
    pyro.deterministic("beta", torch.stack([alpha - slope * centre, slope], -1))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
    with pyro.plate("data", mom_iq.shape[-1]):
        mean = alpha + slope * (mom_iq - centre)
        pyro.sample("kid_score", dist.Normal(mean, sigma), obs=kid_score)


def least_squares(kid_score, mom_iq):
    """OLS fit of kid_score on (1, mom_iq - mean(mom_iq)), batched over ``kid_score``.

    :param kid_score: ``(..., N)``.
    :param mom_iq: ``(N,)``.
    :returns: ``(coef, se, log_resid_sd)``: coef = (alpha, slope) and their standard errors,
        each ``(..., 2)``; log residual sd ``(...,)``.
    """
    x = mom_iq - mom_iq.mean()
    alpha = kid_score.mean(-1)
    slope = (kid_score * x).sum(-1) / x.pow(2).sum()
    resid = kid_score - alpha.unsqueeze(-1) - slope.unsqueeze(-1) * x
    resid_sd = (resid.pow(2).sum(-1) / (x.shape[-1] - 2)).clamp_min(1e-6).sqrt()
    se = resid_sd.unsqueeze(-1) * torch.stack(
        [1.0 / torch.tensor(float(x.shape[-1])).sqrt(), 1.0 / x.pow(2).sum().sqrt()])
    return torch.stack([alpha, slope], -1), se, resid_sd.log()


class Encoder(nn.Module):
    """Amortized mean-field guide q(alpha, slope, sigma | kid_score, mom_iq).

    The data enter through their least-squares fit: q(alpha) = Normal(coef[0] + se[0] *
    a_0, se[0] * exp(b_0)), likewise q(slope), and q(sigma) = LogNormal(log resid_sd +
    0.1 a_2, 0.1 exp(b_2)), where (a, b) come from a linear layer on the standardized fit
    (initialised to zero, so the guide starts at the OLS fit). Only the shifts and scales
    are left to learn.
    """

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 6)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, kid_score, mom_iq, observations=None):
        if observations is not None:
            kid_score = observations["kid_score"]
        pyro.module("encoder", self)
        coef, se, log_sd = least_squares(kid_score, mom_iq)
        features = torch.cat([coef / (se * 100.0), log_sd.unsqueeze(-1) / 10.0], -1)
        out = self.linear(features)
        loc = torch.cat([coef + se * out[..., :2], (log_sd + 0.1 * out[..., 2]).unsqueeze(-1)], -1)
        scale = torch.cat([se, torch.full_like(se[..., :1], 0.1)], -1) * out[..., 3:].exp()
        if kid_score.dim() > 1:
            # Vectorized sleep particles (P, N): global sites' batch dim P must sit left of
            # the data plate's dim.
            loc, scale = loc.unsqueeze(-2), scale.unsqueeze(-2)
        pyro.sample("alpha", dist.Normal(loc[..., 0], scale[..., 0]))
        pyro.sample("slope", dist.Normal(loc[..., 1], scale[..., 1]))
        pyro.sample("sigma", dist.LogNormal(loc[..., 2], scale[..., 2]))


def load_data() -> dict:
    """posteriordb's kidiq data: ``kid_score`` (434,) and ``mom_iq`` (434,)."""
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return {"kid_score": torch.tensor(raw["kid_score"], dtype=torch.get_default_dtype()),
            "mom_iq": torch.tensor(raw["mom_iq"], dtype=torch.get_default_dtype())}


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, Encoder(), load_data(), name=NAME, dims=DIMS,
                     coords={"coef": ["intercept", "mom_iq"]})


def reference(posterior: Posterior | None = None) -> Reference:
    """posteriordb reference for beta[0], beta[1] and sigma."""
    return Reference.from_json(REFERENCE_FILE)


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 200, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500}, "rws": {"num_steps": 1500},
            "nuts": {"num_samples": 250, "warmup_steps": 400, "num_chains": 16}}
