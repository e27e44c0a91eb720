"""Eight schools (Rubin 1981), non-centred parameterisation, with an amortized guide.

    mu ~ Normal(0, 5);  tau ~ HalfCauchy(5);  theta_trans[j] ~ Normal(0, 1)
    theta[j] = mu + tau * theta_trans[j]          (deterministic)
    y[j] ~ Normal(theta[j], sigma[j]),  j = 1..8

Data: y = [28, 8, -3, 7, -1, 1, 18, 12], sigma = [15, 10, 16, 11, 9, 11, 10, 18]
(Rubin 1981; Gelman et al., BDA3 sec. 5.5).

Reference: posteriordb ``eight_schools-eight_schools_noncentered`` (10 x 1000 Stan NUTS
draws), summarised in ``references/eight_schools_noncentered.json`` by
``scripts/make_posteriordb_references.py``; citation in that file.
"""

from __future__ import annotations

from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..posterior import Posterior
from ..reference import Reference

NAME = "eight_schools"

Y = [28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0]
SIGMA = [15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0]
SCHOOLS = ["Choate", "Deerfield", "Phillips Andover", "Phillips Exeter", "Hotchkiss",
           "Lawrenceville", "St. Paul's", "Mt. Hermon"]
"""The schools' names, in the data's order (as ArviZ's ``load_arviz_data("centered_eight")``)."""
DIMS = {"theta": ["school"], "theta_trans": ["school"], "y": ["school"], "sigma": ["school"]}
"""ArviZ dims of the sites and data entries (``Posterior(dims=...)``)."""
COORDS = {"school": SCHOOLS}
REFERENCE_FILE = Path(__file__).parent / "references" / "eight_schools_noncentered.json"


def model(y, sigma):
    """y, sigma: (J,) effect estimates and their standard errors."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", y.shape[-1]):
        theta_trans = pyro.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", mu + tau * theta_trans)
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


class Encoder(nn.Module):
    """Amortized mean-field guide q(mu, tau, theta_trans | y, sigma).

    An MLP maps the features ``asinh(y / 10)`` and ``sigma / 10`` (J each; asinh tames the
    heavy-tailed y that RWS's sleep phase simulates) to the location and log-scale of
    Normal q(mu), LogNormal q(tau) and Normal q(theta_trans[j]).
    """

    def __init__(self, num_schools: int = 8, hidden: int = 32):
        super().__init__()
        self.num_schools = num_schools
        self.net = nn.Sequential(
            nn.Linear(2 * num_schools, hidden), nn.Tanh(), nn.Linear(hidden, 2 * (num_schools + 2))
        )
        with torch.no_grad():  # start near the prior scale, not at exp(random)
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.zero_()

    def forward(self, y, sigma, observations=None):
        if observations is not None:
            y = observations["y"]
        pyro.module("encoder", self)
        features = torch.cat([torch.asinh(y / 10.0), sigma.expand(y.shape) / 10.0], -1)
        out = self.net(features)
        loc, log_scale = out[..., : self.num_schools + 2], out[..., self.num_schools + 2:]
        scale = log_scale.exp()
        # With vectorized sleep particles y is (P, J): the global sites' batch dim P must
        # sit left of the schools plate's dim, hence the trailing singleton.
        mu_loc, tau_loc = loc[..., :2].unbind(-1)
        mu_scale, tau_scale = scale[..., :2].unbind(-1)
        if y.dim() > 1:
            mu_loc, tau_loc, mu_scale, tau_scale = (
                t.unsqueeze(-1) for t in (mu_loc, tau_loc, mu_scale, tau_scale)
            )
        pyro.sample("mu", dist.Normal(mu_loc, 5.0 * mu_scale))
        pyro.sample("tau", dist.LogNormal(tau_loc, tau_scale))
        with pyro.plate("schools", y.shape[-1]):
            pyro.sample("theta_trans", dist.Normal(loc[..., 2:], scale[..., 2:]))


def load_data() -> dict:
    """The embedded data: ``y`` (8,) and ``sigma`` (8,)."""
    return {"y": torch.tensor(Y), "sigma": torch.tensor(SIGMA)}


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, Encoder(), load_data(), name=NAME, dims=DIMS, coords=COORDS)


def reference(posterior: Posterior | None = None) -> Reference:
    """posteriordb reference for mu, tau and theta[0..7]."""
    return Reference.from_json(REFERENCE_FILE)


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 300}, "rws": {"num_steps": 300},
                "nuts": {"num_samples": 300, "warmup_steps": 300}}
    # RWS's wake-phi update with 8 particles collapsed q(mu) to a point (k-hat 3.3, seed 2)
    # or went to NaN (seed 1) on 2 of 4 seeds; with 32 particles seeds 0-3 give k-hat
    # 0.31-0.59 and mu's mean 4.3-4.6 (2026-12-04, 3000 steps, lr 0.02).
    return {"svi": {"num_steps": 3000}, "rws": {"num_steps": 3000, "num_particles": 32},
            "nuts": {"num_samples": 250, "warmup_steps": 300, "num_chains": 16, "num_superchains": 4,
                     "target_accept_prob": 0.9}}
