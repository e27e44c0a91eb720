"""Gaussian mixture whose discrete assignments are summed out by enumeration.

    locs ~ OrderedNormal(0, 5)            K = 3, locs[0] < locs[1] < locs[2]
    a[n] ~ Categorical(WEIGHTS)           infer={"enumerate": "parallel"}
    y[n] ~ Normal(locs[a[n]], SCALE),     n = 1..N

with known WEIGHTS = (0.2, 0.5, 0.3) and SCALE = 1. The assignments ``a`` are discrete:
NUTS (``pyro.infer.NUTS``) and SVI (``TraceEnum_ELBO``) both sum them out exactly
(Pyro's parallel enumeration; Obermeyer et al. 2019, "Tensor variable elimination for
plated factor graphs"), so the guide covers ``locs`` only. RWS cannot sum them out, hence
its registry entry lists the engines ("svi", "nuts"). The ordering removes the
label-switching symmetry, so the posterior is unimodal.

Data: N = 150 draws from the model with locs = (-4, 0, 3.5), ``numpy.random.default_rng(0)``
(:func:`load_data`).

Reference: the exact posterior of ``locs`` by quadrature on a 41^3 product grid
(:func:`quadrature_reference`): the log density is evaluated at every grid point and
normalized, giving posterior means and sds with no Monte Carlo error.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import OrderedTransform
from pyro.ops.indexing import Vindex
from scipy.special import logsumexp
from torch import nn

from ..posterior import Posterior
from ..reference import Reference
from ._distributions import OrderedNormal

NAME = "enum_mixture"

WEIGHTS = (0.2, 0.5, 0.3)
SCALE = 1.0
PRIOR_LOC, PRIOR_SCALE = 0.0, 5.0
TRUE_LOCS = (-4.0, 0.0, 3.5)


def model(y):
    """y: (N,) observations."""
    k = len(WEIGHTS)
    locs = pyro.sample("locs", OrderedNormal(PRIOR_LOC, PRIOR_SCALE, k))
    with pyro.plate("data", y.shape[-1]):
        assignment = pyro.sample("assignment", dist.Categorical(y.new_tensor(WEIGHTS)),
                                 infer={"enumerate": "parallel"})
        # Vindex: locs may carry particle batch dims and assignment enumeration dims.
        pyro.sample("y", dist.Normal(Vindex(locs)[..., assignment], SCALE), obs=y)


def _initial_locs(y: torch.Tensor) -> torch.Tensor:
    """Quantiles of y at the components' cumulative-weight midpoints, (..., K), sorted."""
    weights = y.new_tensor(WEIGHTS)
    levels = (weights.cumsum(0) - weights / 2).to(y.dtype)
    return torch.quantile(y, levels, dim=-1).movedim(0, -1)


class Encoder(nn.Module):
    """Amortized guide q(locs | y): a correlated Gaussian on ordered coordinates.

    q = MultivariateNormal(u, L L^T) pushed through ``OrderedTransform`` (u[0] = locs[0],
    u[k] = log(locs[k] - locs[k-1])), with u = OrderedTransform^-1(quantiles of y) +
    linear(features), diag(L) = 0.2 exp(linear(features)) and a free strictly lower
    triangle. Full covariance because independent locs have correlated log-gaps (a
    mean-field q here would be wrong by construction). The linear layer starts at zero,
    so the guide starts at the data's quantiles.
    """

    def __init__(self, num_components: int = len(WEIGHTS)):
        super().__init__()
        self.num_components = num_components
        self.linear = nn.Linear(num_components, 2 * num_components)
        self.lower = nn.Parameter(torch.zeros(num_components, num_components))
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def forward(self, y, observations=None):
        if observations is not None:
            y = observations["y"]
        pyro.module("encoder", self)
        start = _initial_locs(y)
        out = self.linear(start / 5.0)
        loc = OrderedTransform().inv(start) + out[..., : self.num_components]
        scale = 0.2 * out[..., self.num_components:].exp()
        if y.dim() > 1:
            # Vectorized particles (P, N): locs' batch dim P must sit left of the data plate.
            loc, scale = loc.unsqueeze(-2), scale.unsqueeze(-2)
        scale_tril = torch.diag_embed(scale) + 0.2 * self.lower.tril(-1)
        base = dist.MultivariateNormal(loc, scale_tril=scale_tril)
        pyro.sample("locs", dist.TransformedDistribution(base, [OrderedTransform()]))


