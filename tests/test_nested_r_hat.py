"""Nested R-hat (Margossian et al. 2024) against its defining formula, on many short chains,
with a stuck-superchain negative control, and as the NUTS engine reports it."""

import json
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
from helpers import ar1 as _ar1
import torch

from ppl_genmodels import Posterior, _arviz
from ppl_genmodels.diagnostics import (mcmc_diagnostics, mcmc_warnings, nested_r_hat,
                                       superchain_ids, verdict)
from ppl_genmodels.infer import NUTS




def _by_the_formula(x, ids):
    """Eqs. 4-6 of Margossian et al. (2024), written out with loops."""
    K = sorted(set(ids))
    chains = {k: [x[c] for c in range(len(ids)) if ids[c] == k] for k in K}
    super_means = [np.mean([c.mean() for c in chains[k]]) for k in K]
    overall = np.mean(super_means)
    B = sum((m - overall) ** 2 for m in super_means) / (len(K) - 1)
    W = 0.0
    for k, mk in zip(K, super_means):
        M = len(chains[k])
        between = sum((c.mean() - mk) ** 2 for c in chains[k]) / (M - 1) if M > 1 else 0.0
        within = np.mean([((c - c.mean()) ** 2).sum() / (len(c) - 1) for c in chains[k]])
        W += (between + within) / len(K)
    return math.sqrt(1 + B / W)


@pytest.mark.parametrize("K,M,N", [(2, 2, 5), (4, 3, 10), (3, 1, 50), (8, 16, 4)])
def test_identity_estimator_matches_the_defining_formula(K, M, N):
    rng = np.random.default_rng(K * 100 + M)
    x = rng.standard_normal((K * M, N)) + rng.normal(0, 0.3, size=(K * M, 1))
    ids = np.repeat(np.arange(K), M)
    assert nested_r_hat(x, ids, method="identity") == pytest.approx(_by_the_formula(x, ids), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_short_well_mixed_chains_pass_where_classic_r_hat_fails(seed):
    # 256 stationary AR(1) chains of 20 draws (rho = 0.9): each chain is far too short for
    # classic R-hat, but the ensemble estimates are fine, which nested R-hat sees.
    rng = np.random.default_rng(seed)
    x = _ar1(rng, 0.9, (256, 20))
    ids = np.repeat(np.arange(4), 64)
    with pytest.warns(UserWarning, match="More chains"):
        classic = float(_arviz.rhat(_arviz.from_dict(posterior={"x": x}), method="rank")["x"])
    assert classic > 1.05
    assert nested_r_hat(x, ids) < 1.01


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_a_superchain_in_another_mode_fails(shift):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4 * 16, 20))
    x[:16] += shift  # superchain 0 sits elsewhere
    ids = np.repeat(np.arange(4), 16)
    assert nested_r_hat(x, ids) > 1.05


@pytest.mark.parametrize("draws,ids,message", [
    (np.zeros((4, 10, 2)), [0, 0, 1, 1], "chain, draw"),
    (np.zeros((4, 10)), [0, 0, 1], "one entry per chain"),
    (np.zeros((4, 10)), [0, 0, 0, 0], "at least 2 superchains"),
    (np.zeros((4, 10)), [0, 0, 0, 1], "same number of chains"),
    (np.ones((4, 3)), [0, 0, 1, 1], "4 draws"),
])
def test_bad_input_is_named(draws, ids, message):
    x = draws + np.random.default_rng(0).standard_normal(draws.shape)
    with pytest.raises(ValueError, match=message):
        nested_r_hat(x, ids)


def _mcmc(x, num_superchains):
    idata = _arviz.from_dict(posterior={"x": x},
                             sample_stats={"diverging": np.zeros(x.shape, bool)})
    idata.posterior.attrs.update(num_superchains=num_superchains,
                                 config=json.dumps({"num_superchains": num_superchains}))
    return idata


def test_warnings_and_verdict_use_nested_r_hat_for_superchain_runs():
    rng = np.random.default_rng(3)
    good = _ar1(rng, 0.5, (64, 40))
    assert superchain_ids(_mcmc(good, 4)).tolist() == np.repeat(np.arange(4), 16).tolist()
    assert superchain_ids(_mcmc(good, 0)) is None
    label, why = verdict(_mcmc(good, 4))
    assert "nested R-hat" in why and "nested R-hat" not in " ".join(mcmc_warnings(_mcmc(good, 4)))
    d = mcmc_diagnostics(_mcmc(good, 4))
    assert d["max_r_hat_nested"] < 1.01 and np.isnan(mcmc_diagnostics(_mcmc(good, 0))["max_r_hat_nested"])
    bad = good.copy()
    bad[:16] += 3.0
    warnings = mcmc_warnings(_mcmc(bad, 4))
    assert any("nested R-hat" in w and "x (" in w for w in warnings)
    assert verdict(_mcmc(bad, 4))[0] == "do not trust"


def _gaussian():
    pyro.sample("z", dist.Normal(torch.tensor([1.0, -1.0]), torch.tensor([1.0, 2.0])).to_event(1))


def test_nuts_superchains_start_together_and_report_nested_r_hat():
    nuts = NUTS(num_samples=40, warmup_steps=150, num_chains=16, num_superchains=4)
    q = nuts._initial_points(lambda q: (q.square().sum(-1), q), 1, 16, 2, torch.float64,
                             torch.Generator().manual_seed(0), torch.device("cpu"))[0][0]
    for k in range(4):
        assert torch.equal(q[4 * k], q[4 * k + 3]) and not torch.equal(q[4 * k], q[(4 * k + 4) % 16])
    idata = nuts.run(Posterior(_gaussian, None, {}), seed=0, progress=False).idata
    assert idata.posterior.attrs["num_superchains"] == 4
    d = mcmc_diagnostics(idata)
    assert d["max_r_hat_nested"] < 1.01


@pytest.mark.parametrize("chains,superchains", [(8, 3), (8, 1), (8, 8), (8, True), (8, 2.0)])
def test_nuts_refuses_bad_superchains(chains, superchains):
    with pytest.raises(ValueError, match="num_superchains"):
        NUTS(num_chains=chains, num_superchains=superchains).validate(Posterior(_gaussian, None, {}))
