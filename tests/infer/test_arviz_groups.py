"""ArviZ-complete results: dims and coords declared by a posterior reach every group of every
engine's InferenceData; ``posterior_predictive``, ``prior`` and ``prior_predictive`` hold the
right draws (closed-form checks); ``az.loo``, ``az.compare`` and ``az.plot_ppc`` run on them;
a posterior without declarations keeps ArviZ's defaults."""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from helpers import regression_data, regression_guide, regression_model
from ppl_genmodels import Posterior, compare
from ppl_genmodels._arviz import az, coordinate_labels, labeller
from ppl_genmodels.diagnostics import flat_draws
from ppl_genmodels.infer import get_engine
from ppl_genmodels.models import get_model
from ppl_genmodels.models.eight_schools import SCHOOLS, SIGMA
from ppl_genmodels.reference import Reference
from ppl_genmodels.sbc.draws import flat_values

TINY = {  # budgets: the point is the layout, not the accuracy
    "nuts": {"num_samples": 40, "warmup_steps": 40, "num_chains": 2},
    "pyro_nuts": {"num_samples": 10, "warmup_steps": 10, "num_chains": 2},
    "svi": {"num_steps": 10, "num_draws": 200},
    "rws": {"num_steps": 10, "num_draws": 200},
    "amortized": {"num_draws": 200},
}


class UserEngine:
    """A user engine that knows nothing of dims: ArviZ's defaults (``theta_dim_0``)."""

    name = "user"

    def run(self, posterior, seed):
        rng = np.random.default_rng(seed)
        return az.from_dict(posterior={"mu": rng.normal(size=(2, 50)),
                                       "theta": rng.normal(size=(2, 50, 8))},
                            observed_data={"y": posterior.data["y"].numpy()})


@pytest.fixture(scope="module")
def schools_results():
    """One result per engine on eight schools (dims: theta/theta_trans/y/sigma over school)."""
    posterior = get_model("eight_schools").posterior()
    out = {name: get_engine(name, **cfg).run(posterior, seed=3, progress=False).idata
           for name, cfg in TINY.items()}
    out["user"] = get_engine(UserEngine()).run(posterior, seed=3, progress=False).idata
    return out


@pytest.mark.parametrize("engine", [*TINY, "user"])
def test_every_group_carries_the_school_dim_and_names(engine, schools_results):
    idata = schools_results[engine]
    expected = {"posterior": ["theta", "theta_trans"], "observed_data": ["y"]}
    if engine != "user":
        expected.update(log_likelihood=["y"], posterior_predictive=["y"], constant_data=["sigma"],
                        prior=["theta", "theta_trans"], prior_predictive=["y"])
    for group, variables in expected.items():
        assert group in idata.groups(), group
        for var in variables:
            if var not in idata[group]:
                assert engine == "user" and var == "theta_trans"
                continue
            array = idata[group][var]
            assert array.dims[-1] == "school", (group, var, array.dims)
            assert list(array["school"].values) == SCHOOLS, (group, var)
    assert "theta_dim_0" not in idata.posterior.dims
    if engine != "user":
        assert set(idata.sample_stats.dims) >= {"chain", "draw"}
        labels = list(az.summary(idata, var_names=["theta"], kind="stats").index)
        assert labels == [f"theta[{s}]" for s in SCHOOLS]


@pytest.mark.parametrize("engine", list(TINY))
def test_posterior_predictive_shapes_and_closed_form(engine, schools_results):
    """y_rep[s, j] ~ Normal(theta[s, j], sigma_j): (y_rep - theta) / sigma is standard normal."""
    idata = schools_results[engine]
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    y_rep = idata.posterior_predictive["y"].values
    assert y_rep.shape == (chains, draws, 8)
    z = (y_rep - idata.posterior["theta"].values) / np.asarray(SIGMA)
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n) and abs(z.std() - 1) < 4 / np.sqrt(2 * n), (z.mean(), z.std())
    # negative control: the observed y is not a draw of y_rep (it would give z's sd far from 1)
    z_obs = (idata.observed_data["y"].values - idata.posterior["theta"].values) / np.asarray(SIGMA)
    assert not np.allclose(z_obs, z)


