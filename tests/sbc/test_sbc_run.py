"""SBC end to end: positive and negative controls, VSBC, reproducibility, resume.

Power (why N=100, L=99 suffice): with q = exact posterior with half its sd, the simulated
value's fractional rank is Phi(2 Z), so 16% of ranks fall in each outer 2.5% tail instead
of 2.5%; the ECDF test's p-value is then ~1e-7 at N=100 (measured), far below the 0.025
Bonferroni level. A mean shift of half a posterior sd moves the mean of
P_q(z < z_true) to ~0.35, which the VSBC KS test flags at p ~ 1e-5.
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_genmodels import Posterior, _arviz
from ppl_genmodels.models import normal_normal as nn_
from ppl_genmodels.sbc import SBCResult, sbc, vsbc
from ppl_genmodels.sbc.checkpoint import CONFIG_FILE, GUIDE_FILE
from ppl_genmodels.sbc.simulate import observed_keys as _observed_keys, simulate as _simulate


def conjugate_guide(scale_factor=1.0, shift_sds=0.0):
    """q(loc | x): the exact conjugate posterior of normal_normal, its sd times
    ``scale_factor``, its mean moved by ``shift_sds`` posterior sds."""

    def guide(x, observations=None):
        if observations is not None:
            x = observations["x"]
        precision = 1 / nn_.PRIOR_SCALE**2 + x.shape[-2] / nn_.OBS_SCALE**2
        mean = (nn_.PRIOR_LOC / nn_.PRIOR_SCALE**2 + x.sum(-2) / nn_.OBS_SCALE**2) / precision
        sd = precision**-0.5
        pyro.sample("loc", dist.Normal(mean + shift_sds * sd, scale_factor * sd).to_event(1))

    return guide


def test_exact_guide_passes_and_underdispersed_guide_fails_amortized():
    exact = sbc("normal_normal", "amortized", num_simulations=100, guide=conjugate_guide(),
                progress=False)
    assert exact.ranks.shape == (100, 2) and exact.param_names == ["loc[0]", "loc[1]"]
    assert exact.passed, exact.tests()
    assert not exact.tests()["vsbc_flag"].any()

    narrow = sbc("normal_normal", "amortized", num_simulations=100,
                 guide=conjugate_guide(scale_factor=0.5), progress=False)
    tests = narrow.tests()
    assert not narrow.passed and (tests["verdict"] == "fail").all()
    assert (tests["ecdf_p"] < 1e-4).all()
    assert (tests["extreme_frac"] > 0.15).all()  # ranks piled at both ends: U shape
    # Same simulations (same seed): the simulated truths agree, only the ranks differ.
    np.testing.assert_array_equal(narrow.true_values, exact.true_values)


def test_vsbc_flags_biased_underdispersed_guide_only():
    biased = sbc("normal_normal", "amortized", num_simulations=100,
                 guide=conjugate_guide(scale_factor=0.5, shift_sds=0.5), progress=False)
    table = vsbc(biased)
    assert table["flag"].all() and (table["mean_p"] < 0.42).all()
    assert biased.tests()["vsbc_flag"].all()
    narrow = sbc("normal_normal", "amortized", num_simulations=100,
                 guide=conjugate_guide(scale_factor=0.5), progress=False)
    assert not vsbc(narrow)["flag"].any()  # under-dispersed but symmetric
    with pytest.raises(ValueError, match="SBCResult"):
        vsbc(biased.tests())


class AR1Oracle:
    """A user 'MCMC' engine: an AR(1) chain whose stationary law is the exact posterior.

    Autocorrelation rho = 0.9 gives ESS ~ M (1 - rho) / (1 + rho) ~ 105 of M = 2000, so SBC
    must thin by ~19. ``interrupt_at`` raises KeyboardInterrupt on that call.
    """

    name = "ar1_oracle"

    def __init__(self, rho=0.9, num_samples=2000, interrupt_at=None):
        self.rho, self.num_samples, self.interrupt_at, self.calls = rho, num_samples, interrupt_at, 0

    def run(self, posterior, seed=0, progress=False):
        self.calls += 1
        if self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        mean, sd = nn_.closed_form(posterior.data["x"])
        rng = np.random.default_rng(seed)
        z = np.empty((self.num_samples, mean.size))
        z[0] = rng.standard_normal(mean.size)
        eps = rng.standard_normal(z.shape) * math.sqrt(1 - self.rho**2)
        for t in range(1, self.num_samples):
            z[t] = self.rho * z[t - 1] + eps[t]
        return _arviz.from_dict(posterior={"loc": (mean + sd * z)[None]})


def test_refit_path_thins_autocorrelated_draws_by_ess(tmp_path):
    result = sbc("normal_normal", AR1Oracle(), num_simulations=100, num_draws=39,
                 progress=False)
    assert result.passed, result.tests()
    stats = result.sim_stats
    # ESS estimates scatter: check the typical step and that thinning rarely fell short.
    assert 12 <= stats["thin"].median() <= 30 and stats["under_thinned"].mean() <= 0.05
    assert 60 <= stats["ess_min"].median() <= 170
    frame = result.to_dataframe()
    assert list(frame.columns[:2]) == ["loc[0]", "loc[1]"] and len(frame) == 100
    assert frame[["loc[0]", "loc[1]"]].to_numpy().max() <= 39
    # Round trip through netCDF.
    loaded = SBCResult.load(result.save(tmp_path / "sbc.nc"))
    np.testing.assert_array_equal(loaded.ranks, result.ranks)
    np.testing.assert_allclose(loaded.true_values, result.true_values)
    assert loaded.tests().equals(result.tests()) and loaded.attrs == result.attrs


def test_resume_after_interruption_gives_the_same_ranks(tmp_path):
    kwargs = dict(num_simulations=20, num_draws=19, progress=False, batch_size=5, seed=7)
    reference = sbc("normal_normal", AR1Oracle(num_samples=400), **kwargs)

    folder = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        sbc("normal_normal", AR1Oracle(num_samples=400, interrupt_at=13),
            checkpoint_dir=folder, **kwargs)
    finished = sorted(folder.glob("batch_*.npz"))
    assert [p.name for p in finished] == ["batch_00000.npz", "batch_00001.npz"]
    stamps = {p: p.stat().st_mtime_ns for p in finished}

    engine = AR1Oracle(num_samples=400)
    resumed = sbc("normal_normal", engine, checkpoint_dir=folder, **kwargs)
    assert engine.calls == 10  # only the 10 lost simulations ran again
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps
    np.testing.assert_array_equal(resumed.ranks, reference.ranks)
    np.testing.assert_array_equal(resumed.sim_stats["seed"], reference.sim_stats["seed"])

    # Other settings in the same folder: refused unless resume=False.
    with pytest.raises(ValueError, match="other settings.*num_draws"):
        sbc("normal_normal", AR1Oracle(num_samples=400), checkpoint_dir=folder,
            **{**kwargs, "num_draws": 9})
    fresh = sbc("normal_normal", AR1Oracle(num_samples=400), checkpoint_dir=folder,
                resume=False, **{**kwargs, "num_draws": 9})
    assert fresh.ranks.max() <= 9 and (folder / CONFIG_FILE).exists()


def test_nuts_run_is_reproducible_with_a_seed():
    # Tiny budgets: this checks seeding, not calibration (see the slow test below).
    kwargs = dict(num_simulations=10, num_draws=9, progress=False, seed=3,
                  engine_config=dict(num_samples=40, warmup_steps=30, num_chains=1))
    first = sbc("normal_normal", "nuts", **kwargs)
    again = sbc("normal_normal", "nuts", **kwargs)
    np.testing.assert_array_equal(first.ranks, again.ranks)
    np.testing.assert_array_equal(first.true_values, again.true_values)
    assert first.engine == "nuts" and not first.variational
    assert (first.sim_stats["thin"] >= 1).all() and np.isfinite(first.sim_stats["ess_min"]).all()
    assert first.ranks.min() >= 0 and first.ranks.max() <= 9


def test_amortized_training_by_rws_sleep_passes_and_is_kept_for_resume(tmp_path):
    # normal_normal's encoder contains the exact posterior; RWS's sleep phase (insomnia=0)
    # fits it on prior simulations, so the amortized guide must be calibrated.
    folder = tmp_path / "ck"
    train = dict(num_steps=500, lr=0.05)
    result = sbc("normal_normal", "amortized", num_simulations=60, progress=False,
                 checkpoint_dir=folder, engine_config=train)
    assert result.passed, result.tests()
    assert result.engine == "amortized(rws)" and result.attrs["train_config"]["insomnia"] == 0.0
    guide_file = folder / GUIDE_FILE
    stamp = guide_file.stat().st_mtime_ns
    longer = sbc("normal_normal", "amortized", num_simulations=70, progress=False,
                 checkpoint_dir=folder, engine_config=train)
    assert guide_file.stat().st_mtime_ns == stamp  # loaded, not trained again
    np.testing.assert_array_equal(longer.ranks[:60], result.ranks)


def test_simulation_keeps_covariates_and_recomputes_deterministic_sites():
    from ppl_genmodels.models import get_model

    posterior = get_model("eight_schools").posterior()
    keys = _observed_keys(posterior, None)
    assert keys == {"y": "y"}
    theta, data = _simulate(posterior, keys, ["mu", "tau", "theta_trans", "theta"], seed=5)
    assert torch.equal(data["sigma"], posterior.data["sigma"])
    assert data["y"].shape == (8,) and not torch.equal(data["y"], posterior.data["y"])
    np.testing.assert_allclose(theta["theta"], theta["mu"] + theta["tau"] * theta["theta_trans"],
                               rtol=1e-5)


def test_bad_input_raises_before_any_simulation(tmp_path):
    with pytest.raises(ValueError, match="num_simulations"):
        sbc("normal_normal", "nuts", num_simulations=5)
    with pytest.raises(ValueError, match="unknown model"):
        sbc("no_such_model", "nuts")
    with pytest.raises(ValueError, match="unknown engine"):
        sbc("normal_normal", "hmc")
    with pytest.raises(ValueError, match="only used with engine='amortized'"):
        sbc("normal_normal", "nuts", guide=conjugate_guide())
    with pytest.raises(ValueError, match="var_names"):
        sbc("normal_normal", "nuts", var_names=["scale"])
    with pytest.raises(ValueError, match="num_samples \\* num_chains"):
        sbc("normal_normal", "nuts", num_draws=99, thin=5,
            engine_config=dict(num_samples=100, num_chains=2))
    with pytest.raises(ValueError, match="must return a Posterior"):
        sbc(lambda: "not a posterior", "nuts")
    with pytest.raises(ValueError, match="thin"):
        sbc("normal_normal", "nuts", thin=0)
    data = nn_.load_data()

    def renamed_model(obs, copy):  # the observed value sits under two keywords
        nn_.model(obs)

    renamed = Posterior(renamed_model, None, {"obs": data["x"], "copy": data["x"]})
    with pytest.raises(ValueError, match="observed_keys"):
        _observed_keys(renamed, None)
    assert _observed_keys(renamed, {"x": "obs"}) == {"x": "obs"}
    assert not list(tmp_path.iterdir())


def test_factory_posterior_with_an_engine_object_of_iid_draws():
    # A user factory and the infer.Amortized engine object: the refit path with iid draws
    # (no ESS thinning) and VSBC columns.
    from ppl_genmodels.infer import Amortized

    def factory():
        return Posterior(nn_.model, conjugate_guide(), nn_.load_data(), name="nn_exact")

    result = sbc(factory, Amortized(), num_simulations=50, num_draws=49, progress=False)
    assert result.model == "nn_exact" and result.engine == "amortized" and result.variational
    assert (result.sim_stats["thin"] == 1).all() and result.sim_stats["ess_min"].isna().all()
    assert result.passed and "vsbc_p" in result.tests()


@pytest.mark.slow
def test_nuts_passes_on_normal_normal():
    # ~1.4 s per NUTS run unloaded: 100 simulations take ~2.5-5 min on one thread.
    result = sbc("normal_normal", "nuts", num_simulations=100, num_draws=49, seed=1,
                 progress=False, engine_config=dict(num_samples=200, warmup_steps=100,
                                                    num_chains=1))
    assert result.passed, result.tests()
    assert not result.sim_stats["under_thinned"].any()


@pytest.mark.slow
def test_nuts_passes_on_eight_schools():
    # ~5-11 s per NUTS run (simulated data with large tau need deep trees): 40 simulations
    # took ~7 min on one thread of a loaded 2-core box. Checks no gross miscalibration of
    # the non-centred model (18 parameters incl. the deterministic theta).
    result = sbc("eight_schools", "nuts", num_simulations=40, num_draws=19, seed=2,
                 progress=False, engine_config=dict(num_samples=150, warmup_steps=100,
                                                    num_chains=1, target_accept_prob=0.9))
    assert result.passed, result.tests()
