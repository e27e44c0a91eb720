"""Annealed importance sampling with HMC on a model with closed-form evidence.

Factor analysis in the VAE's shape convention: z[n] ~ N(0, I_L), x[n] ~ N(W z[n] + b, s^2 I_D),
so p(x[n]) = N(b, W W^T + s^2 I) exactly. The proposal is deliberately poor (shifted 1.5
posterior sds, 0.7 times too narrow): plain importance sampling from it (T = 1) is several nats
low, AIS with enough steps recovers log p(x) within its standard error.
"""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_genmodels.learning import ais
from ppl_genmodels.learning.ais import ais_schedule, annealed_importance_sampling

L, D, SIGMA, B = 8, 16, 0.5, 8


class FactorAnalysis:
    """p(x, z) with exact evidence and posterior; ``guide(shift, widen)`` is a Gaussian proposal
    ``N(mu + shift * sd, (widen * sd)^2)`` around the exact posterior marginals."""

    def __init__(self, seed=1):
        g = torch.Generator().manual_seed(seed)
        self.W, self.b = torch.randn(D, L, generator=g), torch.randn(D, generator=g)
        z = torch.randn(B, L, generator=g)
        self.x = z @ self.W.T + self.b + SIGMA * torch.randn(B, D, generator=g)
        cov = self.W @ self.W.T + SIGMA ** 2 * torch.eye(D)
        self.log_evidence = dist.MultivariateNormal(self.b, cov).log_prob(self.x).numpy()
        post_cov = torch.linalg.inv(torch.eye(L) + self.W.T @ self.W / SIGMA ** 2)
        self.post_mean = (self.x - self.b) @ self.W @ post_cov.T / SIGMA ** 2
        self.post_sd = post_cov.diag().sqrt()
        self.post_chol = torch.linalg.cholesky(post_cov)

    def posterior_samples(self, num, seed=5):
        """``{"z": (num, B, L)}`` exact draws from p(z | x)."""
        g = torch.Generator().manual_seed(seed)
        return {"z": self.post_mean + torch.randn(num, B, L, generator=g) @ self.post_chol.T}

    def model(self, x):
        with pyro.plate("images", x.shape[-2], dim=-1):
            z = pyro.sample("z", dist.Normal(x.new_zeros(L), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T + self.b, SIGMA).to_event(1), obs=x)

    def guide(self, shift=1.5, widen=0.7, site="z", positive=False):
        loc, scale = self.post_mean + shift * self.post_sd, widen * self.post_sd

        def guide(x):  # the first x.shape[-2] images
            n = x.shape[-2]
            with pyro.plate("images", n, dim=-1):
                d = (dist.LogNormal if positive else dist.Normal)(loc[:n], scale)
                pyro.sample(site, d.to_event(1))
        return guide


FA = FactorAnalysis()


@pytest.fixture(scope="module")
def runs():
    """AIS at T = 1, 2, 10, 200 (M = 16 chains, pilot-adapted step sizes)."""
    return {t: annealed_importance_sampling(FA.model, FA.guide(), FA.x, num_steps=t, num_chains=16,
                                            seed=0) for t in (1, 2, 10, 200)}


def test_ais_recovers_exact_evidence(runs):
    r = runs[200]
    diff = r.log_evidence - FA.log_evidence
    assert r.log_weights.shape == (16, B) and np.isfinite(r.log_weights).all()
    # per image within 4 reported SEs plus a small bias allowance (AIS is low in expectation)
    assert (np.abs(diff) < 4 * r.log_evidence_se + 0.3).all(), (diff, r.log_evidence_se)
    se_mean = np.sqrt((r.log_evidence_se ** 2).sum()) / B
    assert abs(diff.mean()) < 3 * se_mean + 0.1, (diff.mean(), se_mean)
    assert 0.5 < r.acceptance.mean() < 0.9  # the pilot tuned steps towards 0.65


def test_plain_importance_sampling_is_measurably_low(runs):
    """Negative control: T = 1 is importance sampling from the poor proposal."""
    diff = runs[1].log_evidence - FA.log_evidence
    se_mean = np.sqrt((runs[1].log_evidence_se ** 2).sum()) / B
    assert diff.mean() < -3.0 and diff.mean() + 3 * se_mean < 0, (diff.mean(), se_mean)
    assert (runs[1].step_size == 0.5).all() and np.isnan(runs[1].acceptance).all()  # no transition


def test_estimate_rises_towards_the_truth_with_more_steps(runs):
    """E log Z^ rises with T; tested with margins where the expected rise (about 8 and 1.3
    nats here; the smallest over 16 data and chain seeds 0.38) exceeds the Monte Carlo noise,
    and no loss beyond the noise from 10 to 200."""
    means = [runs[t].log_evidence.mean() - FA.log_evidence.mean() for t in (1, 2, 10, 200)]
    se_10 = np.sqrt((runs[10].log_evidence_se ** 2).sum()) / B
    assert means[0] + 3.0 < means[1] and means[1] + 0.25 < means[2], means
    assert means[2] - 3 * se_10 < means[3], (means, se_10)
    var = [runs[t].log_weights.var(0).mean() for t in (1, 2, 10, 200)]
    assert var[0] > var[1] > var[2] > var[3], var  # the log weights concentrate


