"""Diagnostics against values computed independently."""

import math

import numpy as np
import pytest
from scipy import stats

from ppl_genmodels import _arviz
from ppl_genmodels.diagnostics import importance_diagnostics, reference_distances, verdict


def test_importance_diagnostics_exact_guide():
    # q = p exactly: every log weight equals log p(x); bounds are exact, k-hat tiny.
    lw = np.full(500, -3.2) + 1e-9 * np.random.default_rng(0).standard_normal(500)
    d = importance_diagnostics(lw)
    assert d["elbo"] == pytest.approx(-3.2) and d["log_evidence"] == pytest.approx(-3.2)
    assert d["k_hat"] < 0.5


def test_importance_diagnostics_underdispersed_guide_has_large_k_hat():
    # target N(0, 1), guide N(0, 0.3^2): weights p/q have a heavy tail
    rng = np.random.default_rng(1)
    z = rng.normal(0, 0.3, size=4000)
    lw = stats.norm.logpdf(z, 0, 1) - stats.norm.logpdf(z, 0, 0.3)
    d = importance_diagnostics(lw)
    assert d["k_hat"] > 0.7
    assert d["log_evidence"] < 0.0 + 4 * d["log_evidence_se"] + 0.05  # log Z = 0
    assert d["elbo"] < d["log_evidence"]


def test_log_evidence_matches_direct_formula():
    lw = np.random.default_rng(2).normal(-10, 1, size=1000)
    assert importance_diagnostics(lw)["log_evidence"] == pytest.approx(
        np.log(np.mean(np.exp(lw))), rel=1e-12)


def test_reference_distances_against_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1, 2, 3000), rng.normal(0, 1, 3000)
    table = reference_distances({"x": a}, reference_draws={"x": b})
    assert table.loc["x", "std_mean_error"] == pytest.approx(abs(a.mean() - b.mean()) / b.std(ddof=1))
    assert table.loc["x", "sd_ratio"] == pytest.approx(a.std(ddof=1) / b.std(ddof=1))
    assert table.loc["x", "wasserstein"] == pytest.approx(stats.wasserstein_distance(a, b))


def test_verdict_flags_stuck_chains_and_bad_guides():
    rng = np.random.default_rng(4)
    good = rng.standard_normal((2, 500))
    stuck = good + np.array([[0.0], [3.0]])  # chains disagree: R-hat >> 1.05
    stats_ok = {"diverging": np.zeros((2, 500), bool)}
    assert verdict(_arviz.from_dict(posterior={"x": good}, sample_stats=stats_ok))[0] == "trust"
    label, why = verdict(_arviz.from_dict(posterior={"x": stuck}, sample_stats=stats_ok))
    assert label == "do not trust" and "R-hat" in why
    few_div = {"diverging": np.zeros((2, 500), bool)}
    few_div["diverging"][0, 10] = True
    assert verdict(_arviz.from_dict(posterior={"x": good}, sample_stats=few_div))[0] == "caution"

    z = rng.normal(0, 0.3, size=(1, 2000))
    lw = stats.norm.logpdf(z) - stats.norm.logpdf(z, 0, 0.3)
    label, why = verdict(_arviz.from_dict(posterior={"x": z}, sample_stats={"log_weight": lw}))
    assert label == "do not trust" and "k-hat" in why
