"""Mean-field CAVI for the conjugate Bayesian Gaussian mixture (ppl_genmodels.infer.cavi).

Checks: the ELBO never decreases; the closed-form ELBO equals a Monte Carlo estimate from
Pyro's own log densities; on well-separated data CAVI equals the exact conjugate posterior
given the (certain) assignments; the engine's draws match q; NUTS agreement (slow); bad input.
"""

import numpy as np
import pytest
import torch
from pyro import poutine

from ppl_genmodels import compare
from ppl_genmodels.infer import CAVI, get_engine
from ppl_genmodels.infer.cavi import cavi_fit, mixture_elbo
from ppl_genmodels.models import bayes_gauss_mix, normal_normal
from ppl_genmodels.models.bayes_gauss_mix import ConjugateMixture

Y = bayes_gauss_mix.load_data()["y"].double()


def _separated(seed=0, n=(60, 40), locs=(-10.0, 10.0)):
    rng = np.random.default_rng(seed)
    return torch.tensor(np.concatenate([rng.normal(locs[0], 1.0, n[0]), rng.normal(locs[1], 1.5, n[1])]))


@pytest.mark.parametrize("init,seed,k", [("random", 0, 2), ("random", 1, 2), ("random", 2, 3),
                                         ("kmeans", 0, 2), ("kmeans", 3, 4)])
def test_cavi_elbo_never_decreases(init, seed, k):
    q = cavi_fit(ConjugateMixture(num_components=k), Y, max_iter=60, tol=1e-14, init=init, seed=seed)
    steps = np.diff(q.elbo)
    assert len(steps) >= 5
    assert steps.min() >= -1e-9 * abs(q.elbo[-1]), steps.min()
    assert q.elbo[-1] > q.elbo[0]


def _mc_elbo(prior, q, y, num_samples, seed):
    """E_q[log p(y, a, weights, precisions, locs) - log q(...)] by Pyro's log densities."""
    torch.manual_seed(seed)
    r = q.responsibilities
    values = []
    for _ in range(num_samples):
        with poutine.trace() as tq:
            q.guide(y)
        assignment = torch.distributions.Categorical(r).sample()
        latents = {k: tq.trace.nodes[k]["value"] for k in ("weights", "precisions", "locs")}
        latents["assignment"] = assignment
        tp = poutine.trace(poutine.condition(prior, latents)).get_trace(y)
        log_q = tq.trace.log_prob_sum() + torch.distributions.Categorical(r).log_prob(assignment).sum()
        values.append(float(tp.log_prob_sum() - log_q))
    values = np.asarray(values)
    return values.mean(), values.std(ddof=1) / np.sqrt(num_samples)


@pytest.mark.parametrize("perturb", [False, True])
def test_closed_form_elbo_equals_monte_carlo_of_pyros_log_densities(perturb):
    prior = ConjugateMixture()
    y = Y[:120]
    q = cavi_fit(prior, y, max_iter=100)
    if perturb:  # another member of the family: the closed form must follow it
        q = type(q)(q.responsibilities.roll(1, 0), q.alpha * 2, q.m + 0.5, q.beta, q.a, q.b * 1.5,
                    q.elbo, q.converged)
    closed = mixture_elbo(prior, q.responsibilities, {"alpha": q.alpha, "m": q.m, "beta": q.beta,
                                                      "a": q.a, "b": q.b}, y)
    mean, se = _mc_elbo(prior, q, y, 250, seed=1)
    assert abs(mean - closed) < 4 * se + 1e-6, (mean, se, closed)
    if perturb:  # and it is worse than the fitted q
        assert closed < q.elbo[-1] - 1.0


def test_cavi_equals_exact_conjugate_posterior_on_separated_data():
    """Components 20 sds apart: the assignments are certain, so the exact posterior is the
    conjugate Dirichlet x Normal-Gamma update with the true labels (Bishop 2.141-2.158), and
    mean-field is exact. Negative control: a wrong label split does not match."""
    prior = ConjugateMixture(num_components=2, alpha0=1.0, m0=0.0, beta0=0.01, a0=1.0, b0=1.0)
    y = _separated()
    q = cavi_fit(prior, y, max_iter=200)
    order = np.argsort(q.m.numpy())
    mean, sd = q.mean(), q.sd()

    def exact(labels):
        out = {"locs": [], "locs_sd": [], "precisions": [], "weights": []}
        for part in (y[labels == 0], y[labels == 1]):
            n, ybar = len(part), float(part.mean())
            beta = prior.beta0 + n
            m = (prior.beta0 * prior.m0 + n * ybar) / beta
            a = prior.a0 + n / 2
            b = prior.b0 + 0.5 * (float(((part - ybar) ** 2).sum()) + prior.beta0 * n / beta * (ybar - prior.m0) ** 2)
            out["locs"].append(m)
            out["locs_sd"].append(np.sqrt(b / (beta * (a - 1))))
            out["precisions"].append(a / b)
            out["weights"].append((prior.alpha0 + n) / (2 * prior.alpha0 + len(y)))
        return out

    truth = exact((torch.arange(len(y)) >= 60).long())
    np.testing.assert_allclose(mean["locs"][order], truth["locs"], rtol=1e-6)
    np.testing.assert_allclose(sd["locs"][order], truth["locs_sd"], rtol=1e-6)
    np.testing.assert_allclose(mean["precisions"][order], truth["precisions"], rtol=1e-6)
    np.testing.assert_allclose(mean["weights"][order], truth["weights"], rtol=1e-6)
    wrong = exact((torch.arange(len(y)) >= 50).long())
    assert not np.allclose(mean["locs"][order], wrong["locs"], rtol=1e-3)


