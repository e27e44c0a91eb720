"""Bayesian logistic regression on the Wisconsin breast cancer data.

    b ~ Normal(0, PRIOR_SCALE);  w ~ Normal(0, PRIOR_SCALE^2 I)          D = 6
    y[n] ~ Bernoulli(logits = b + X[n] . w),  n = 1..569

Data: scikit-learn's ``load_breast_cancer`` (Wolberg, Street & Mangasarian 1995, UCI
Breast Cancer Wisconsin (Diagnostic)); y = 1 for benign. To keep NUTS affordable on one
thread, six of the 30 features (``FEATURES``: the "mean" radius, texture, smoothness,
concave points, symmetry and fractal dimension), standardized (mean 0, sd 1). They are
correlated (up to 0.82), so the posterior is correlated and non-Gaussian in the tails.

Reference: no closed form; a long NUTS run (4 chains x 1000 draws after 1000 warm-up,
dense mass matrix) written by ``scripts/make_logistic_regression_reference.py`` to
``references/logistic_regression_breast_cancer.json`` (the exact command, seeds and
settings are in its ``source``).
"""

from __future__ import annotations

from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..posterior import Posterior
from ..reference import Reference

NAME = "logistic_regression"

FEATURES = ("mean radius", "mean texture", "mean smoothness", "mean concave points",
            "mean symmetry", "mean fractal dimension")
PRIOR_SCALE = 1.0
REFERENCE_FILE = Path(__file__).parent / "references" / "logistic_regression_breast_cancer.json"


DIMS = {"w": ["feature"], "x": ["tumour", "feature"], "y": ["tumour"]}
"""ArviZ dims of the sites and data entries (``Posterior(dims=...)``)."""


def model(x, y):
    """x: (N, D) standardized features; y: (N,) labels in {0, 1}."""
    d = x.shape[-1]
    b = pyro.sample("b", dist.Normal(0.0, PRIOR_SCALE))
    w = pyro.sample("w", dist.Normal(x.new_zeros(d), PRIOR_SCALE).to_event(1))
    with pyro.plate("data", x.shape[-2]):
        logits = b + (w * x).sum(-1)  # (N,), or (P, N) with b (P, 1), w (P, 1, D)
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


class Encoder(nn.Module):
    """Amortized mean-field guide q(b, w | x, y).

    A linear layer maps the sufficient-statistic-like summaries (mean(y) - 1/2 and
    X^T (y - 1/2) / N) to the locations, plus free log-scales; all start at zero.
    """

    def __init__(self, dim: int = len(FEATURES)):
        super().__init__()
        self.linear = nn.Linear(dim + 1, dim + 1)
        self.log_scale = nn.Parameter(torch.full((dim + 1,), -1.0))
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x, y, observations=None):
        if observations is not None:
            y = observations["y"]
        pyro.module("encoder", self)
        centred = y - 0.5
        stat = torch.cat([centred.mean(-1, keepdim=True),
                          (centred.unsqueeze(-1) * x).sum(-2) / x.shape[-2]], -1)
        loc, scale = self.linear(stat), self.log_scale.exp()
        if y.dim() > 1:
            # Vectorized sleep particles (P, N): global sites' batch dim P must sit left of
            # the data plate's dim.
            loc = loc.unsqueeze(-2)
        pyro.sample("b", dist.Normal(loc[..., 0], scale[0]))
        pyro.sample("w", dist.Normal(loc[..., 1:], scale[1:]).to_event(1))


def load_data() -> dict:
    """The six standardized features ``x`` (569, 6) and labels ``y`` (569,) (1 = benign)."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    names = list(raw.feature_names)
    x = raw.data[:, [names.index(f) for f in FEATURES]]
    x = (x - x.mean(0)) / x.std(0)
    dtype = torch.get_default_dtype()
    return {"x": torch.tensor(x, dtype=dtype), "y": torch.tensor(raw.target, dtype=dtype)}


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, Encoder(), load_data(), name=NAME, dims=DIMS,
                     coords={"feature": list(FEATURES)})


def reference(posterior: Posterior | None = None) -> Reference:
    """Long-run NUTS reference for b and w[0..5] (see the module docstring).

    :raises ValueError: the reference file is missing (run the script named above).
    """
    if not REFERENCE_FILE.exists():
        raise ValueError(f"{REFERENCE_FILE} is missing; run "
                         "scripts/make_logistic_regression_reference.py")
    return Reference.from_json(REFERENCE_FILE)


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 200, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500}, "rws": {"num_steps": 1500},
            "nuts": {"num_samples": 250, "warmup_steps": 300, "num_chains": 8}}
