"""Conjugate Bayesian linear regression with known noise on the diabetes data.

    w ~ Normal(0, PRIOR_SCALE^2 I)                       D = 10
    y[n] ~ Normal(X[n] . w, NOISE_SCALE^2),  n = 1..442

Exact Gaussian posterior (Bishop 2006, *Pattern Recognition and Machine Learning*, eq.
3.53-3.54, with alpha = 1/PRIOR_SCALE^2, beta = 1/NOISE_SCALE^2):

    S^-1 = alpha I + beta X^T X,    m = beta S X^T y

The covariates s1..s4 (serum measurements) are strongly correlated (corr(s1, s2) = 0.90,
corr(s3, s4) = -0.74), so the posterior of w is strongly correlated and a mean-field
guide is overconfident: its marginal sds are about 1/sqrt(diag(S^-1)) < sqrt(diag(S)).

Data: scikit-learn's ``load_diabetes`` (Efron, Hastie, Johnstone & Tibshirani 2004,
"Least angle regression", Annals of Statistics 32(2)); the 10 covariates and the target
are standardized (mean 0, sd 1), so there is no intercept. NOISE_SCALE = 0.7 is fixed
("known"), close to the least-squares residual sd 0.702 of the standardized target.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn

from ..posterior import Posterior
from ..reference import Reference

NAME = "linear_regression"

PRIOR_SCALE = 1.0
NOISE_SCALE = 0.7


FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
"""``load_diabetes().feature_names``: the coords of ``w``'s ``feature`` dim."""
DIMS = {"w": ["feature"], "x": ["patient", "feature"], "y": ["patient"]}
"""ArviZ dims of the sites and data entries (``Posterior(dims=...)``)."""


def model(x, y):
    """x: (N, D) standardized covariates; y: (N,) standardized target."""
    d = x.shape[-1]
    w = pyro.sample("w", dist.Normal(x.new_zeros(d), PRIOR_SCALE).to_event(1))
    with pyro.plate("data", x.shape[-2]):
        mean = (w * x).sum(-1)  # (N,), or (P, N) with w (P, 1, D)
        pyro.sample("y", dist.Normal(mean, NOISE_SCALE), obs=y)


class Encoder(nn.Module):
    """Amortized mean-field guide q(w | x, y) = Normal(A (X^T y / N) + b, diag(exp(s))).

    Linear in the sufficient statistic X^T y, so the exact posterior mean is in the family;
    the diagonal covariance is not (the point of this model). A and b start at zero.
    """

    def __init__(self, dim: int = 10):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.log_scale = nn.Parameter(torch.full((dim,), -2.0))
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, x, y, observations=None):
        if observations is not None:
            y = observations["y"]
        pyro.module("encoder", self)
        stat = (y.unsqueeze(-1) * x).sum(-2) / x.shape[-2]  # (..., D)
        loc = self.linear(stat)
        if y.dim() > 1:
            # Vectorized sleep particles (P, N): w's batch dim P must sit left of the
            # data plate's dim.
            loc = loc.unsqueeze(-2)
        pyro.sample("w", dist.Normal(loc, self.log_scale.exp()).to_event(1))


def load_data() -> dict:
    """scikit-learn's diabetes data, standardized: ``x`` (442, 10), ``y`` (442,)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    dtype = torch.get_default_dtype()
    return {"x": torch.tensor(x, dtype=dtype), "y": torch.tensor(y, dtype=dtype)}


def closed_form(x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Exact posterior mean m (D,) and covariance S (D, D) (Bishop 2006, eq. 3.53-3.54).

    :raises ValueError: x is not (N, D) or y not (N,).
    """
    if x.dim() != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"need x (N, D) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    xd, yd = x.double().cpu().numpy(), y.double().cpu().numpy()
    precision = np.eye(xd.shape[1]) / PRIOR_SCALE ** 2 + xd.T @ xd / NOISE_SCALE ** 2
    cov = np.linalg.inv(precision)
    return cov @ xd.T @ yd / NOISE_SCALE ** 2, cov


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    data = load_data()
    torch.manual_seed(seed)
    return Posterior(model, Encoder(data["x"].shape[-1]), data, name=NAME, dims=DIMS,
                     coords={"feature": FEATURES})


def reference(posterior: Posterior | None = None) -> Reference:
    """Exact marginal means and sds of w[0..9]."""
    data = posterior.data if posterior else load_data()
    mean, cov = closed_form(data["x"], data["y"])
    names = [f"w[{i}]" for i in range(len(mean))]
    sd = np.sqrt(np.diag(cov))
    return Reference.from_normal(
        dict(zip(names, mean)), dict(zip(names, sd)),
        source="conjugate Gaussian closed form (Bishop 2006, eq. 3.53-3.54)")


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 200, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500}, "rws": {"num_steps": 1500},
            "nuts": {"num_samples": 250, "warmup_steps": 300, "num_chains": 8}}