def test_prior_groups_match_the_prior_and_are_shared_by_engines(schools_results):
    prior = schools_results["svi"].prior
    assert prior.sizes["chain"] == 1 and prior.sizes["draw"] == 500
    mu, tau = prior["mu"].values.ravel(), prior["tau"].values.ravel()
    assert abs(mu.mean()) < 4 * 5 / np.sqrt(500) and abs(mu.std() - 5) < 4 * 5 / np.sqrt(1000)
    assert abs(np.median(tau) - 5.0) < 1.5 and (tau > 0).all()  # HalfCauchy(5): median 5
    theta = prior["theta"].values
    np.testing.assert_allclose(theta, prior["mu"].values[..., None]
                               + prior["tau"].values[..., None] * prior["theta_trans"].values,
                               rtol=1e-5, atol=1e-4)  # deterministic sites keep their relation
    y = schools_results["svi"].prior_predictive["y"].values
    assert y.shape == (1, 500, 8) and not np.allclose(y[0, 0], y[0, 1])
    for other in ("rws", "amortized", "nuts"):  # same run seed: the same prior draws
        np.testing.assert_array_equal(schools_results[other].prior["mu"].values, mu[None])


def test_loo_compare_and_plot_ppc_on_a_comparison_with_dims():
    posterior = get_model("eight_schools").posterior()
    result = compare(posterior, engines=("svi", "nuts"), seed=0, progress=False,
                     engine_config={"svi": TINY["svi"], "nuts": TINY["nuts"]},
                     reference=get_model("eight_schools").reference())
    loo = az.loo(result.idata["nuts"], pointwise=True)
    assert np.isfinite(loo.elpd_loo) and loo.pareto_k.dims == ("school",)
    assert list(loo.pareto_k["school"].values) == SCHOOLS
    table = az.compare(dict(result.idata))
    assert set(table.index) == {"svi", "nuts"} and sorted(table["rank"]) == [0, 1]
    axes = az.plot_ppc(result.idata["nuts"], num_pp_samples=20, random_seed=0)
    assert np.size(axes) == 1
    # the reference (written as theta[0]..) is moved onto the schools' names
    assert "theta[Choate]" in result.reference.mean and "theta[0]" not in result.reference.mean
    row = result.table.loc[("svi", "theta[Choate]")]
    assert np.isfinite(row["std_mean_error"])
    import matplotlib.pyplot as plt
    plt.close("all")


def test_loo_needs_the_log_likelihood_group():
    """Negative control: a model without observed sites has no log_likelihood, and az.loo
    refuses it (so the positive tests do read our group)."""
    idata = get_engine("svi", num_steps=5, num_draws=50).run(
        get_model("banana").posterior(), seed=0, progress=False).idata
    assert "log_likelihood" not in idata.groups() and "posterior_predictive" not in idata.groups()
    with pytest.raises(TypeError):
        az.loo(idata)


def test_a_posterior_without_dims_keeps_arviz_defaults():
    data = regression_data(n=12, seed=1)
    idata = get_engine("svi", num_steps=5, num_draws=100).run(
        Posterior(regression_model, regression_guide, data), seed=0, progress=False).idata
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "y_dim_0")
    assert idata.posterior_predictive["y"].shape == (1, 100, 12)
    assert set(flat_draws(idata)) == {"w", "b"}
    assert az.loo(idata).n_data_points == 12


def _vector_model(y):
    loc = pyro.sample("loc", dist.Normal(torch.zeros(3), 1.0).to_event(1))
    with pyro.plate("obs", y.shape[0]):
        pyro.sample("y", dist.Normal(loc, 1.0).to_event(1), obs=y)


