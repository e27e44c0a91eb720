"""Diagnostics against values computed independently."""

import math

import numpy as np
import pytest
from helpers import ar1 as _ar1
from scipy import integrate, stats

from ppl_genmodels import _arviz
from ppl_genmodels._arviz import az
from ppl_genmodels.diagnostics import (e_bfmi, engine_warnings, importance_diagnostics,
                                       importance_summary,
                                       mcmc_diagnostics, mcmc_warnings, psis_moments,
                                       reference_distances, tree_depth_saturation, verdict,
                                       vi_warnings)


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


def test_importance_summary_per_column_matches_direct_formulas():
    lw = np.random.default_rng(3).normal(-5, 0.7, size=(400, 3))  # (S, B)
    bounds = importance_summary(lw, axis=0)
    w = np.exp(lw)
    np.testing.assert_allclose(bounds["log_evidence"], np.log(w.mean(0)), rtol=1e-12)
    np.testing.assert_allclose(bounds["log_evidence_se"], w.std(0, ddof=1) / (20 * w.mean(0)),
                               rtol=1e-10)
    np.testing.assert_allclose(bounds["elbo"], lw.mean(0))
    np.testing.assert_allclose(bounds["elbo_se"], lw.std(0, ddof=1) / 20)
    for column in range(3):  # the 1-d summary of one column is the same
        one = importance_summary(lw[:, column])
        assert one["log_evidence"] == pytest.approx(bounds["log_evidence"][column], rel=1e-12)
    single = importance_summary(np.array([[-1.0, -2.0]]))  # S = 1: bound = the weight, no SE
    np.testing.assert_array_equal(single["log_evidence"], [-1.0, -2.0])
    assert np.isnan(single["log_evidence_se"]).all() and np.isnan(single["elbo_se"]).all()


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


# --- MCMC warnings -------------------------------------------------------------------------

def _mcmc(posterior, diverging=None, energy=None, tree_depth=None, max_tree_depth=None):
    """A hand-built MCMC result; ``config`` goes where the NUTS engine writes it."""
    import json

    chains, draws = next(iter(posterior.values())).shape[:2]
    stats_ = {"diverging": np.zeros((chains, draws), bool) if diverging is None else diverging}
    if energy is not None:
        stats_["energy"] = energy
    if tree_depth is not None:
        stats_["tree_depth"] = tree_depth
    idata = _arviz.from_dict(posterior=posterior, sample_stats=stats_)
    if max_tree_depth is not None:
        idata.posterior.attrs["config"] = json.dumps({"max_tree_depth": max_tree_depth})
    return idata




def test_iid_chains_raise_no_warning_and_figures_match_arviz():
    rng = np.random.default_rng(10)
    idata = _mcmc({"x": rng.standard_normal((4, 1000)), "y": rng.standard_normal((4, 1000, 2))},
                  energy=rng.standard_normal((4, 1000)),
                  tree_depth=np.full((4, 1000), 3), max_tree_depth=10)
    assert mcmc_warnings(idata) == []
    assert verdict(idata)[0] == "trust"
    d = mcmc_diagnostics(idata)
    rhat = _arviz.rhat(idata, method="rank")
    assert d["max_r_hat"] == pytest.approx(max(float(rhat["x"]), float(rhat["y"].max())))
    ess_tail = _arviz.ess(idata, method="tail")
    assert d["min_ess_tail"] == pytest.approx(min(float(ess_tail["x"]), float(ess_tail["y"].min())))
    assert d["min_e_bfmi"] == pytest.approx(float(np.min(_arviz.bfmi(idata))))
    assert d["divergences"] == 0 and d["tree_depth_saturation"] == 0


def test_shifted_chain_fires_r_hat_warning_naming_the_parameter():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 1000)) + np.array([[0.0], [0.3]])  # chain 1 sits 0.3 sd higher
    idata = _mcmc({"x": x, "y": rng.standard_normal((2, 1000))})
    r_hat = float(_arviz.rhat(idata, method="rank")["x"])
    assert 1.01 < r_hat < 1.05  # precondition: between the caution and do-not-trust limits
    warnings = mcmc_warnings(idata)
    assert len(warnings) == 1 and "R-hat" in warnings[0]
    assert f"x ({r_hat:.3f})" in warnings[0] and "y (" not in warnings[0]
    label, why = verdict(idata)
    assert label == "caution" and "R-hat" in why and "(x)" in why


