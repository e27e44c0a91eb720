"""Haario et al.'s (1999) banana, as in TFP's Inference Gym (``inference_gym.targets.Banana``).

    x0 ~ Normal(0, 10)
    x1 ~ Normal(CURVATURE * (x0^2 - 100), 1),   CURVATURE = 0.03

No data: the "posterior" is this 2-D density itself. It is a volume-preserving shear of
Normal(0, diag(100, 1)), so exact draws are cheap and the moments are closed-form
(Inference Gym's ground truth): E[x0] = E[x1] = 0 (the shift's -100 cancels E[x0^2] =
100), sd(x0) = 10, sd(x1) = sqrt(1 + 2 CURVATURE^2 10^4) = sqrt(19) (x0^2/100 is
chi-square with variance 2).

Source: Haario, Saksman & Tamminen (1999), "Adaptive proposal distribution for random
walk Metropolis algorithm", Computational Statistics 14, 375-396; TFP Inference Gym,
``spinoffs/inference_gym/inference_gym/targets/banana.py`` (ndims=2, curvature=0.03).
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

NAME = "banana"

CURVATURE = 0.03
X0_SCALE = 10.0


def model():
    """No arguments: a fixed 2-D target density."""
    x0 = pyro.sample("x0", dist.Normal(0.0, X0_SCALE))
    pyro.sample("x1", dist.Normal(CURVATURE * (x0 ** 2 - X0_SCALE ** 2), 1.0))


class Encoder(nn.Module):
    """Mean-field Gaussian guide q(x0) q(x1) with free location and log-scale.

    There are no data to amortize over, so this "encoder" is a plain parametric guide. It
    deliberately cannot bend with the banana: its diagnostics (PSIS k-hat) should say so.
    ``observations`` is accepted (and unused) for RWS's sleep phase.
    """

    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))
        self.log_scale = nn.Parameter(torch.tensor([math.log(X0_SCALE), 0.0]))

    def forward(self, observations=None):
        pyro.module("encoder", self)
        scale = self.log_scale.exp()
        pyro.sample("x0", dist.Normal(self.loc[0], scale[0]))
        pyro.sample("x1", dist.Normal(self.loc[1], scale[1]))


def exact_draws(num_draws: int, seed: int = 0) -> dict[str, np.ndarray]:
    """iid draws from the banana by its generative definition: name -> (num_draws,)."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(0.0, X0_SCALE, num_draws)
    x1 = rng.normal(CURVATURE * (x0 ** 2 - X0_SCALE ** 2), 1.0)
    return {"x0": x0, "x1": x1}


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, Encoder(), {}, name=NAME)


def reference(posterior: Posterior | None = None) -> Reference:
    """Closed-form means and sds (Inference Gym's ground truth) with 4000 exact draws."""
    sd_x1 = math.sqrt(1.0 + 2.0 * CURVATURE ** 2 * X0_SCALE ** 4)
    return Reference(
        mean={"x0": 0.0, "x1": 0.0}, sd={"x0": X0_SCALE, "x1": sd_x1},
        mcse_mean={"x0": 0.0, "x1": 0.0}, draws=exact_draws(4000),
        source="closed form (Inference Gym Banana ground truth); draws exact, seed 0",
        citation="Haario, Saksman & Tamminen (1999), Computational Statistics 14, 375-396",
    )


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 300, "warmup_steps": 300}}
    # target_accept 0.95: at 0.8 the step size adapted to the wide body diverges in the
    # curved tails (6% divergent, R-hat 1.4 in a 500/500 run); at 0.95, none.
    return {"svi": {"num_steps": 1500}, "rws": {"num_steps": 1500},
            "nuts": {"num_samples": 250, "warmup_steps": 400, "num_chains": 16,
                     "target_accept_prob": 0.95}}
