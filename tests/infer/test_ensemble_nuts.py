"""Ensemble NUTS (``ppl_genmodels.infer.NUTS``): correctness, table-driven.

Tolerances come from Monte Carlo error: moments within 4 MCSE (ArviZ's, from bulk ESS);
exact-stationarity checks with N iid chains use the standard errors of the mean (1/sqrt N)
and variance (sqrt(2/N)) of a Gaussian, at 4.5 sigma; SBC uses the ECDF test at alpha = 0.01.
Every test is seeded; each statistical check has a negative control that must fail.
"""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from scipy import stats

from helpers import regression_data
from ppl_genmodels import Posterior
from ppl_genmodels.diagnostics import flat_draws, parameter_summary
from ppl_genmodels.infer import _nuts_kernel
from ppl_genmodels.infer._nuts_kernel import leapfrog, nuts_transition
from ppl_genmodels.infer import NUTS
from ppl_genmodels.models import get_model
from ppl_genmodels.models.normal_normal import closed_form


# --- closed-form Gaussian targets --------------------------------------------------------
def _iid(scales):
    scales = torch.as_tensor(scales, dtype=torch.float32)

    def model():
        pyro.sample("z", dist.Normal(torch.zeros_like(scales), scales).to_event(1))

    return model, np.zeros(len(scales)), scales.numpy().astype(np.float64)


def _correlated(rho=0.95, scale=(1.0, 3.0)):
    cov = torch.tensor([[scale[0] ** 2, rho * scale[0] * scale[1]],
                        [rho * scale[0] * scale[1], scale[1] ** 2]])
    loc = torch.tensor([1.0, -2.0])

    def model():
        pyro.sample("z", dist.MultivariateNormal(loc, cov))

    return model, loc.numpy(), np.sqrt(np.diag(cov.numpy()))


GAUSSIANS = [
    pytest.param(_iid([1.0, 1.0]), id="isotropic-2d"),
    pytest.param(_correlated(), id="correlated-0.95"),
    pytest.param(_iid(np.ones(100)), id="isotropic-100d"),
    pytest.param(_iid(np.logspace(-2, 2, 6)), id="badly-scaled-1e-2..1e2"),
]


@pytest.mark.parametrize("target", GAUSSIANS)
def test_gaussian_moments(target):
    model, mean, sd = target
    posterior = Posterior(model, None, {})
    idata = NUTS(num_samples=300, warmup_steps=300, num_chains=8).run(posterior, seed=1, progress=False).idata
    summary = parameter_summary(idata)
    for i in range(len(mean)):
        row = summary.loc[f"z[{i}]"]
        assert abs(row["mean"] - mean[i]) < 4 * row["mcse_mean"], (i, row)
        assert abs(row["sd"] - sd[i]) < 4 * row["mcse_sd"], (i, row)
    assert summary["r_hat"].max() < 1.02
    assert not idata.sample_stats["diverging"].values.any()


# --- leapfrog and the transition kernel on exact targets ------------------------------------
def _gaussian_potential(scales):
    precision = 1.0 / scales ** 2

    def potential(q):
        return 0.5 * (q * q * precision).sum(-1), q * precision

    return potential


def test_leapfrog_is_reversible():
    potential = _gaussian_potential(torch.tensor([1.7], dtype=torch.float64))
    z = torch.tensor([[[0.3]]], dtype=torch.float64)
    r = torch.tensor([[[-1.1]]], dtype=torch.float64)
    u, g = potential(z)
    inv_mass = torch.tensor([[[0.8]]], dtype=torch.float64)
    step = torch.tensor([[[0.37]]], dtype=torch.float64)
    z1, r1, g1 = z, r, g
    for _ in range(25):
        z1, r1, g1, u1 = leapfrog(potential, z1, r1, g1, step, inv_mass)
    for _ in range(25):
        z1, r1, g1, u1 = leapfrog(potential, z1, r1, g1, -step, inv_mass)
    assert torch.allclose(z1, z, atol=1e-12) and torch.allclose(r1, r, atol=1e-12)


def _lockstep(potential, z, u, g, step_size, inv_mass, gen, num_steps):
    depths = []
    step = torch.full((1, 1), step_size, dtype=torch.float64)
    for _ in range(num_steps):
        t = nuts_transition(potential, z, u, g, step, inv_mass, gen, max_tree_depth=8)
        z, u, g = t.z, t.potential, t.grad
        depths.append(t.tree_depth.double().ravel())
    return z, torch.cat(depths)