def test_autocorrelated_chains_fire_ess_warnings():
    rng = np.random.default_rng(12)
    idata = _mcmc({"slow": _ar1(rng, 0.97, (2, 500)), "fast": rng.standard_normal((2, 500))})
    ess_bulk = float(_arviz.ess(idata, method="bulk")["slow"])
    assert ess_bulk < 200  # AR(1), rho 0.97: ESS about 1000 * 0.03 / 1.97
    warnings = mcmc_warnings(idata)
    bulk = [w for w in warnings if w.startswith("Bulk ESS")]
    assert len(bulk) == 1 and f"slow ({ess_bulk:.0f})" in bulk[0] and "fast" not in bulk[0]
    assert any(w.startswith("Tail ESS") for w in warnings)
    assert mcmc_diagnostics(idata)["min_ess_bulk"] == pytest.approx(ess_bulk)


def test_divergences_warn_per_chain_and_above_one_percent_do_not_trust():
    rng = np.random.default_rng(13)
    x = {"x": rng.standard_normal((2, 500))}
    div = np.zeros((2, 500), bool)
    div[1, [5, 50, 500 - 1]] = True  # 0.3% of transitions
    warnings = mcmc_warnings(_mcmc(x, diverging=div))
    assert len(warnings) == 1 and "3 of 1000" in warnings[0] and "chain 1: 3" in warnings[0]
    assert "chain 0" not in warnings[0]
    assert verdict(_mcmc(x, diverging=div))[0] == "caution"
    div[0, :20] = True  # 2.3%
    label, why = verdict(_mcmc(x, diverging=div))
    assert label == "do not trust" and why.startswith("2.3% divergent")


def test_low_e_bfmi_names_the_chain_and_matches_betancourt_formula():
    rng = np.random.default_rng(14)
    energy = np.stack([rng.standard_normal(1000),             # E-BFMI about 2
                       np.cumsum(rng.standard_normal(1000))])  # random walk: E-BFMI << 0.3
    idata = _mcmc({"x": rng.standard_normal((2, 1000))}, energy=energy)
    # Betancourt (2016), eq. 17: sum of squared differences over the sum of squared deviations
    by_hand = [np.sum(np.diff(e) ** 2) / np.sum((e - e.mean()) ** 2) for e in energy]
    np.testing.assert_allclose(e_bfmi(idata), by_hand, rtol=2e-3)  # ArviZ: means, not sums
    assert by_hand[0] > 1 and by_hand[1] < 0.05
    warnings = mcmc_warnings(idata)
    assert len(warnings) == 1 and warnings[0].startswith("Chain 1: E-BFMI")
    assert verdict(idata)[0] == "caution"


def test_tree_depth_saturation_from_run_config():
    rng = np.random.default_rng(15)
    depth = np.full((2, 500), 4)
    depth[1, :25] = 6  # 5% of chain 1 at the limit
    x = {"x": rng.standard_normal((2, 500))}
    idata = _mcmc(x, tree_depth=depth, max_tree_depth=6)
    np.testing.assert_allclose(tree_depth_saturation(idata), [0.0, 0.05])
    warnings = mcmc_warnings(idata)
    assert len(warnings) == 1 and "maximum tree depth 6" in warnings[0]
    assert "chain 1: 25 (5.0%)" in warnings[0]
    assert mcmc_diagnostics(idata)["tree_depth_saturation"] == pytest.approx(0.025)
    assert verdict(idata)[0] == "caution"
    assert mcmc_warnings(_mcmc(x, tree_depth=depth, max_tree_depth=7)) == []
    with pytest.raises(ValueError, match="records no max_tree_depth"):
        tree_depth_saturation(_mcmc(x, tree_depth=depth))
    with pytest.raises(ValueError, match="max_tree_depth must be >= 1"):
        tree_depth_saturation(idata, max_tree_depth=0)
    with pytest.raises(ValueError, match="needs sample_stats.tree_depth"):
        tree_depth_saturation(_mcmc(x))


def test_do_not_trust_reason_lists_every_check_that_fired():
    rng = np.random.default_rng(16)
    stuck = rng.standard_normal((2, 500)) + np.array([[0.0], [3.0]])
    depth = np.full((2, 500), 10)
    label, why = verdict(_mcmc({"x": stuck}, tree_depth=depth, max_tree_depth=10))
    assert label == "do not trust"
    assert why.startswith("max R-hat") and "max tree depth 10" in why and "bulk ESS" in why


