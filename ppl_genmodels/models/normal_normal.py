"""Conjugate normal-normal model with a closed-form posterior: the tests' oracle.

    loc ~ Normal(prior_loc, prior_scale)            shape (D,)
    x[n] ~ Normal(loc, obs_scale),  n = 1..N        shape (N, D)

Posterior (Bishop 2006, eq. 2.141-2.142), per dimension:
    precision = 1/prior_scale^2 + N/obs_scale^2
    mean      = (prior_loc/prior_scale^2 + sum_n x[n]/obs_scale^2) / precision
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..posterior import Posterior
from ..reference import Reference

NAME = "normal_normal"

PRIOR_LOC, PRIOR_SCALE, OBS_SCALE = 0.0, 2.0, 1.0


def model(x):
    """x: (N, D) observations."""
    d = x.shape[-1]
    loc = pyro.sample(
        "loc", dist.Normal(torch.full((d,), PRIOR_LOC), torch.full((d,), PRIOR_SCALE)).to_event(1)
    )
    with pyro.plate("data", x.shape[0]):
        pyro.sample("x", dist.Normal(loc, OBS_SCALE).to_event(1), obs=x)


class Encoder(nn.Module):
    """Amortized guide q(loc | x) = Normal(A mean(x) + b, diag(exp(s))).

    Linear in the sufficient statistic, so the exact posterior is in the family.
    """

    def __init__(self, dim: int = 2):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x, observations=None):
        if observations is not None:
            x = observations["x"]
        pyro.module("encoder", self)
        xbar = x.mean(-2)
        if x.dim() > 2:
            # Vectorized sleep particles (P, N, D): loc lies outside the data plate, so its
            # batch dim must sit left of that plate's dim.
            xbar = xbar.unsqueeze(-2)
        pyro.sample("loc", dist.Normal(self.linear(xbar), self.log_scale.exp()).to_event(1))


def load_data(num_data: int = 20, dim: int = 2, seed: int = 0) -> dict:
    """Seeded synthetic data from the model with true loc = (1, -0.5, ...): x (N, D)."""
    rng = np.random.default_rng(seed)
    true_loc = np.resize([1.0, -0.5], dim)
    x = rng.normal(true_loc, OBS_SCALE, size=(num_data, dim))
    return {"x": torch.tensor(x, dtype=torch.get_default_dtype())}


def closed_form(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior mean and sd of ``loc``, each (D,)."""
    n = x.shape[0]
    precision = 1 / PRIOR_SCALE**2 + n / OBS_SCALE**2
    mean = (PRIOR_LOC / PRIOR_SCALE**2 + x.sum(0).double().cpu().numpy() / OBS_SCALE**2) / precision
    return mean, np.full(x.shape[1], math.sqrt(1 / precision))


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    data = load_data()
    torch.manual_seed(seed)
    return Posterior(model, Encoder(data["x"].shape[-1]), data, name=NAME,
                     dims={"loc": ["dim"], "x": ["obs", "dim"]})


def reference(posterior: Posterior | None = None) -> Reference:
    x = (posterior.data if posterior else load_data())["x"]
    mean, sd = closed_form(x)
    names = [f"loc[{i}]" for i in range(len(mean))]
    return Reference.from_normal(dict(zip(names, mean)), dict(zip(names, sd)),
                                 source="conjugate normal-normal closed form")


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 300}, "rws": {"num_steps": 300},
                "nuts": {"num_samples": 300, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500}, "rws": {"num_steps": 1500},
            "nuts": {"num_samples": 250, "warmup_steps": 200, "num_chains": 8}}
