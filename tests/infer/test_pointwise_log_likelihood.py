"""The ``log_likelihood`` group: pointwise log p(y_i | z, theta) at every draw, exact against
scipy, for models that broadcast and models that do not, and usable by az.loo / az.compare."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats

from helpers import regression_data, regression_guide, regression_model
from ppl_genmodels import Posterior, compare
from ppl_genmodels._arviz import az
from ppl_genmodels.infer import NUTS, SVI
from ppl_genmodels.models import get_model


def _matmul_model(X, y):
    beta = pyro.sample("beta", dist.Normal(torch.zeros(2), 3.0).to_event(1))
    with pyro.plate("data", X.shape[0]):  # X @ beta does not broadcast over draws
        pyro.sample("y", dist.Normal(X @ beta, 0.5), obs=y)


def _single_term_model(X, y):
    beta = pyro.sample("beta", dist.Normal(torch.zeros(2), 3.0).to_event(1))
    pyro.sample("y", dist.Normal(X @ beta, 0.5).to_event(1), obs=y)  # no plate: one term


def _indexing_model(x, y):
    b = pyro.sample("b", dist.Normal(torch.zeros(2), 3.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(b[0] + b[1] * x, 0.5), obs=y)


@pytest.mark.parametrize("engine", ["nuts", "svi"])
def test_pointwise_values_match_scipy(engine):
    data = regression_data(n=25, seed=4)
    posterior = Posterior(regression_model, regression_guide, data)
    config = {"nuts": NUTS(num_samples=50, warmup_steps=50, num_chains=2),
              "svi": SVI(num_steps=50, num_draws=100)}[engine]
    idata = config.run(posterior, seed=0, progress=False).idata
    ll = idata.log_likelihood["y"].values
    w = idata.posterior["w"].values[..., None]
    b = idata.posterior["b"].values[..., None]
    x, y = data["x"].numpy(), data["y"].numpy()
    expected = stats.norm.logpdf(y, b + w * x, 0.5)
    assert ll.shape == expected.shape == (idata.posterior.sizes["chain"], idata.posterior.sizes["draw"], 25)
    np.testing.assert_allclose(ll, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model", [_matmul_model, _indexing_model], ids=["X@beta", "b[0]+b[1]*x"])
def test_models_that_do_not_broadcast(model):
    g = torch.Generator().manual_seed(0)
    x = torch.linspace(-1, 1, 12)
    y = 0.5 * x + 0.2 + 0.5 * torch.randn(12, generator=g)
    data = {"X": torch.stack([torch.ones(12), x], -1), "y": y} if model is _matmul_model else {"x": x, "y": y}
    idata = NUTS(num_samples=30, warmup_steps=30, num_chains=2).run(
        Posterior(model, None, data), seed=1, progress=False).idata
    coef = idata.posterior["beta" if model is _matmul_model else "b"].values  # (C, S, 2)
    pointwise = stats.norm.logpdf(y.numpy(), coef[..., :1] + coef[..., 1:] * x.numpy(), 0.5)
    ll = idata.log_likelihood["y"].values
    np.testing.assert_allclose(ll, pointwise, rtol=1e-5, atol=1e-4)


def test_a_single_likelihood_term_gives_no_log_likelihood_group():
    """LOO needs at least two observations; one event-summed term is not pointwise."""
    x = torch.linspace(-1, 1, 12)
    data = {"X": torch.stack([torch.ones(12), x], -1), "y": 0.5 * x}
    idata = NUTS(num_samples=20, warmup_steps=20, num_chains=2).run(
        Posterior(_single_term_model, None, data), seed=1, progress=False).idata
    assert "log_likelihood" not in idata.groups()
    assert "posterior" in idata.groups()


def test_loo_and_compare_run_on_a_comparison():
    data = regression_data(n=40, seed=2)
    posterior = Posterior(regression_model, regression_guide, data)
    result = compare(posterior, engines=("svi", "nuts"), seed=0, progress=False,
                     engine_config={"svi": {"num_steps": 300, "num_draws": 400},
                                    "nuts": {"num_samples": 200, "warmup_steps": 200}})
    loo = az.loo(result.idata["nuts"], pointwise=True)
    assert np.isfinite(loo.elpd_loo) and loo.pareto_k.shape == (40,)
    # elpd_loo of a well-specified regression is near the sum of the pointwise log predictive
    # densities; it must not exceed the in-sample lppd.
    lppd = np.log(np.exp(result.idata["nuts"].log_likelihood["y"].values).mean((0, 1))).sum()
    assert loo.elpd_loo <= lppd + 1e-9
    table = az.compare({name: idata for name, idata in result.idata.items()})
    assert set(table.index) == {"svi", "nuts"}


def test_enumerated_models_have_no_log_likelihood_group():
    spec = get_model("enum_mixture")
    idata = NUTS(num_samples=10, warmup_steps=10, num_chains=2).run(
        spec.posterior(quick=True), seed=0, progress=False).idata
    assert "log_likelihood" not in idata.groups()
