"""Every engine's InferenceData has the same groups, variables, dims and attrs, and
survives a netCDF round trip."""

import json

import numpy as np
import pytest

from ppl_genmodels.infer import NUTS, RWS, SVI, PyroNUTS
from ppl_genmodels.io import load_netcdf, save_netcdf
from ppl_genmodels.models import get_model

ENGINES = {
    "svi": (SVI(num_steps=30, num_draws=50), ("loss",)),
    "rws": (RWS(num_steps=30, num_draws=50), ("loss_wake_theta", "loss_phi")),
    "nuts": (NUTS(num_samples=40, warmup_steps=40), ("diverging", "energy", "tree_depth", "n_steps",
                                                     "step_size", "acceptance_rate", "lp")),
    "pyro_nuts": (PyroNUTS(num_samples=40, warmup_steps=40),
                  ("diverging", "energy", "tree_depth", "n_steps", "step_size",
                   "acceptance_rate", "lp")),
}
CHAINS = {"nuts": NUTS().num_chains, "pyro_nuts": PyroNUTS().num_chains}


@pytest.fixture(scope="module")
def eight_schools():
    return get_model("eight_schools").posterior()


@pytest.mark.parametrize("name", list(ENGINES))
def test_layout_and_netcdf_round_trip(name, eight_schools, tmp_path):
    engine, stats = ENGINES[name]
    idata = engine.run(eight_schools, seed=3, progress=False).idata
    chains, draws = (CHAINS[name], 40) if name in CHAINS else (1, 50)

    assert {"posterior", "sample_stats", "observed_data", "constant_data"} <= set(idata.groups())
    post = idata.posterior
    assert set(post.data_vars) == {"mu", "tau", "theta_trans", "theta"}  # latent + deterministic
    assert post["mu"].dims == ("chain", "draw")
    assert post["theta"].shape == (chains, draws, 8)
    assert post["theta"].dims[:2] == ("chain", "draw")
    # the deterministic site is computed from the latents of the same draw
    np.testing.assert_allclose(
        post["theta"].values,
        post["mu"].values[..., None] + post["tau"].values[..., None] * post["theta_trans"].values,
        rtol=1e-5, atol=1e-4,
    )
    assert set(stats) <= set(idata.sample_stats.data_vars)
    if name in CHAINS:
        assert idata.sample_stats["diverging"].dtype == bool
        assert idata.sample_stats["energy"].dims == ("chain", "draw")
        assert (idata.sample_stats["n_steps"].values >= 1).all()
        assert ((idata.sample_stats["acceptance_rate"].values >= 0)
                & (idata.sample_stats["acceptance_rate"].values <= 1)).all()
    else:
        lw = idata.sample_stats["log_weight"]
        assert lw.dims == ("chain", "draw") and np.isfinite(lw.values).all()
        for loss in stats:
            assert idata.sample_stats[loss].dims == ("step",)
            assert idata.sample_stats[loss].shape == (30,)
    np.testing.assert_array_equal(idata.observed_data["y"].values, eight_schools.data["y"].numpy())
    np.testing.assert_array_equal(idata.constant_data["sigma"].values, eight_schools.data["sigma"].numpy())

    attrs = idata.posterior.attrs
    assert attrs["engine"] == name and attrs["seed"] == 3
    assert json.loads(attrs["config"]) == {k: getattr(engine, k) for k in engine.__dataclass_fields__}
    assert attrs["wall_time_s"] > 0 and attrs["grad_evals"] > 0
    assert {"pyro_version", "torch_version", "arviz_version"} <= set(attrs)

    path = tmp_path / f"{name}.nc"
    save_netcdf(idata, path)
    back = load_netcdf(path)
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        a, b = getattr(idata, group), getattr(back, group)
        assert set(a.data_vars) == set(b.data_vars)
        for var in a.data_vars:
            np.testing.assert_array_equal(a[var].values, b[var].values)
    assert back.posterior.attrs["config"] == attrs["config"]


def test_same_seed_same_draws(eight_schools):
    a = SVI(num_steps=20, num_draws=20).run(eight_schools, seed=5, progress=False).idata
    b = SVI(num_steps=20, num_draws=20).run(eight_schools, seed=5, progress=False).idata
    np.testing.assert_array_equal(a.posterior["mu"].values, b.posterior["mu"].values)
