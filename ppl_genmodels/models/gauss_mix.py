"""Two-component 1-D Gaussian mixture (posteriordb ``low_dim_gauss_mix``).

posteriordb's Stan program ``low_dim_gauss_mix.stan``:

    mu ~ Normal(0, 2), ordered (mu[0] < mu[1]);  sigma[k] ~ HalfNormal(2);  theta ~ Beta(5, 5)
    y[n] ~ theta * Normal(mu[0], sigma[0]) + (1 - theta) * Normal(mu[1], sigma[1]),  n = 1..1000

The assignments are marginalized in the likelihood (``dist.MixtureSameFamily``, Stan's
``log_mix``), so every latent is continuous. ``mu`` has the support
``constraints.ordered_vector`` (:class:`~ppl_genmodels.models._distributions.OrderedNormal`,
whose density differs from Stan's ordered prior only by the constant log 2), reached by
NUTS and the guide through ``OrderedTransform`` (mu[0], log(mu[1] - mu[0])), so the
parameters carry the reference's names ``mu[0]``, ``mu[1]``, ``sigma[0]``, ``sigma[1]``,
``theta``.

Data: simulated by the posteriordb authors (N = 1000), copied from posteriordb into
``data/low_dim_gauss_mix.json`` by ``scripts/make_posteriordb_references.py``.

Reference: posteriordb ``low_dim_gauss_mix-low_dim_gauss_mix`` (10 x 1000 Stan NUTS draws),
summarised in ``references/low_dim_gauss_mix.json``; citation in that file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import OrderedTransform
from torch import nn

from ..posterior import Posterior
from ..reference import Reference
from ._distributions import OrderedNormal

NAME = "gauss_mix"

DATA_FILE = Path(__file__).parent / "data" / "low_dim_gauss_mix.json"
REFERENCE_FILE = Path(__file__).parent / "references" / "low_dim_gauss_mix.json"


def model(y):
    """y: (N,) observations."""
    mu = pyro.sample("mu", OrderedNormal(0.0, 2.0, 2))
    sigma = pyro.sample("sigma", dist.HalfNormal(torch.full((2,), 2.0)).to_event(1))
    theta = pyro.sample("theta", dist.Beta(5.0, 5.0))
    mixing = dist.Categorical(probs=torch.stack([theta, 1.0 - theta], -1))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.MixtureSameFamily(mixing, dist.Normal(mu, sigma)), obs=y)


def _summaries(y: torch.Tensor) -> torch.Tensor:
    """Location/scale-free-ish features of y, (..., 5): quartiles, log sd, fraction > mean."""
    quartiles = torch.quantile(y, torch.tensor([0.25, 0.5, 0.75], dtype=y.dtype), dim=-1)
    above = (y > y.mean(-1, keepdim=True)).to(y.dtype).mean(-1)
    return torch.cat([quartiles.movedim(0, -1) / 3.0, y.std(-1, keepdim=True).log(),
                      above.unsqueeze(-1)], -1)


class Encoder(nn.Module):
    """Amortized mean-field guide q(mu, sigma, theta | y).

    A linear layer maps summaries of y (quartiles, log sd, fraction above the mean) to the
    location and log-scale of Normal distributions on the unconstrained coordinates
    (``OrderedTransform`` for mu; log for sigma; logit for theta). It is initialised at a
    moment-matching start: mu at the lower/upper quartile, sigma at a third of the sd
    of y, theta at 1/2; only corrections are learned.
    """

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(5, 10)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, y, observations=None):
        if observations is not None:
            y = observations["y"]
        pyro.module("encoder", self)
        features = _summaries(y)
        out = self.linear(features)
        q1, q3, log_sd = features[..., 0] * 3.0, features[..., 2] * 3.0, features[..., 3]
        start = torch.stack([q1, torch.log((q3 - q1).clamp_min(1e-3)),
                             log_sd - 1.0, log_sd - 1.0, torch.zeros_like(q1)], -1)
        loc = start + out[..., :5]
        scale = 0.05 * out[..., 5:].exp()
        if y.dim() > 1:
            # Vectorized particles (P, N): global sites' batch dim P must sit left of the
            # data plate's dim.
            loc, scale = loc.unsqueeze(-2), scale.unsqueeze(-2)
        mu_base = dist.Normal(loc[..., :2], scale[..., :2]).to_event(1)
        pyro.sample("mu", dist.TransformedDistribution(mu_base, [OrderedTransform()]))
        pyro.sample("sigma", dist.LogNormal(loc[..., 2:4], scale[..., 2:4]).to_event(1))
        pyro.sample("theta", dist.TransformedDistribution(
            dist.Normal(loc[..., 4], scale[..., 4]), [dist.transforms.SigmoidTransform()]))


def load_data() -> dict:
    """posteriordb's low_dim_gauss_mix data: ``y`` (1000,)."""
    raw = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return {"y": torch.tensor(raw["y"], dtype=torch.get_default_dtype())}


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, Encoder(), load_data(), name=NAME,
                     dims={"mu": ["component"], "sigma": ["component"], "y": ["obs"]})


def reference(posterior: Posterior | None = None) -> Reference:
    """posteriordb reference for mu[0], mu[1], sigma[0], sigma[1] and theta."""
    return Reference.from_json(REFERENCE_FILE)


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 200, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500}, "rws": {"num_steps": 1500},
            "nuts": {"num_samples": 200, "warmup_steps": 300, "num_chains": 8}}
