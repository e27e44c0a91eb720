"""The reference-backed built-in models: they build, run every engine, and NUTS reproduces
each model's reference by Inference Gym's test (``diagnostics.reference_check``).

Table-driven in the style of Pyro's ``tests/infer/test_inference.py``. NUTS runs that take
more than ~20 s on one thread are ``slow`` (``pytest -m slow``).
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy.special import logsumexp

from ppl_genmodels import Posterior
from ppl_genmodels.diagnostics import flat_draws, reference_check, verdict
from ppl_genmodels.infer import NUTS, RWS, SVI, get_engine
from ppl_genmodels.infer._draws import _sequential, guide_draws
from ppl_genmodels.models import get_model, list_models
from ppl_genmodels.models._distributions import OrderedNormal

NEW_MODELS = ["kidiq", "gauss_mix", "neals_funnel", "banana", "linear_regression",
              "logistic_regression", "enum_mixture"]
TINY = {"svi": {"num_steps": 5, "num_draws": 20},
        "rws": {"num_steps": 5, "num_draws": 20},
        "nuts": {"num_samples": 10, "warmup_steps": 10, "num_chains": 1, "max_tree_depth": 4}}


@pytest.mark.parametrize("name", NEW_MODELS)
def test_model_builds_and_runs_each_engine(name):
    spec = get_model(name)
    assert name in list_models()
    posterior = spec.posterior(quick=True, seed=0)
    posterior.validate()
    reference = spec.reference(posterior)
    assert set(spec.engines) <= set(spec.engine_config(quick=True))
    for engine in spec.engines:
        idata = get_engine(engine, **TINY[engine]).run(posterior, seed=0, progress=False).idata
        names = set(flat_draws(idata))
        # every reference parameter is named as the engine's output names it
        assert set(reference.parameters) <= names, (engine, sorted(names))
        values = np.concatenate([v.ravel() for v in flat_draws(idata).values()])
        assert np.isfinite(values).all(), engine


# name, NUTS config; budgets give bulk ESS of several hundred per parameter.
NUTS_CASES = [
    pytest.param("kidiq", dict(num_samples=500, warmup_steps=300), id="kidiq"),
    pytest.param("linear_regression", dict(num_samples=500, warmup_steps=500),
                 marks=pytest.mark.slow, id="linear_regression"),
    pytest.param("gauss_mix", dict(num_samples=500, warmup_steps=300),
                 marks=pytest.mark.slow, id="gauss_mix"),
    pytest.param("banana", dict(num_samples=1000, warmup_steps=1000),
                 marks=pytest.mark.slow, id="banana"),
    pytest.param("logistic_regression", dict(num_samples=500, warmup_steps=500),
                 marks=pytest.mark.slow, id="logistic_regression"),
    pytest.param("enum_mixture", dict(num_samples=500, warmup_steps=300),
                 marks=pytest.mark.slow, id="enum_mixture"),
]


@pytest.mark.parametrize("name, config", NUTS_CASES)
def test_nuts_matches_reference(name, config):
    spec = get_model(name)
    posterior = spec.posterior(seed=0)
    idata = NUTS(num_chains=2, **config).run(posterior, seed=0, progress=False).idata
    check = reference_check(idata, spec.reference(posterior))
    assert set(check.index) == set(spec.reference(posterior).parameters)
    assert check["passed"].all(), check
    assert verdict(idata)[0] != "do not trust", verdict(idata)


@pytest.mark.slow
def test_nuts_on_neals_funnel_is_not_trusted():
    """Centred funnel: NUTS cannot enter the neck with one step size. What must hold is
    that its own diagnostics say so (divergences, R-hat/ESS of v, E-BFMI), while the wide
    x[i], which it does explore, still match their exact mean."""
    spec = get_model("neals_funnel")
    posterior = spec.posterior(seed=0)
    idata = NUTS(num_samples=500, warmup_steps=500, num_chains=2, max_tree_depth=8).run(
        posterior, seed=0, progress=False).idata
    label, reason = verdict(idata)
    assert label in ("caution", "do not trust"), reason
    check = reference_check(idata, spec.reference(posterior))
    assert check.loc[[f"x[{i}]" for i in range(9)], "passed"].all(), check


def test_model_engines_default_and_enumerated():
    assert get_model("kidiq").engines == ("svi", "rws", "nuts")
    assert get_model("enum_mixture").engines == ("svi", "nuts")


def test_closed_form_references():
    banana = get_model("banana").reference()
    assert banana.sd["x1"] == pytest.approx(math.sqrt(19.0))
    # the exact draws agree with the closed-form moments
    assert np.std(banana.draws["x1"]) == pytest.approx(math.sqrt(19.0), rel=0.1)
    funnel = get_model("neals_funnel").reference()
    assert funnel.sd["v"] == 3.0 and funnel.sd["x[0]"] == pytest.approx(math.exp(2.25))
    lin = get_model("linear_regression")
    ref = lin.reference()
    data = lin.module.load_data()
    # posterior mean solves the regularized normal equations (Bishop eq. 3.53-3.54)
    m = np.array([ref.mean[f"w[{i}]"] for i in range(10)])
    x, y = data["x"].double().numpy(), data["y"].double().numpy()
    s2 = lin.module.NOISE_SCALE ** 2
    np.testing.assert_allclose((np.eye(10) + x.T @ x / s2) @ m, x.T @ y / s2, atol=1e-8)


@pytest.mark.slow
def test_enum_mixture_quadrature_is_converged():
    module = get_model("enum_mixture").module
    y = module.load_data()["y"]
    coarse, fine = module.quadrature_reference(y), module.quadrature_reference(
        y, num_points=51, width=8.0)
    for k in coarse.mean:
        assert coarse.mean[k] == pytest.approx(fine.mean[k], abs=1e-6)
        assert coarse.sd[k] == pytest.approx(fine.sd[k], rel=1e-5)


def test_ordered_normal_density_and_draws():
    d = OrderedNormal(0.0, 2.0, 2)
    value = torch.tensor([-1.0, 0.5])
    expected = dist.Normal(0.0, 2.0).log_prob(value).sum() + math.log(2.0)
    assert d.log_prob(value) == pytest.approx(float(expected))
    assert d.log_prob(torch.tensor([1.0, 0.5])) == -math.inf
    draws = d.sample((1000,))
    assert (draws[:, 1] > draws[:, 0]).all() and draws.shape == (1000, 2)
    with pytest.raises(ValueError, match="size >= 2"):
        OrderedNormal(0.0, 1.0, 1)


# --- log weights of enumerated models ----------------------------------------------------
WEIGHTS, Y = torch.tensor([0.3, 0.7]), torch.tensor([-1.0, 0.2, 2.5])


def _enum_model(y):
    locs = pyro.sample("locs", dist.Normal(torch.zeros(2), 2.0).to_event(1))
    with pyro.plate("data", y.shape[-1]):
        a = pyro.sample("a", dist.Categorical(WEIGHTS), infer={"enumerate": "parallel"})
        pyro.sample("y", dist.Normal(pyro.ops.indexing.Vindex(locs)[..., a], 1.0), obs=y)


def _enum_guide(y, observations=None):
    loc = pyro.param("loc", torch.tensor([-1.0, 1.5]))
    pyro.sample("locs", dist.Normal(loc, 0.5).to_event(1))


def _hand_log_weight(locs):
    """log p(locs) + sum_n log sum_k w_k N(y_n | locs_k, 1) - log q(locs), by hand."""
    locs = np.asarray(locs, dtype=np.float64)
    norm = lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
    log_prior = norm(locs, 0.0, 2.0).sum()
    comp = np.log(WEIGHTS.numpy())[None, :] + norm(Y.numpy()[:, None], locs[None, :], 1.0)
    log_q = norm(locs, np.array([-1.0, 1.5]), 0.5).sum()
    return log_prior + logsumexp(comp, axis=1).sum() - log_q


def test_enumerated_log_weights_marginalize_assignments():
    posterior = Posterior(_enum_model, _enum_guide, {"y": Y})
    sites = posterior.validate()
    assert set(sites.enumerated) == {"a"} and set(sites.latent) == {"locs"}
    pyro.set_rng_seed(1)
    with posterior.session() as (model, guide):
        values, log_w = guide_draws(model, guide, posterior.data, sites, num_draws=7, chunk_size=4)
        seq_values, seq_log_w = _sequential(model, guide, posterior.data, {"locs": (2,)}, 5, sites)
    expected = [_hand_log_weight(v) for v in values["locs"]]
    np.testing.assert_allclose(log_w, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(seq_log_w, [_hand_log_weight(v) for v in seq_values["locs"]],
                               rtol=1e-5, atol=1e-5)


def test_svi_fits_enumerated_model_and_rws_refuses():
    posterior = Posterior(_enum_model, _enum_guide, {"y": Y})
    engine = SVI(num_steps=20, num_draws=50)
    result = engine.run(posterior, seed=0, progress=False)
    idata, fitted = result.idata, result.param_state["loc"].numpy()
    assert not np.allclose(fitted, [-1.0, 1.5])  # TraceEnum_ELBO moved the guide
    # stored log weights are the marginal ones, under the fitted guide
    locs = idata.posterior["locs"].values[0]
    norm = lambda x, m, s: -0.5 * ((x - m) / s) ** 2 - math.log(s * math.sqrt(2 * math.pi))
    shift = norm(locs, np.array([-1.0, 1.5]), 0.5).sum(-1) - norm(locs, fitted, 0.5).sum(-1)
    expected = np.array([_hand_log_weight(v) for v in locs]) + shift
    np.testing.assert_allclose(idata.sample_stats["log_weight"].values[0], expected,
                               rtol=1e-5, atol=1e-5)
    assert np.isfinite(idata.sample_stats["loss"].values).all()
    with pytest.raises(ValueError, match="enumeration"):
        RWS(num_steps=2).run(posterior, seed=0, progress=False)