def _async(potential, z, u, g, step_size, inv_mass, gen, num_steps):
    from ppl_genmodels.infer._nuts_async import run_transitions

    depths = []

    def record(done, info):
        depths.append(info["tree_depth"][done].double())

    z, u, g, _ = run_transitions(
        potential, z, u, g, lambda: torch.full(z.shape[:2], step_size, dtype=torch.float64),
        inv_mass, gen, num_steps, record, max_tree_depth=8)
    depths = torch.cat(depths)
    assert len(depths) == z.shape[1] * num_steps  # every transition reported once
    return z, depths


SCHEDULES = [pytest.param(_lockstep, id="lockstep"), pytest.param(_async, id="async")]


def _stationarity(schedule, step_size, inv_mass_value, num_chains=20000, num_steps=3, seed=0):
    """Start N chains at exact draws of N(0, diag(s^2)); after NUTS transitions with a
    fixed step and metric they must still be exact draws (detailed balance of the tree)."""
    scales = torch.tensor([1.0, 2.5], dtype=torch.float64)
    potential = _gaussian_potential(scales)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(1, num_chains, 2, generator=gen, dtype=torch.float64) * scales
    u, g = potential(z)
    inv_mass = torch.full((1, 1, 2), inv_mass_value, dtype=torch.float64)
    z, depths = schedule(potential, z, u, g, step_size, inv_mass, gen, num_steps)
    return (z[0] / scales).numpy(), depths.mean().item()


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("step_size,inv_mass", [(0.9, 1.0), (0.25, 1.0), (0.6, 4.0)])
def test_transition_keeps_the_target_exactly(schedule, step_size, inv_mass):
    x, mean_depth = _stationarity(schedule, step_size, inv_mass)
    n = x.shape[0]
    assert mean_depth > 1.5  # trees of several doublings were built and merged
    assert np.abs(x.mean(0)).max() < 4.5 / math.sqrt(n)
    assert np.abs(x.var(0) - 1).max() < 4.5 * math.sqrt(2 / n)
    assert min(stats.kstest(x[:, j], "norm").pvalue for j in range(2)) > 1e-3


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_broken_energy_fails_stationarity(schedule, monkeypatch):
    """Negative control: weights from a kinetic energy that ignores the metric."""
    from ppl_genmodels.infer import _nuts_async

    broken = lambda r, inv_mass: 0.5 * (r * r).sum(-1)  # noqa: E731
    monkeypatch.setattr(_nuts_kernel, "kinetic_energy", broken)
    monkeypatch.setattr(_nuts_async, "kinetic_energy", broken)
    x, _ = _stationarity(schedule, 0.6, 4.0)
    assert np.abs(x.var(0) - 1).max() > 10 * math.sqrt(2 / x.shape[0])


# --- models as users write them -------------------------------------------------------------
def _matmul_model(X, y):
    beta = pyro.sample("beta", dist.Normal(torch.zeros(X.shape[1]), 2.0).to_event(1))
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Normal(X @ beta, 0.5), obs=y)


def _indexing_model(x, y):
    b = pyro.sample("b", dist.Normal(torch.zeros(2), 2.0).to_event(1))
    with pyro.plate("data", x.shape[0]):
        pyro.sample("y", dist.Normal(b[0] + b[1] * x, 0.5), obs=y)


def _linear_gaussian_posterior(X, y, prior_sd=2.0, noise=0.5):
    precision = X.T @ X / noise ** 2 + np.eye(X.shape[1]) / prior_sd ** 2
    cov = np.linalg.inv(precision)
    return cov @ X.T @ y / noise ** 2, np.sqrt(np.diag(cov))


@pytest.mark.parametrize("which", ["matmul", "indexing"])
def test_models_that_do_not_broadcast_use_vmap(which):
    data = regression_data(n=30, seed=3)
    x, y = data["x"], data["y"]
    X = torch.stack([torch.ones_like(x), x], -1)
    if which == "matmul":
        posterior, site = Posterior(_matmul_model, None, {"X": X, "y": y}), "beta"
    else:
        posterior, site = Posterior(_indexing_model, None, {"x": x, "y": y}), "b"
    idata = NUTS(num_samples=300, warmup_steps=300, num_chains=6).run(posterior, seed=0, progress=False).idata
    assert idata.attrs["potential_mode"] == "vmap"  # the chains plate would mix chains
    mean, sd = _linear_gaussian_posterior(X.double().numpy(), y.double().numpy())
    summary = parameter_summary(idata)
    for i in range(2):
        row = summary.loc[f"{site}[{i}]"]
        assert abs(row["mean"] - mean[i]) < 4 * row["mcse_mean"], row
        assert abs(row["sd"] - sd[i]) < 4 * row["mcse_sd"], row