def test_single_chain_mcmc_warns_that_r_hat_is_undefined():
    idata = _mcmc({"x": np.random.default_rng(17).standard_normal((1, 1000))})
    warnings = mcmc_warnings(idata)
    assert len(warnings) == 1 and "Only 1 chain" in warnings[0]
    with pytest.raises(ValueError, match="diverging"):
        mcmc_warnings(_arviz.from_dict(posterior={"x": np.zeros((2, 10))}))


# --- VI: k-hat and PSIS-corrected moments ------------------------------------------------

def test_psis_moments_recover_gaussian_target_within_monte_carlo_error():
    # proposal q = N(0, 1.5^2), target p = N(1, 1) known only up to a constant (log Z = -3)
    m, s_q, n = 1.0, 1.5, 4000
    z = np.random.default_rng(20).normal(0.0, s_q, size=n)
    lw = stats.norm.logpdf(z, m, 1.0) - 3.0 - stats.norm.logpdf(z, 0.0, s_q)
    table = psis_moments({"z": z, "z2": 2 * z + 1}, lw)

    # Asymptotic variances of self-normalized IS: E_q[(p/q)^2 (h - E_p h)^2] / n.
    def var(h):
        def f(t):
            return np.exp(2 * stats.norm.logpdf(t, m, 1) - stats.norm.logpdf(t, 0, s_q)) * h(t) ** 2

        return integrate.quad(f, m - 30, m + 30)[0] / n  # the integrand is < 1e-150 beyond

    se_mean = math.sqrt(var(lambda t: t - m))
    se_var = math.sqrt(var(lambda t: (t - m) ** 2 - 1.0))  # of the variance estimate
    assert table.at["z", "psis_mean"] == pytest.approx(m, abs=4 * se_mean)
    assert table.at["z", "psis_sd"] == pytest.approx(1.0, abs=4 * se_var / 2)  # delta method
    assert table.at["z", "psis_mcse_mean"] == pytest.approx(se_mean, rel=0.25)
    assert table.at["z2", "psis_mean"] == pytest.approx(2 * table.at["z", "psis_mean"] + 1)
    assert table.at["z2", "psis_sd"] == pytest.approx(2 * table.at["z", "psis_sd"])
    assert table.at["z", "k_hat"] < 0.5  # q wider than p: bounded weights
    # the same numbers straight from ArviZ's smoothed weights
    smoothed, k_hat = az.psislw(lw.copy())
    assert table.at["z", "psis_mean"] == pytest.approx(np.sum(np.exp(smoothed) * z), rel=1e-10)
    assert table.at["z", "k_hat"] == pytest.approx(float(k_hat))
    assert table.at["z", "psis_ess"] == pytest.approx(1 / np.sum(np.exp(2 * smoothed)), rel=1e-9)


def test_psis_moments_fix_a_shifted_guide_that_raw_draws_get_wrong():
    rng = np.random.default_rng(21)
    z = rng.normal(0.5, 1.2, size=4000)  # guide mean off by 0.5 sd
    lw = stats.norm.logpdf(z) - stats.norm.logpdf(z, 0.5, 1.2)
    row = psis_moments({"z": z}, lw).loc["z"]
    assert abs(z.mean()) > 0.4 and abs(row["psis_mean"]) < 4 * row["psis_mcse_mean"]


def test_psis_moments_reject_bad_input():
    z = np.zeros(10)
    with pytest.raises(ValueError, match="has 10 draws but there are 9 log weights"):
        psis_moments({"z": z}, np.zeros(9))
    with pytest.raises(ValueError, match="finite"):
        psis_moments({"z": z}, np.r_[np.zeros(9), np.nan])


def test_k_hat_exact_and_underdispersed_guides():
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 1.0, size=4000)
    exact = stats.norm.logpdf(z) - stats.norm.logpdf(z)  # q = p: all log weights equal
    assert importance_diagnostics(exact)["k_hat"] < 0.5
    z = rng.normal(0.0, 0.3, size=4000)
    narrow = stats.norm.logpdf(z) - stats.norm.logpdf(z, 0, 0.3)
    k_hat = psis_moments({"z": z}, narrow).at["z", "k_hat"]
    assert k_hat > 0.7 and k_hat == importance_diagnostics(narrow)["k_hat"]
    idata = _arviz.from_dict(posterior={"z": z[None]}, sample_stats={"log_weight": narrow[None]})
    (message,) = vi_warnings(idata)
    assert f"k-hat = {k_hat:.2f} > 0.7" in message
    assert engine_warnings(idata) == [message]
