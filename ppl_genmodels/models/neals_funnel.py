"""Neal's (2003) funnel in 10 dimensions.

    v ~ Normal(0, 3)
    x[i] ~ Normal(0, exp(v / 2)),  i = 0..8

No data: the "posterior" is this density itself. Exact moments: v has mean 0 and sd 3;
each x[i] has mean 0 and variance E[exp(v)] = exp(3^2 / 2), so sd exp(9/4) = 9.4877.
The neck (v << 0) needs step sizes of order exp(v/2), which one adapted step size cannot
give: HMC/NUTS diverges there and under-samples it, which its divergences and R-hat should
report (Betancourt & Girolami 2015). This is the centred parameterization on purpose.

Source: Neal (2003), "Slice sampling", Annals of Statistics 31(3), 705-767, sec. 8;
Inference Gym ``NealsFunnel`` (ndims=10).
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

NAME = "neals_funnel"

V_SCALE = 3.0
NUM_X = 9


def model():
    """No arguments: a fixed 10-D target density."""
    v = pyro.sample("v", dist.Normal(0.0, V_SCALE))
    scale = torch.exp(v / 2.0).unsqueeze(-1).expand(*v.shape, NUM_X)
    pyro.sample("x", dist.Normal(torch.zeros(NUM_X), scale).to_event(1))


class Encoder(nn.Module):
    """Mean-field Gaussian guide q(v) prod_i q(x[i]) with free location and log-scale.

    There are no data to amortize over, so this "encoder" is a plain parametric guide; a
    Gaussian cannot follow the funnel, which its PSIS k-hat should report. ``observations``
    is accepted (and unused) for RWS's sleep phase.
    """

    def __init__(self):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(NUM_X + 1))
        self.log_scale = nn.Parameter(torch.zeros(NUM_X + 1))

    def forward(self, observations=None):
        pyro.module("encoder", self)
        scale = self.log_scale.exp()
        pyro.sample("v", dist.Normal(self.loc[0], scale[0]))
        pyro.sample("x", dist.Normal(self.loc[1:], scale[1:]).to_event(1))


def exact_draws(num_draws: int, seed: int = 0) -> dict[str, np.ndarray]:
    """iid draws by the generative definition: ``v``, ``x[0]``.. ``x[8]``, each (num_draws,)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(0.0, V_SCALE, num_draws)
    x = rng.normal(0.0, np.exp(v / 2.0)[:, None], (num_draws, NUM_X))
    return {"v": v, **{f"x[{i}]": x[:, i] for i in range(NUM_X)}}


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, Encoder(), {}, name=NAME)


def reference(posterior: Posterior | None = None) -> Reference:
    """Exact means and sds with 4000 exact draws."""
    names = ["v"] + [f"x[{i}]" for i in range(NUM_X)]
    sd_x = math.exp(V_SCALE ** 2 / 4.0)  # sqrt(E[exp(v)]) = sqrt(exp(sigma^2 / 2))
    return Reference(
        mean={n: 0.0 for n in names},
        sd={n: (V_SCALE if n == "v" else sd_x) for n in names},
        mcse_mean={n: 0.0 for n in names}, draws=exact_draws(4000),
        source="closed form (v ~ N(0, 3); x[i] mean 0, sd exp(9/4)); draws exact, seed 0",
        citation="Neal (2003), Slice sampling, Annals of Statistics 31(3), 705-767",
    )


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 300, "warmup_steps": 300}}
    # Depth 8 caps the cost of the trees NUTS builds in the neck; it diverges there anyway.
    return {"svi": {"num_steps": 1500}, "rws": {"num_steps": 1500},
            "nuts": {"num_samples": 250, "warmup_steps": 300, "num_chains": 8,
                     "max_tree_depth": 8}}