def test_models_that_broadcast_use_the_chains_plate():
    posterior = get_model("eight_schools").posterior()
    idata = NUTS(num_samples=50, warmup_steps=50, num_chains=4).run(posterior, seed=0, progress=False).idata
    assert idata.attrs["potential_mode"] == "plate"
    assert set(idata.posterior.data_vars) >= {"mu", "tau", "theta_trans", "theta"}


def test_enumerated_discrete_sites_are_summed_out():
    spec = get_model("enum_mixture")
    posterior = spec.posterior(quick=True)
    idata = NUTS(num_samples=150, warmup_steps=100, num_chains=2).run(posterior, seed=0, progress=False).idata
    # Pyro's einsum takes its log from an autograd.Function that torch.func refuses; the
    # potential swaps in a torch.func one while it evaluates (validated against one chain's
    # loop potential before sampling), and puts Pyro's back.
    assert idata.attrs["potential_mode"] == "vmap"
    from pyro.ops.einsum import torch_log
    from pyro.ops.special import safe_log
    assert torch_log.safe_log is safe_log
    reference = spec.reference(posterior)
    summary = parameter_summary(idata)
    for name, ref_mean in reference.mean.items():
        if name in summary.index:
            tol = 5 * math.hypot(summary.loc[name, "mcse_mean"], reference.mcse_mean.get(name, 0.0))
            assert abs(summary.loc[name, "mean"] - ref_mean) < tol + 0.02 * reference.sd[name], name


def test_same_seed_same_draws_other_seed_other_draws():
    posterior = get_model("normal_normal").posterior()
    engine = NUTS(num_samples=30, warmup_steps=30, num_chains=3)
    a, b, c = (engine.run(posterior, seed=s, progress=False).idata for s in (5, 5, 6))
    assert np.array_equal(a.posterior["loc"].values, b.posterior["loc"].values)
    assert not np.array_equal(a.posterior["loc"].values, c.posterior["loc"].values)


@pytest.mark.parametrize("schedule", ["async", "lockstep"])
def test_many_posteriors_in_one_run_each_get_their_own_posterior(schedule):
    spec = get_model("normal_normal")
    base = spec.posterior()
    shifts = [0.0, 3.0, -5.0]
    posteriors = [Posterior(base.model, None, {"x": base.data["x"] + s}) for s in shifts]
    engine = NUTS(num_samples=300, warmup_steps=200, num_chains=4, schedule=schedule)
    idatas = [r.idata for r in engine.run_many(posteriors, seed=0, progress=False)]
    assert len(idatas) == 3
    for posterior, idata in zip(posteriors, idatas):
        mean, sd = closed_form(posterior.data["x"])
        summary = parameter_summary(idata)
        for i in range(2):
            row = summary.loc[f"loc[{i}]"]
            assert abs(row["mean"] - mean[i]) < 4 * row["mcse_mean"], row
            assert abs(row["sd"] - sd[i]) < 4 * row["mcse_sd"], row
        assert idata.attrs["num_posteriors"] == 3


def test_funnel_still_warns():
    from ppl_genmodels.diagnostics import engine_warnings

    posterior = get_model("neals_funnel").posterior()
    idata = NUTS(num_samples=150, warmup_steps=150, num_chains=4, max_tree_depth=6).run(
        posterior, seed=0, progress=False).idata
    warnings = engine_warnings(idata)
    assert any("diverg" in w or "E-BFMI" in w for w in warnings), warnings


@pytest.mark.parametrize("bad,message", [
    ({"num_samples": 0}, "num_samples"),
    ({"num_chains": 1.5}, "num_chains"),
    ({"warmup_steps": -1}, "warmup_steps"),
    ({"target_accept_prob": 1.0}, "target_accept_prob"),
    ({"potential": "magic"}, "potential"),
    ({"compile": "jit"}, "compile"),
    ({"schedule": "eventually"}, "schedule"),
])
def test_bad_settings_are_named_before_sampling(bad, message):
    posterior = get_model("normal_normal").posterior()
    with pytest.raises(ValueError, match=message):
        NUTS(**bad).run(posterior, progress=False)