def test_online_adaptation_and_seed():
    a = annealed_importance_sampling(FA.model, FA.guide(), FA.x[:3], num_steps=100, num_chains=8,
                                     adapt="online", seed=3)
    again = annealed_importance_sampling(FA.model, FA.guide(), FA.x[:3], num_steps=100,
                                         num_chains=8, adapt="online", seed=3)
    np.testing.assert_array_equal(a.log_weights, again.log_weights)
    assert a.step_size.shape == (100, 3) and a.step_size[-1].min() > 0.6  # it adapted upwards
    diff = a.log_evidence - FA.log_evidence[:3]
    assert (np.abs(diff) < 4 * a.log_evidence_se + 0.5).all(), (diff, a.log_evidence_se)


def test_bdmc_sandwich(runs):
    """Reverse AIS from one exact posterior sample per image (Grosse et al. 2015) is a
    stochastic upper bound: with T = 200 the sandwich closes to a fraction of a nat around the
    truth; with T = 1 (no annealing) the upper bound is loose by many nats (negative control)."""
    exact = FA.posterior_samples(1)
    up = annealed_importance_sampling(FA.model, FA.guide(), FA.x, num_steps=200, num_chains=16,
                                      seed=1, posterior_samples=exact)
    assert up.reverse and up.log_weights.shape == (16, B)
    se = np.sqrt((up.log_evidence_se ** 2).sum()) / B
    low = runs[200].log_evidence.mean()
    assert up.log_evidence.mean() > FA.log_evidence.mean() - 3 * se
    assert abs(up.log_evidence.mean() - low) < 0.3, (up.log_evidence.mean(), low)
    loose = annealed_importance_sampling(FA.model, FA.guide(), FA.x, num_steps=1, num_chains=4,
                                         posterior_samples=FA.posterior_samples(4))
    assert loose.log_evidence.mean() > FA.log_evidence.mean() + 3.0


@pytest.mark.parametrize("samples, message", [
    ({"u": torch.zeros(1, B, L)}, "latent sites"),
    ({"z": torch.zeros(3, B, L)}, "expected"),
    ({"z": torch.zeros(B, L)}, "expected"),
])
def test_bad_posterior_samples(samples, message):
    with pytest.raises(ValueError, match=message):
        annealed_importance_sampling(FA.model, FA.guide(), FA.x, num_steps=2, num_chains=2,
                                     posterior_samples=samples)


@pytest.mark.parametrize("kind", ["sigmoid", "linear"])
@pytest.mark.parametrize("steps", [1, 2, 7, 100])
def test_schedule(kind, steps):
    betas = ais_schedule(steps, kind)
    assert betas.shape == (steps + 1,) and betas[0] == 0 and betas[-1] == 1
    assert (np.diff(betas) > 0).all()
    if kind == "sigmoid" and steps > 2:  # small steps at both ends, symmetric
        np.testing.assert_allclose(betas + betas[::-1], 1.0, atol=1e-12)
        assert np.diff(betas)[0] < 1 / steps and np.diff(betas)[steps // 2] > 1 / steps


@pytest.mark.parametrize("kwargs, message", [
    ({"num_steps": 0}, "num_steps"),
    ({"num_chains": 0}, "num_chains"),
    ({"num_leapfrog": 1.5}, "num_leapfrog"),
    ({"step_size": -0.1}, "step_size"),
    ({"schedule": "cosine"}, "schedule"),
    ({"adapt": "dual"}, "adapt"),
    ({"target_accept": 1.0}, "target_accept"),
    ({"jitter": 1.0}, "jitter"),
    ({"x": torch.zeros(D)}, "x must be"),
    ({"x": torch.full((2, D), float("nan"))}, "NaN"),
])
def test_bad_settings_refused_before_work(kwargs, message, monkeypatch):
    def refuse(*args, **kw):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(ais, "_latent_sites", refuse)
    kwargs = {"x": FA.x, **kwargs}
    with pytest.raises(ValueError, match=message):
        annealed_importance_sampling(FA.model, FA.guide(), **kwargs)


@pytest.mark.parametrize("guide, message", [
    (FA.guide(site="u"), "latent sites"),
    (FA.guide(positive=True), "real-valued"),
])
def test_guide_must_match_the_model(guide, message):
    with pytest.raises(ValueError, match=message):
        annealed_importance_sampling(FA.model, guide, FA.x, num_steps=2, num_chains=2)


@pytest.mark.slow
def test_vae_with_flow_proposal_agrees_with_a_long_iw_bound():
    """A 3-latent Bernoulli VAE with an IAF encoder (non-Gaussian posterior, flow proposal whose
    log density needs the inverse): AIS and the IW bound with S = 20000 agree per image."""
    from ppl_genmodels.data import load_image_dataset
    from ppl_genmodels.learning import log_likelihood, train

    run = train("vae", "digits", method="svi", epochs=2, batch_size=50, lr=3e-3, num_train=300,
                model_kwargs={"latent_dim": 3, "hidden": 20, "guide": "iaf"}, progress=False)
    x = torch.as_tensor(load_image_dataset("digits").test_subset(4)[0], dtype=torch.float32)
    r = annealed_importance_sampling(run.model.model, run.guide, x, num_steps=200, num_chains=16)
    torch.manual_seed(0)
    iw = log_likelihood(run.model.model, run.guide, x, num_samples=20000)
    tol = 4 * np.sqrt(r.log_evidence_se ** 2 + iw.per_image_se ** 2) + 0.1
    assert (np.abs(r.log_evidence - iw.per_image) < tol).all(), (r.log_evidence, iw.per_image)