@pytest.mark.parametrize("dims, coords, pattern", [
    ({"nope": ["a"]}, None, "no site or data entry 'nope'"),
    ({"loc": ["a", "b"]}, None, r"names 2 dims .* shape \(3,\)"),
    ({"loc": ["k"], "y": ["obs", "x"]}, None, None),  # fine: y is (4, 3)
    ({"loc": ["k"], "y": ["k"]}, None, "dim 'k' has size 4 in 'y' but 3"),
    ({"loc": ["k"]}, {"k": ["a", "b"]}, "coords\\['k'\\] has 2 labels but dim 'k' has size 3"),
])
def test_dims_are_checked_against_the_sites(dims, coords, pattern):
    posterior = Posterior(_vector_model, None, {"y": torch.zeros(4, 3)}, dims=dims, coords=coords)
    if pattern is None:
        posterior.validate()
        return
    with pytest.raises(ValueError, match=pattern):
        posterior.validate()


@pytest.mark.parametrize("kwargs, pattern", [
    ({"dims": ["loc"]}, "dims must be a mapping"),
    ({"dims": {"loc": "k"}}, r"dims\['loc'\] must be a list"),
    ({"dims": {"loc": ["chain"]}}, "sample dims"),
    ({"coords": {"k": "abc"}}, r"coords\['k'\] must be a 1-D list"),
    ({"coords": {"k": ["a", "a", "b"]}}, "repeated labels"),
])
def test_bad_dims_and_coords_are_refused_at_construction(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Posterior(_vector_model, None, {"y": torch.zeros(4, 3)}, **kwargs)


def test_labels_follow_coords_in_sbc_and_references():
    posterior = get_model("eight_schools").posterior()
    names = list(flat_values({"theta": np.zeros((1, 8)), "mu": np.zeros((1,))}, posterior))
    assert names == [f"theta[{s}]" for s in SCHOOLS] + ["mu"]
    assert list(flat_values({"theta": np.zeros((1, 8))})) == [f"theta[{j}]" for j in range(8)]
    dataset = az.dict_to_dataset({"theta": np.zeros((1, 2, 8))}, dims={"theta": ["school"]},
                                 coords={"school": SCHOOLS})
    labels = coordinate_labels(dataset)
    assert labels["theta[0]"] == "theta[Choate]"
    ref = Reference(mean={"theta[0]": 1.0, "mu": 2.0}, sd={"theta[0]": 3.0, "mu": 4.0})
    moved = ref.relabel(labels)
    assert moved.mean == {"theta[Choate]": 1.0, "mu": 2.0} and moved.sd["theta[Choate]"] == 3.0
    assert labeller({"theta": "θ"}).make_label_vert("theta", {"school": "Choate"}, {}) \
        .startswith("θ")


def test_image_coords_keep_each_image_label():
    posterior = Posterior(_vector_model, None, {"y": torch.zeros(4, 3)},
                          dims={"y": ["image", "pixel"]}, coords={"image": [10, 11, 12, 13]})
    assert posterior.image_coords(2)["image"] == [12]
    one = posterior.replace(data={"y": torch.zeros(1, 3)}, coords=posterior.image_coords(2))
    one.validate()
    plain = Posterior(_vector_model, None, {"y": torch.zeros(4, 3)})
    assert plain.image_coords(2) == {}


def test_posteriors_derived_from_a_posterior_keep_its_dims():
    """Guides swapped in (flows.with_guide), devices and SBC's simulated data keep the
    declarations, so their results carry the same labels as the reference."""
    from ppl_genmodels.models.flows import with_guide

    base = get_model("eight_schools").posterior()
    for derived in (with_guide(base, "ffg"), base.to("cpu"),
                    base.replace(data={"y": torch.zeros(8), "sigma": torch.ones(8)})):
        assert derived.dims == base.dims and derived.coords == base.coords
        assert derived.parameter_labels()["theta[7]"] == "theta[Mt. Hermon]"
    with pytest.raises(ValueError, match="unknown field"):
        base.replace(nmae="x")