def load_data(num_data: int = 150, seed: int = 0) -> dict:
    """Seeded synthetic data from the model with locs = TRUE_LOCS: ``y`` (N,)."""
    rng = np.random.default_rng(seed)
    assignment = rng.choice(len(WEIGHTS), size=num_data, p=WEIGHTS)
    y = rng.normal(np.asarray(TRUE_LOCS)[assignment], SCALE)
    return {"y": torch.tensor(y, dtype=torch.get_default_dtype())}


def _log_posterior(points: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unnormalized log p(locs | y) at ``points`` (M, K) (nats), assignments summed out."""
    log_w = np.log(np.asarray(WEIGHTS))
    comp = (log_w - 0.5 * ((y[:, None, None] - points[None]) / SCALE) ** 2
            - math.log(SCALE * math.sqrt(2 * math.pi)))  # (N, M, K)
    log_lik = logsumexp(comp, axis=-1).sum(0)
    log_prior = (-0.5 * ((points - PRIOR_LOC) / PRIOR_SCALE) ** 2).sum(-1)
    ordered = np.all(np.diff(points, axis=-1) > 0, axis=-1)
    return np.where(ordered, log_lik + log_prior, -np.inf)


def quadrature_reference(y: torch.Tensor, num_points: int = 41, width: float = 7.0,
                         num_draws: int = 4000, seed: int = 0) -> Reference:
    """Exact posterior moments of ``locs`` by quadrature on a product grid.

    Two passes: a grid of ``num_points``^K points spanning +-``width`` approximate sds
    around the data's quantiles, then the same grid around pass one's posterior mean +-
    ``width`` posterior sds. Draws are grid points resampled by their posterior mass,
    jittered uniformly within their cell.

    :param y: ``(N,)`` observations.
    :raises ValueError: more than 1e-6 of the posterior mass lies on the grid's border
        (the grid does not cover the posterior).
    """
    y_np = y.double().cpu().numpy()
    k = len(WEIGHTS)
    centre = _initial_locs(y.double()).cpu().numpy()
    spread = SCALE / np.sqrt(len(y_np) * np.asarray(WEIGHTS))
    for _ in range(2):
        axes = [np.linspace(c - width * s, c + width * s, num_points)
                for c, s in zip(centre, spread)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, k)
        log_p = np.concatenate([_log_posterior(chunk, y_np)
                                for chunk in np.array_split(grid, max(1, len(grid) // 4000))])
        prob = np.exp(log_p - log_p.max())
        prob /= prob.sum()
        centre = prob @ grid
        spread = np.sqrt(prob @ (grid - centre) ** 2)
    on_border = np.zeros(len(grid), dtype=bool)
    for j, axis in enumerate(axes):
        on_border |= (grid[:, j] == axis[0]) | (grid[:, j] == axis[-1])
    if prob[on_border].sum() > 1e-6:
        raise ValueError(f"quadrature grid misses {prob[on_border].sum():.2g} of the posterior "
                         "mass; widen it")
    rng = np.random.default_rng(seed)
    steps = np.array([axis[1] - axis[0] for axis in axes])
    picks = grid[rng.choice(len(grid), size=num_draws, p=prob)]
    draws = picks + (rng.random(picks.shape) - 0.5) * steps
    names = [f"locs[{j}]" for j in range(k)]
    return Reference(
        mean=dict(zip(names, centre.tolist())), sd=dict(zip(names, spread.tolist())),
        mcse_mean={n: 0.0 for n in names},
        draws={n: draws[:, j] for j, n in enumerate(names)},
        source=f"quadrature on a {num_points}^{k} grid (+-{width} posterior sd), "
               "assignments summed out",
        citation="exact (numerical quadrature)",
    )


def make_posterior(quick: bool = False, seed: int = 0) -> Posterior:
    torch.manual_seed(seed)
    return Posterior(model, Encoder(), load_data(), name=NAME,
                     dims={"locs": ["component"], "assignment": ["obs"], "y": ["obs"]})


def reference(posterior: Posterior | None = None) -> Reference:
    """Quadrature reference for locs[0..2] (cached per data set)."""
    y = (posterior.data if posterior else load_data())["y"]
    key = y.double().cpu().numpy().tobytes()
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = quadrature_reference(y)
    return _REFERENCE_CACHE[key]


_REFERENCE_CACHE: dict[bytes, Reference] = {}


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "nuts": {"num_samples": 200, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500}, "nuts": {"num_samples": 250, "warmup_steps": 300, "num_chains": 4}}
