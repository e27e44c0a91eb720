"""Models written for one draw (``X @ beta``, ``b[0] + b[1] * x``) do not broadcast over a
particle dimension. SVI and RWS detect this once, before running (a numeric comparison of
vectorized and sequential log weights, so silent mixing of particles is caught too), and
use one trace per particle, as plain Pyro with ``vectorize_particles=False``.

Both regressions have orthogonal design columns, so the exact posterior is a product of
normals (closed form below) and a mean-field normal guide can match it exactly. Tolerances
are those of tests/infer/test_engines_closed_form.py: 4 standard errors of iid draws plus a
5%-of-sd allowance for the optimiser's noise.
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_genmodels import Posterior
from ppl_genmodels.diagnostics import flat_draws, parameter_summary, psis_moments
from ppl_genmodels.infer import RWS, SVI, guide_draws
from ppl_genmodels.infer._particles import log_weight_at, particles_vectorize

NOISE, PRIOR = 0.5, 1.0
N = 24
ALLOWANCE = 0.05


def _design():
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(N, 3, generator=g))
    return q * math.sqrt(N) / 2  # orthogonal columns, each with sum of squares N / 4


def matmul_model(X, y):
    beta = pyro.sample("beta", dist.Normal(torch.zeros(X.shape[-1]), PRIOR).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, NOISE), obs=y)


def indexing_model(x, y):
    b = pyro.sample("b", dist.Normal(0.0, PRIOR).expand([2]).to_event(1))
    # No plate: with vectorized particles b[0] silently picks the first particle.
    pyro.sample("y", dist.Normal(b[0] + b[1] * x, NOISE).to_event(1), obs=y)


def _guide(site, dim):
    def guide(observations=None, **data):
        loc = pyro.param(f"{site}_loc", torch.zeros(dim))
        scale = pyro.param(f"{site}_scale", torch.ones(dim), constraint=dist.constraints.positive)
        pyro.sample(site, dist.Normal(loc, scale).to_event(1))
    return guide


def _closed_form(design, y):
    """Mean and sd of beta | y for orthogonal columns (diagonal posterior precision)."""
    precision = 1 / PRIOR ** 2 + (design ** 2).sum(0) / NOISE ** 2
    mean = (design * y[:, None]).sum(0) / NOISE ** 2 / precision
    return mean.numpy(), (1 / precision.sqrt()).numpy()


def _matmul_posterior():
    X = _design()
    y = X @ torch.tensor([0.5, -1.0, 0.25]) + NOISE * torch.randn(N, generator=torch.Generator().manual_seed(4))
    return Posterior(matmul_model, _guide("beta", 3), {"X": X, "y": y}), "beta", X, y


def _indexing_posterior():
    x = torch.linspace(-1, 1, N)
    x = x - x.mean()
    y = 0.3 - 0.8 * x + NOISE * torch.randn(N, generator=torch.Generator().manual_seed(5))
    return Posterior(indexing_model, _guide("b", 2), {"x": x, "y": y}), "b", torch.stack(
        [torch.ones(N), x], -1), y


POSTERIORS = [pytest.param(_matmul_posterior, id="X@beta"),
              pytest.param(_indexing_posterior, id="b[0]+b[1]*x")]


@pytest.mark.parametrize("make", POSTERIORS)
def test_detected_and_log_weights_equal_sequential(make):
    posterior, site, _, _ = make()
    sites = posterior.validate()
    with posterior.session() as (model, guide):
        assert not particles_vectorize(model, guide, posterior.data, sites)
        values, log_w = guide_draws(model, guide, posterior.data, sites, 20)
        one_by_one = [log_weight_at(model, guide, posterior.data, sites,
                                    {site: torch.as_tensor(values[site][i])}) for i in range(20)]
    np.testing.assert_allclose(log_w, one_by_one, rtol=1e-5, atol=1e-4)
    assert values[site].shape == (20, sites.latent[site][0])


def test_broadcasting_model_is_still_vectorized():
    from helpers import regression_data, regression_guide, regression_model

    posterior = Posterior(regression_model, regression_guide, regression_data())
    with posterior.session() as (model, guide):
        assert particles_vectorize(model, guide, posterior.data, posterior.validate())


@pytest.mark.parametrize("make", POSTERIORS)
@pytest.mark.parametrize("engine", [
    pytest.param(SVI(num_steps=1500, num_particles=2, lr=0.1, num_draws=1000), id="svi"),
    pytest.param(RWS(num_steps=1500, num_particles=4, lr=0.1, num_draws=1000), id="rws"),
])
def test_vi_matches_closed_form_with_sequential_particles(make, engine):
    posterior, site, design, y = make()
    idata = engine.run(posterior, seed=0, progress=False).idata
    assert idata.posterior.attrs["vectorized_particles"] == 0
    mean, sd = _closed_form(design, y)
    summary, draws = parameter_summary(idata), flat_draws(idata)
    if engine.name == "rws":
        # RWS's wake-phi gradient is self-normalized with K particles, so its guide is not
        # the exact posterior even within the family; its importance-weighted moments are
        # consistent. Their Monte Carlo error: sd / sqrt(ESS) with ESS = 1 / sum(w^2).
        log_w = idata.sample_stats["log_weight"].values.reshape(-1)
        w = np.exp(log_w - log_w.max())
        ess = w.sum() ** 2 / (w ** 2).sum()
        moments = psis_moments(draws, idata.sample_stats["log_weight"].values)
        summary = moments.rename(columns={"psis_mean": "mean", "psis_sd": "sd"})
    for i in range(len(mean)):
        name = f"{site}[{i}]"
        n = draws[name].size if engine.name == "svi" else ess
        allowance = ALLOWANCE if engine.name == "svi" else 0.0
        se_mean = math.hypot(sd[i] / math.sqrt(n), allowance * sd[i])
        se_sd = math.hypot(sd[i] / math.sqrt(2 * n), allowance * sd[i])
        assert abs(summary.loc[name, "mean"] - mean[i]) < 4 * se_mean, (name, summary.loc[name], mean[i])
        assert abs(summary.loc[name, "sd"] - sd[i]) < 4 * se_sd, (name, summary.loc[name], sd[i])