def test_posteriors_of_different_models_are_refused():
    a = get_model("normal_normal").posterior()
    b = Posterior(_matmul_model, None, {"X": torch.ones(3, 2), "y": torch.zeros(3)})
    with pytest.raises(ValueError, match="model"):
        NUTS().run_many([a, b], progress=False)


# --- simulation-based calibration, batched over simulations --------------------------------
SBC_CASES = [
    pytest.param("normal_normal", {"num_samples": 100, "warmup_steps": 150, "num_chains": 4},
                 id="normal_normal"),
    pytest.param("eight_schools", {"num_samples": 100, "warmup_steps": 200, "num_chains": 4,
                                   "target_accept_prob": 0.9, "max_tree_depth": 8},
                 id="eight_schools"),
]


@pytest.mark.parametrize("model_name,config", SBC_CASES)
def test_sbc_passes(model_name, config):
    """All simulations sampled in one batched run per 100 (``sbc`` with a BatchedEngine)."""
    from ppl_genmodels.sbc import sbc

    result = sbc(model_name, engine="nuts", num_simulations=100, num_draws=49,
                 engine_config=config, seed=0, progress=False)
    assert result.passed, result.tests()


def test_sbc_fails_for_a_broken_sampler(monkeypatch):
    """Negative control: multinomial weights from a kinetic energy that ignores the metric."""
    from ppl_genmodels.infer import _nuts_async
    from ppl_genmodels.sbc import sbc

    broken = lambda r, inv_mass: 0.5 * (r * r).sum(-1)  # noqa: E731
    monkeypatch.setattr(_nuts_kernel, "kinetic_energy", broken)
    monkeypatch.setattr(_nuts_async, "kinetic_energy", broken)
    result = sbc("normal_normal", engine="nuts", num_simulations=100, num_draws=49,
                 engine_config={"num_samples": 100, "warmup_steps": 150, "num_chains": 4,
                                "max_tree_depth": 6}, seed=0, progress=False)
    assert not result.passed
    assert result.tests()["ecdf_p"].min() < 0.005  # Bonferroni level: 0.05 / 2


def test_agrees_with_pyros_sampler():
    """Both samplers on the same regression posterior: means agree within the combined MCSE."""
    from ppl_genmodels.infer import PyroNUTS

    posterior = Posterior(_indexing_model, None, regression_data(n=30, seed=3))
    ours = parameter_summary(NUTS(num_samples=300, warmup_steps=200, num_chains=4).run(
        posterior, seed=0, progress=False).idata)
    pyros = parameter_summary(PyroNUTS(num_samples=300, warmup_steps=200, num_chains=2).run(
        posterior, seed=0, progress=False).idata)
    for name in ("b[0]", "b[1]"):
        tol = 4 * math.hypot(ours.loc[name, "mcse_mean"], pyros.loc[name, "mcse_mean"])
        assert abs(ours.loc[name, "mean"] - pyros.loc[name, "mean"]) < tol, name
        assert abs(ours.loc[name, "sd"] / pyros.loc[name, "sd"] - 1) < 0.2, name


def test_stuck_warmup_chains_restart_from_a_moving_chain_of_their_posterior():
    from ppl_genmodels.infer._adaptation import reset_stuck_chains

    z = torch.arange(2 * 3 * 2, dtype=torch.float64).reshape(2, 3, 2)
    u, g = z.sum(-1), -z
    moved = torch.tensor([[True, False, False], [False, False, False]])
    z2, u2, g2, n = reset_stuck_chains(z, u, g, moved, torch.Generator().manual_seed(0))
    assert n == 2  # posterior 1 has no moving chain: left alone
    assert torch.equal(z2[0], z[0, 0].expand(3, 2)) and torch.equal(z2[1], z[1])
    assert torch.equal(u2[0], u[0, 0].expand(3)) and torch.equal(g2[0], g[0, 0].expand(3, 2))


def test_kidiq_chains_started_in_the_tails_do_not_stay_stuck():
    """Uniform(-2, 2) starts put some kidiq chains where the density is ~exp(-1e7); with one
    step size per posterior they never move unless warm-up restarts them."""
    spec = get_model("kidiq")
    posterior = spec.posterior()
    idata = NUTS(num_samples=150, warmup_steps=300, num_chains=32).run(
        posterior, seed=0, progress=False).idata
    summary = parameter_summary(idata)
    assert summary["r_hat"].max() < 1.02, summary
    assert idata.sample_stats["diverging"].values.mean() < 0.01
