"""Bad input is refused with a ValueError naming the problem, before any engine runs."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch

from helpers import regression_data, regression_guide, regression_model
from ppl_genmodels import Posterior, compare
from ppl_genmodels.infer import NUTS


class SpyEngine:
    """A user engine that records whether it was started."""

    name = "spy"

    def __init__(self):
        self.started = False

    def run(self, posterior, seed):
        self.started = True
        raise AssertionError("validation should have stopped the comparison first")


def _assert_refused(posterior, match, engines=("svi",)):
    spy = SpyEngine()
    with pytest.raises(ValueError, match=match):
        compare(posterior, engines=(spy, *engines), progress=False)
    assert not spy.started


def test_nan_data_names_entry_and_rows():
    data = regression_data()
    data["y"][3] = math.nan
    data["y"][17] = math.nan
    with pytest.raises(ValueError, match=r"data\['y'\] has NaN at rows \[3, 17\]"):
        Posterior(regression_model, regression_guide, data)


def test_inf_data_is_refused():
    data = regression_data()
    data["x"][0] = math.inf
    with pytest.raises(ValueError, match=r"data\['x'\] has inf at rows \[0\]"):
        Posterior(regression_model, regression_guide, data)


def test_guide_site_missing_from_model():
    def guide(x, y, observations=None):
        regression_guide(x, y)
        pyro.sample("noise", dist.LogNormal(0.0, 1.0))

    _assert_refused(Posterior(regression_model, guide, regression_data()),
                    "guide samples site 'noise' which the model does not have")


def test_model_site_missing_from_guide():
    def guide(x, y, observations=None):
        pyro.sample("w", dist.Normal(pyro.param("w_loc", torch.tensor(0.0)), 1.0))

    _assert_refused(Posterior(regression_model, guide, regression_data()),
                    "model latent site 'b' has no matching sample site in the guide")


def test_guide_shape_mismatch_names_site():
    def guide(x, y, observations=None):
        pyro.sample("w", dist.Normal(torch.zeros(2), 1.0).to_event(1))
        pyro.sample("b", dist.Normal(0.0, 1.0))

    _assert_refused(Posterior(regression_model, guide, regression_data()),
                    r"site 'w': the guide draws shape \(2,\) but the model's site has shape \(\)")


def test_data_shape_mismatch_names_site():
    def model(x, y):
        w = pyro.sample("w", dist.Normal(0.0, 1.0))
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(b + w * x, 0.5), obs=y.unsqueeze(-1))

    _assert_refused(Posterior(model, regression_guide, regression_data()),
                    r"observed site 'y': data has shape \(30, 1\) but its distribution has shape \(30,\)")


def test_discrete_latent_refused_for_nuts_with_reason():
    def model(x, y):
        k = pyro.sample("k", dist.Categorical(torch.ones(3) / 3))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(k.float() * x, 0.5), obs=y)

    def guide(x, y, observations=None):
        probs = pyro.param("k_probs", torch.ones(3) / 3, constraint=dist.constraints.simplex)
        pyro.sample("k", dist.Categorical(probs))

    posterior = Posterior(model, guide, regression_data())
    _assert_refused(posterior, r"NUTS cannot sample discrete latent site\(s\) \['k'\].*gradient",
                    engines=("nuts",))


def test_enumerated_discrete_latent_is_allowed_for_nuts():
    def model(x, y):
        k = pyro.sample("k", dist.Bernoulli(0.5), infer={"enumerate": "parallel"})
        loc = pyro.sample("loc", dist.Normal(0.0, 2.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(loc + k, 0.5), obs=y)

    posterior = Posterior(model, None, regression_data())
    NUTS().validate(posterior)  # no error: Pyro sums k out


def test_guide_outside_model_support():
    def guide(x, y, observations=None):
        pyro.sample("w", dist.Normal(-5.0, 0.1))  # always negative
        pyro.sample("b", dist.Normal(0.0, 1.0))

    def model(x, y):
        w = pyro.sample("w", dist.HalfNormal(1.0))
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        with pyro.plate("data", x.shape[0]):
            pyro.sample("y", dist.Normal(b + w * x, 0.5), obs=y)

    posterior = Posterior(model, guide, regression_data())
    with pyro.validation_enabled(False):
        with pytest.raises(ValueError, match="site 'w'.*(support|cannot be evaluated)"):
            posterior.validate()


def test_params_must_be_module_or_mapping():
    with pytest.raises(ValueError, match="params must be None, a torch.nn.Module or a mapping"):
        Posterior(regression_model, regression_guide, regression_data(), params=[1, 2])
