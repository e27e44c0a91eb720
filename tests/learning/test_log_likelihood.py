"""The importance-weighted log-likelihood estimator against exact answers.

1. Linear-Gaussian latent model (probabilistic PCA): p(x) = N(b, W W^T + s^2 I) in closed
   form (Tipping & Bishop 1999). With the exact posterior as the guide every log weight
   equals log p(x); with a broader guide the estimate is a stochastic lower bound within a
   few Monte Carlo standard errors of log p(x).
2. A sigmoid belief net with 5 binary latents: log p(x) by enumerating the 2^5 states.
"""

import itertools
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_genmodels.learning import log_likelihood
from ppl_genmodels.models import sbn

L, D, NOISE = 2, 5, 0.5


def _ppca():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(D, L, generator=g)
    b = torch.randn(D, generator=g)
    cov = w @ w.T + NOISE**2 * torch.eye(D)
    return w, b, cov


def _ppca_pair(w, b, scale_factor):
    def model(x):
        with pyro.plate("images", x.shape[-2], dim=-1):
            z = pyro.sample("z", dist.Normal(torch.zeros(L), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ w.T + b, NOISE).to_event(1), obs=x)

    # Exact posterior: precision I + W^T W / s^2, mean = Sigma W^T (x - b) / s^2.
    sigma = torch.linalg.inv(torch.eye(L) + w.T @ w / NOISE**2)
    chol = torch.linalg.cholesky(sigma) * scale_factor

    def guide(x):
        loc = (x - b) @ w / NOISE**2 @ sigma.T
        with pyro.plate("images", x.shape[-2], dim=-1):
            pyro.sample("z", dist.MultivariateNormal(loc, scale_tril=chol))

    return model, guide


def _ppca_data(b, cov, n=6):
    return dist.MultivariateNormal(b, cov).sample((n,))


@pytest.fixture()
def ppca():
    torch.manual_seed(0)
    w, b, cov = _ppca()
    x = _ppca_data(b, cov)
    exact = dist.MultivariateNormal(b, cov).log_prob(x).double().numpy()
    return w, b, x, exact


def test_exact_guide_gives_log_evidence_with_zero_variance(ppca):
    w, b, x, exact = ppca
    model, guide = _ppca_pair(w, b, 1.0)
    result = log_likelihood(model, guide, x, num_samples=50)
    np.testing.assert_allclose(result.per_image, exact, atol=1e-4)
    np.testing.assert_allclose(result.elbo_per_image, exact, atol=1e-4)
    assert np.all(result.per_image_se < 1e-4)


def test_broad_guide_is_within_monte_carlo_error_of_exact(ppca):
    w, b, x, exact = ppca
    model, guide = _ppca_pair(w, b, 1.8)
    pyro.set_rng_seed(1)
    result = log_likelihood(model, guide, x, num_samples=5000, particle_chunk=1000)
    # Bias of the bound is O(var(w)/S) and well below the standard error here; 4 SE per image
    # (6 images: false-alarm rate < 4e-4).
    assert np.all(np.abs(result.per_image - exact) < 4 * result.per_image_se + 1e-3)
    assert np.all(result.elbo_per_image < exact)  # ELBO is strictly below log p(x)
    assert result.mean == pytest.approx(exact.mean(), abs=4 * result.per_image_se.max())


def _sbn_exact(gen, x):
    """log p(x) of a 2-layer SBN by enumerating every (h2, h1)."""
    h1_size, h2_size = gen.layers
    out = torch.full((x.shape[0],), -math.inf, dtype=torch.float64)
    with torch.no_grad():
        for h2 in itertools.product([0.0, 1.0], repeat=h2_size):
            h2 = torch.tensor(h2)
            lp2 = dist.Bernoulli(logits=gen.top_logits).log_prob(h2).sum()
            for h1 in itertools.product([0.0, 1.0], repeat=h1_size):
                h1 = torch.tensor(h1)
                lp1 = dist.Bernoulli(logits=gen.down[1](h2)).log_prob(h1).sum()
                lpx = dist.Bernoulli(logits=gen.down[0](h1)).log_prob(x).sum(-1)
                out = torch.logaddexp(out, (lp2 + lp1 + lpx).double())
    return out.numpy()


def test_sbn_estimate_matches_enumeration():
    torch.manual_seed(4)
    gen, guide = sbn.build(pixels=8, layers=(3, 2))
    with torch.no_grad():
        for p in gen.parameters():
            p.mul_(3.0)  # a posterior that differs from the untrained guide
    x = gen.sample_images(10, torch.Generator().manual_seed(0)).bernoulli(
        generator=torch.Generator().manual_seed(1))
    exact = _sbn_exact(gen, x)
    pyro.set_rng_seed(2)
    result = log_likelihood(gen.model, guide, x, num_samples=5000, particle_chunk=2500)
    assert np.all(np.abs(result.per_image - exact) < 4 * result.per_image_se + 1e-3)
    assert np.all(result.elbo_per_image < exact + 1e-6)


def test_bad_data_is_named():
    torch.manual_seed(0)
    gen, guide = sbn.build(pixels=8, layers=(3, 2))
    x = torch.zeros(5, 8)
    x[3, 1] = float("nan")
    with pytest.raises(ValueError, match=r"rows \[3\]"):
        log_likelihood(gen.model, guide, x, num_samples=10)
    with pytest.raises(ValueError, match="num_samples"):
        log_likelihood(gen.model, guide, torch.zeros(2, 8), num_samples=0)
