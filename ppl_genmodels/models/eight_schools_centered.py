"""Eight schools (Rubin 1981), centred parameterisation: the funnel between tau and theta.

    mu ~ Normal(0, 5);  tau ~ HalfCauchy(5);  theta[j] ~ Normal(mu, tau)
    y[j] ~ Normal(theta[j], sigma[j]),  j = 1..8

The same posterior over (mu, tau, theta) as :mod:`.eight_schools` (non-centred), written so
that theta's scale depends on tau: a funnel that mean-field guides and NUTS both find hard
(Betancourt & Girolami 2015). The guide is Pyro's ``AutoDiagonalNormal`` (fully factorized
Gaussian on (mu, log tau, theta)); ``--guide iaf|spline`` swaps in a flow
(:mod:`ppl_genmodels.models.flows`).

Reference: the posteriordb ``eight_schools_noncentered`` reference of :mod:`.eight_schools`
(mu, tau and theta are the same random variables under both parameterisations).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch

from ..posterior import Posterior
from ..reference import Reference
from .eight_schools import COORDS, DIMS, REFERENCE_FILE, load_data
from .flows import auto_guide

NAME = "eight_schools_centered"


def model(y, sigma):
    """y, sigma: (J,) effect estimates and their standard errors."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", y.shape[-1]):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, auto_guide(model, "ffg"), load_data(), name=NAME,
                     dims={k: v for k, v in DIMS.items() if k != "theta_trans"}, coords=COORDS)


def reference(posterior: Posterior | None = None) -> Reference:
    """posteriordb reference for mu, tau and theta[0..7] (non-centred run, same posterior)."""
    return Reference.from_json(REFERENCE_FILE)


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 300}, "rws": {"num_steps": 300},
                "nuts": {"num_samples": 300, "warmup_steps": 300}}
    return {"svi": {"num_steps": 3000}, "rws": {"num_steps": 3000},
            "nuts": {"num_samples": 250, "warmup_steps": 300, "num_chains": 16,
                     "target_accept_prob": 0.95}}
