"""Small model/guide pairs the package has never seen, for the tests."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn


def regression_model(x, y):
    """Bayesian linear regression with a known noise scale; x (N,), y (N,)."""
    w = pyro.sample("w", dist.Normal(0.0, 3.0))
    b = pyro.sample("b", dist.Normal(0.0, 3.0))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(b + w * x, 0.5), obs=y)


def regression_guide(x, y, observations=None):
    """Mean-field guide with plain pyro.param sites (not amortized)."""
    for site in ("w", "b"):
        loc = pyro.param(f"{site}_loc", torch.tensor(0.0))
        scale = pyro.param(f"{site}_scale", torch.tensor(1.0), constraint=dist.constraints.positive)
        pyro.sample(site, dist.Normal(loc, scale))


def regression_data(n=30, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2, 2, n)
    return {"x": x, "y": 0.7 * x - 0.3 + 0.5 * torch.randn(n, generator=g)}


class TinyDecoder(nn.Module):
    """theta of a linear-Gaussian latent model: x = W z + c + noise."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(1, 3)


class TinyEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 2)

    def forward(self, x, observations=None):
        if observations is not None:
            x = observations["x"]
        pyro.module("encoder", self)
        out = self.net(x)
        with pyro.plate("rows", x.shape[-2]):
            pyro.sample("z", dist.Normal(out[..., :1], out[..., 1:].exp()).to_event(1))


def tiny_model_factory(decoder):
    def model(x):
        pyro.module("decoder", decoder)  # registers theta: must stay hidden from optimizers
        with pyro.plate("rows", x.shape[-2]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[-2], 1), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(decoder.linear(z), 0.3).to_event(1), obs=x)

    return model


def ar1(rng, rho, shape):
    """Stationary Gaussian AR(1) draws with lag-1 correlation ``rho``; last axis is time."""
    import math

    import numpy as np

    x = np.empty(shape)
    x[..., 0] = rng.standard_normal(shape[:-1])
    for t in range(1, shape[-1]):
        x[..., t] = rho * x[..., t - 1] + math.sqrt(1 - rho**2) * rng.standard_normal(shape[:-1])
    return x