def test_engine_draws_match_q_and_run_in_compare():
    posterior = bayes_gauss_mix.make_posterior(y=Y[:200].float())
    engine = get_engine("cavi", num_draws=2000)
    comparison = compare(posterior, engines=[engine], seed=0, progress=False)
    idata = comparison.idata["cavi"]
    q = cavi_fit(posterior.model, posterior.data["y"], engine.max_iter, engine.tol, engine.init, 0)
    draws = idata.posterior["locs"].values.reshape(-1, 2)
    se = q.sd()["locs"] / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(0) - q.mean()["locs"]) < 4 * se)
    np.testing.assert_allclose(draws.std(0), q.sd()["locs"], rtol=0.1)
    np.testing.assert_allclose(idata.sample_stats["elbo"].values, q.elbo)
    assert idata.attrs["converged"] == 1
    row = comparison.engine_table.loc["cavi"]
    assert np.isfinite(row["k_hat"]) and np.isfinite(row["elbo"])


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="cavi needs the conjugate Bayesian Gaussian mixture"):
        CAVI().validate(normal_normal.make_posterior())
    with pytest.raises(ValueError, match="alpha0 must be a finite number > 0"):
        ConjugateMixture(alpha0=-1.0)
    with pytest.raises(ValueError, match="num_components must be an integer >= 1"):
        ConjugateMixture(num_components=2.5)
    with pytest.raises(ValueError, match="assignments must be one of"):
        ConjugateMixture(assignments="gibbs")
    with pytest.raises(ValueError, match="init must be one of"):
        CAVI(init="spectral")
    with pytest.raises(ValueError, match="max_iter"):
        CAVI(max_iter=0)
    with pytest.raises(ValueError, match=r"1-D data y of shape \(N,\)"):
        cavi_fit(ConjugateMixture(), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        cavi_fit(ConjugateMixture(), torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="unknown setting"):
        get_engine("cavi", num_steps=10)


@pytest.mark.slow
def test_cavi_means_near_nuts_and_under_dispersed():
    """Same posterior (marginal assignments, so NUTS vmaps): after ordering the components,
    CAVI's means are within MC tolerance of NUTS's; its sds are not larger (mean field)."""
    from ppl_genmodels.infer import NUTS

    model = ConjugateMixture(assignments="marginal")
    posterior = bayes_gauss_mix.make_posterior(model=model, y=Y[:300].float())
    nuts = NUTS(num_samples=400, warmup_steps=300, num_chains=4).run(posterior, 0, progress=False)
    locs = nuts.idata.posterior["locs"].values.reshape(-1, 2)
    locs = np.sort(locs, axis=-1)  # undo label switching
    q = cavi_fit(model, posterior.data["y"])
    order = np.argsort(q.m.numpy())
    sd = locs.std(0)
    assert np.all(np.abs(q.mean()["locs"][order] - locs.mean(0)) < 0.3 * sd + 4 * sd / np.sqrt(400))
    assert np.all(q.sd()["locs"][order] < 1.1 * sd)


@pytest.mark.filterwarnings("ignore:TraceEnum_ELBO found no sample sites")
def test_marginal_and_enumerated_forms_define_the_same_posterior():
    """log p(y, globals) with the assignments summed out by Pyro's enumeration equals the
    MixtureSameFamily form at random points (and differs at another point: a control)."""
    from pyro.infer import TraceEnum_ELBO

    y = Y[:50].float()
    values = []
    for assignments in ("enumerate", "marginal"):
        model = ConjugateMixture(assignments=assignments)
        torch.manual_seed(0)
        out = []
        for _ in range(3):
            point = {"weights": torch.distributions.Dirichlet(torch.ones(2)).sample(),
                     "precisions": torch.rand(2) + 0.5, "locs": torch.randn(2) * 3}
            conditioned = poutine.condition(model, point)
            out.append(-TraceEnum_ELBO(max_plate_nesting=1).loss(conditioned, lambda y: None, y))
        values.append(out)
    np.testing.assert_allclose(values[0], values[1], rtol=1e-5)
    assert abs(values[0][0] - values[0][1]) > 1.0
