"""Diagnostics shared by every engine: ArviZ summaries, MCMC warnings, importance weights,
distances.

Sources: ``arviz.summary`` (rank-normalized R-hat, bulk/tail ESS and MCSE; Vehtari et
al. 2021), ``arviz.bfmi`` (E-BFMI; Betancourt 2016), Stan's sampler warnings (thresholds
R-hat 1.01, ESS 100 per chain, E-BFMI 0.3, any divergence or maximum tree depth), PSIS
k-hat and Pareto-smoothed weights (Vehtari et al. 2024, ``arviz.psislw``) read as in Yao
et al. 2018, the importance-weighted log-evidence bound (Burda et al. 2016), and the
1-Wasserstein distance (``scipy.stats.wasserstein_distance``).
"""

from __future__ import annotations

import json
import math
from typing import Mapping, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from . import _arviz
from .reference import Reference

__all__ = [
    "flat_draws",
    "parameter_summary",
    "importance_diagnostics",
    "psis_moments",
    "reference_distances",
    "reference_check",
    "e_bfmi",
    "tree_depth_saturation",
    "mcmc_diagnostics",
    "mcmc_warnings",
    "vi_warnings",
    "engine_warnings",
    "engine_diagnostics",
    "run_attrs",
    "verdict",
    "R_HAT_MAX",
    "MIN_ESS_PER_CHAIN",
    "MIN_E_BFMI",
    "K_HAT_GOOD",
    "K_HAT_MAX",
]

# Stan's / Vehtari et al. 2021's warning thresholds, and Yao et al. 2018's for k-hat.
R_HAT_MAX = 1.01
MIN_ESS_PER_CHAIN = 100
MIN_E_BFMI = 0.3
K_HAT_GOOD = 0.5
K_HAT_MAX = 0.7
# "do not trust" for MCMC: chains clearly disagree, or divergences are not isolated.
R_HAT_FAIL = 1.05
DIVERGENT_FRACTION_FAIL = 0.01
_MAX_NAMED = 4  # parameters named per warning, worst first


def run_attrs(idata) -> dict:
    """The engine ``attrs`` of a result (``config`` decoded from JSON)."""
    attrs = dict(idata.posterior.attrs)
    if "config" in attrs and isinstance(attrs["config"], str):
        attrs["config"] = json.loads(attrs["config"])
    return attrs


def flat_draws(idata) -> dict[str, np.ndarray]:
    """Scalar parameters of ``idata.posterior``, named as ``az.summary`` names them.

    :returns: name -> ``(chain, draw)`` array, e.g. ``"theta[3]"``, ``"z[1, 0]"``.
    """
    out = {}
    for var, da in idata.posterior.data_vars.items():
        values = np.asarray(da.values, dtype=np.float64)
        site_shape = values.shape[2:]
        if not site_shape:
            out[var] = values
            continue
        for idx in np.ndindex(*site_shape):
            out[f"{var}[{', '.join(map(str, idx))}]"] = values[(slice(None), slice(None), *idx)]
    return out


def parameter_summary(idata) -> pd.DataFrame:
    """``az.summary`` of the posterior: mean, sd, MCSE, bulk/tail ESS, R-hat per parameter.

    R-hat is NaN for single-chain results (the VI engines' iid draws).
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]hape validation failed.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        table = _arviz.summary(idata, kind="all", round_to="none")
    columns = ["mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]
    return table[columns]


def _log_weights(log_weights) -> np.ndarray:
    lw = np.asarray(log_weights, dtype=np.float64).ravel()
    if lw.size < 2 or not np.all(np.isfinite(lw)):
        raise ValueError(f"log_weights must hold at least 2 finite values (got {lw.size} "
                         f"values, {int(np.sum(~np.isfinite(lw)))} non-finite)")
    return lw


def importance_diagnostics(log_weights: np.ndarray) -> dict[str, float]:
    """Evidence bounds and PSIS k-hat from log weights log p(x, z) - log q(z) of iid z ~ q.

    :param log_weights: ``(num_draws,)`` nats (any shape; flattened).
    :returns: ``elbo`` = mean log weight and ``elbo_se`` (its standard error);
        ``log_evidence`` = log mean exp(log weight), the importance-weighted bound with
        ``num_draws`` samples, and ``log_evidence_se`` (delta method); ``k_hat``: Pareto
        shape of the weights (Yao et al. 2018: < 0.5 good, 0.5-0.7 usable, > 0.7 poor).
        All in nats except ``k_hat``.
    :raises ValueError: fewer than 2 or non-finite log weights.
    """
    lw = _log_weights(log_weights)
    n = lw.size
    w = np.exp(lw - lw.max())
    log_evidence = lw.max() + math.log(w.mean())
    _, k_hat = _arviz.psislw(lw)
    return {
        "elbo": float(lw.mean()),
        "elbo_se": float(lw.std(ddof=1) / math.sqrt(n)),
        "log_evidence": float(log_evidence),
        "log_evidence_se": float(w.std(ddof=1) / (math.sqrt(n) * w.mean())),
        "k_hat": k_hat,
    }


def psis_moments(draws: Mapping[str, np.ndarray], log_weights: np.ndarray) -> pd.DataFrame:
    """PSIS-corrected posterior mean and sd of each parameter from iid guide draws.

    Self-normalized importance sampling with Pareto-smoothed weights ``w`` (normalized to
    sum to 1): ``psis_mean = sum w_i z_i``, ``psis_sd = sqrt(sum w_i (z_i - psis_mean)^2)``.
    ``psis_mcse_mean = sqrt(sum w_i^2 (z_i - psis_mean)^2)`` is the usual self-normalized IS
    standard error (it ignores the smoothing's small bias). The estimates are only reliable
    when ``k_hat`` < 0.7 (Vehtari et al. 2024, sec. 3 and 5; Yao et al. 2018).

    Source: Vehtari, Simpson, Gelman, Yao & Gabry (2024), "Pareto smoothed importance
    sampling", JMLR 25(72); smoothed weights from ``arviz.psislw`` (``reff=1``: iid draws).

    :param draws: name -> draws of z ~ q, any shape with ``log_weights.size`` elements in
        the same (chain, draw) order, e.g. :func:`flat_draws` of a VI result.
    :param log_weights: log p(x, z) - log q(z) per draw, nats (any shape; flattened).
    :returns: rows per parameter, columns ``psis_mean``, ``psis_sd``, ``psis_mcse_mean``
        (parameter units), ``psis_ess`` = 1 / sum w_i^2 (draws) and ``k_hat``.
    :raises ValueError: non-finite or fewer than 2 log weights, or a parameter whose number
        of draws differs from the number of log weights.
    """
    lw = _log_weights(log_weights)
    smoothed, k_hat = _arviz.psislw(lw)
    w = np.exp(smoothed - np.max(smoothed))
    w /= w.sum()  # psislw normalizes already; again so rounding cannot leave sum != 1
    ess = 1.0 / float(np.sum(w**2))
    rows = {}
    for name, values in draws.items():
        z = np.asarray(values, dtype=np.float64).ravel()
        if z.size != lw.size:
            raise ValueError(f"parameter {name!r} has {z.size} draws but there are {lw.size} "
                             "log weights; they must pair up draw by draw")
        mean = float(np.sum(w * z))
        dev2 = (z - mean) ** 2
        rows[name] = {"psis_mean": mean, "psis_sd": math.sqrt(float(np.sum(w * dev2))),
                      "psis_mcse_mean": math.sqrt(float(np.sum(w**2 * dev2))),
                      "psis_ess": ess, "k_hat": k_hat}
    return pd.DataFrame.from_dict(
        rows, orient="index", columns=["psis_mean", "psis_sd", "psis_mcse_mean", "psis_ess", "k_hat"])


def reference_distances(
    draws: Mapping[str, np.ndarray],
    reference: Reference | None = None,
    reference_draws: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Distance of each parameter's draws to a reference posterior.

    Give ``reference`` (moments, optional draws) or ``reference_draws`` (e.g. NUTS).

    :param draws: name -> draws (any shape; flattened).
    :returns: rows per parameter present on both sides, columns ``std_mean_error`` =
        |mean - ref_mean| / ref_sd, ``sd_ratio`` = sd / ref_sd, ``wasserstein`` (W1 in the
        parameter's units; NaN without reference draws).
    :raises ValueError: neither ``reference`` nor ``reference_draws`` given.
    """
    if reference is None and reference_draws is None:
        raise ValueError("give a reference or reference_draws")
    rows = {}
    for name, values in draws.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        if reference is not None:
            if name not in reference.mean:
                continue
            ref_mean, ref_sd = reference.mean[name], reference.sd[name]
            ref_draws = reference.draws.get(name) if reference.draws else None
        else:
            if name not in reference_draws:
                continue
            ref_draws = np.asarray(reference_draws[name], dtype=np.float64).ravel()
            ref_mean, ref_sd = ref_draws.mean(), ref_draws.std(ddof=1)
        rows[name] = {
            "std_mean_error": abs(values.mean() - ref_mean) / ref_sd,
            "sd_ratio": values.std(ddof=1) / ref_sd,
            "wasserstein": stats.wasserstein_distance(values, ref_draws)
            if ref_draws is not None else np.nan,
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def reference_check(idata, reference: Reference, num_sigmas: float = 5.0,
                    summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """Inference Gym's test of posterior means against a reference, per scalar parameter.

    Passes when ``|mean - ref_mean| < num_sigmas * sqrt(mcse_mean**2 + ref_mcse**2)``, where
    ``mcse_mean`` is ArviZ's Monte Carlo standard error of this run's mean (sd / sqrt(ESS)
    for iid draws) and ``ref_mcse`` the reference's (0 for closed forms). Source: TFP
    Inference Gym, ``inference_gym/targets`` ground-truth tests (``5 * sqrt(var/ess +
    ref_mcse**2)``); Vehtari et al. 2021 for the MCSE.

    :param idata: an engine's result.
    :param reference: the reference posterior.
    :param summary: :func:`parameter_summary` of ``idata`` if already computed.
    :returns: rows per parameter in both, columns ``mean``, ``ref_mean``, ``abs_error``,
        ``tolerance`` (parameter units) and ``passed`` (bool).
    :raises ValueError: no parameter of ``idata`` is in ``reference``.
    """
    summary = parameter_summary(idata) if summary is None else summary
    names = [n for n in summary.index if n in reference.mean]
    if not names:
        raise ValueError(f"no parameter of the result ({list(summary.index)[:5]}...) is in the "
                         f"reference ({reference.parameters[:5]}...)")
    rows = {}
    for name in names:
        mean, mcse = float(summary.at[name, "mean"]), float(summary.at[name, "mcse_mean"])
        ref_mcse = float(reference.mcse_mean.get(name, 0.0))
        tol = num_sigmas * math.sqrt(mcse**2 + ref_mcse**2)
        err = abs(mean - reference.mean[name])
        rows[name] = {"mean": mean, "ref_mean": reference.mean[name], "abs_error": err,
                      "tolerance": tol, "passed": bool(err < tol)}
    return pd.DataFrame.from_dict(rows, orient="index")


def _sample_stats(idata):
    return idata.sample_stats if "sample_stats" in idata.groups() else {}


def _is_mcmc(idata) -> bool:
    return "diverging" in _sample_stats(idata)


def e_bfmi(idata) -> np.ndarray:
    """Energy Bayesian fraction of missing information per chain.

    ``E-BFMI = mean((E_n - E_{n-1})^2) / var(E)`` over a chain's energies; below 0.3 the
    momentum resampling explores the energy distribution poorly (Betancourt 2016, "Diagnosing
    suboptimal cotangent disintegrations in Hamiltonian Monte Carlo"; ``arviz.bfmi``).

    :param idata: a result with ``sample_stats.energy`` of dims ``(chain, draw)`` (nats).
    :returns: ``(chain,)`` dimensionless.
    :raises ValueError: no ``energy`` in ``sample_stats``, or fewer than 2 draws per chain.
    """
    sample_stats = _sample_stats(idata)
    if "energy" not in sample_stats:
        raise ValueError("E-BFMI needs sample_stats.energy (a Hamiltonian MC result)")
    if sample_stats["energy"].sizes.get("draw", 0) < 2:
        raise ValueError("E-BFMI needs at least 2 draws per chain")
    return np.atleast_1d(np.asarray(_arviz.bfmi(idata), dtype=np.float64))


def tree_depth_saturation(idata, max_tree_depth: int | None = None) -> np.ndarray:
    """Fraction of each chain's post-warm-up transitions that used every allowed tree doubling.

    ``tree_depth`` in a result counts the doublings a NUTS transition made; a transition
    with ``tree_depth >= max_tree_depth`` was cut off before its trajectory turned round,
    which costs efficiency (Stan's "exceeded the maximum treedepth" warning; Hoffman &
    Gelman 2014).

    :param idata: a result with ``sample_stats.tree_depth`` of dims ``(chain, draw)``.
    :param max_tree_depth: the sampler's limit; default: ``max_tree_depth`` of the run's
        ``config`` attribute (:class:`ppl_genmodels.infer.NUTS` writes it).
    :returns: ``(chain,)`` fractions in [0, 1].
    :raises ValueError: no ``tree_depth`` statistic, or no limit given nor recorded, or a
        limit < 1.
    """
    sample_stats = _sample_stats(idata)
    if "tree_depth" not in sample_stats:
        raise ValueError("tree-depth saturation needs sample_stats.tree_depth (a NUTS result)")
    if max_tree_depth is None:
        config = run_attrs(idata).get("config") or {}
        max_tree_depth = config.get("max_tree_depth") if isinstance(config, dict) else None
        if max_tree_depth is None:
            raise ValueError("the run's config records no max_tree_depth; pass max_tree_depth")
    if int(max_tree_depth) < 1:
        raise ValueError(f"max_tree_depth must be >= 1, got {max_tree_depth}")
    depth = np.asarray(sample_stats["tree_depth"].values)
    return (depth >= int(max_tree_depth)).reshape(depth.shape[0], -1).mean(axis=1)


def _max_tree_depth(idata) -> int | None:
    config = run_attrs(idata).get("config")
    value = config.get("max_tree_depth") if isinstance(config, dict) else None
    return int(value) if value is not None else None


class _Finding(NamedTuple):
    check: str  # r_hat, ess_bulk, ess_tail, divergences, e_bfmi, tree_depth, chains, k_hat
    short: str  # for a one-line verdict reason
    message: str  # the full warning, naming parameters / chains


def _worst(series: pd.Series, bad: pd.Series, fmt: str, ascending: bool) -> str:
    ordered = series[bad].sort_values(ascending=ascending)
    named = [f"{name} ({value:{fmt}})" for name, value in ordered.iloc[:_MAX_NAMED].items()]
    more = len(ordered) - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def _mcmc_findings(idata, summary: pd.DataFrame | None = None) -> list[_Finding]:
    sample_stats = _sample_stats(idata)
    summary = parameter_summary(idata) if summary is None else summary
    chains = int(idata.posterior.sizes["chain"])
    found = []
    if chains < 2:
        found.append(_Finding("chains", "one chain: R-hat undefined",
                              "Only 1 chain: R-hat cannot detect chains that disagree; run at "
                              "least 2 (better 4) chains from dispersed starting points."))
    r_hat = summary["r_hat"].astype(float)
    bad = r_hat > R_HAT_MAX
    if bad.any():
        found.append(_Finding(
            "r_hat", f"R-hat {r_hat.max():.3f} > {R_HAT_MAX} ({r_hat.idxmax()})",
            f"R-hat > {R_HAT_MAX} for {int(bad.sum())} parameter(s): "
            f"{_worst(r_hat, bad, '.3f', False)}. The chains have not mixed; their estimates "
            "disagree. Run longer or reparameterise."))
    limit = MIN_ESS_PER_CHAIN * chains
    for column, kind, use in (("ess_bulk", "Bulk", "means and medians"),
                              ("ess_tail", "Tail", "quantiles and tail intervals")):
        ess = summary[column].astype(float)
        bad = ess < limit
        if bad.any():
            found.append(_Finding(
                column, f"{kind.lower()} ESS {ess.min():.0f} < {limit} ({ess.idxmin()})",
                f"{kind} ESS < {MIN_ESS_PER_CHAIN} per chain ({limit} for {chains} chain(s)) for "
                f"{int(bad.sum())} parameter(s): {_worst(ess, bad, '.0f', True)}. Posterior "
                f"{use} may be unreliable; run more draws."))
    diverging = np.asarray(sample_stats["diverging"].values, dtype=bool).reshape(chains, -1)
    if diverging.any():
        per_chain = ", ".join(f"chain {c}: {int(n)}" for c, n in enumerate(diverging.sum(axis=1)) if n)
        total = int(diverging.sum())
        found.append(_Finding(
            "divergences", f"{total} divergent transition(s) ({diverging.mean():.1%})",
            f"{total} of {diverging.size} transitions after warm-up ({diverging.mean():.1%}) "
            f"diverged ({per_chain}). The sampler may miss regions of high curvature; raise "
            "target_accept_prob or reparameterise."))
    if "energy" in sample_stats and sample_stats["energy"].sizes.get("draw", 0) >= 2:
        for c, value in enumerate(e_bfmi(idata)):
            if value < MIN_E_BFMI:
                found.append(_Finding(
                    "e_bfmi", f"E-BFMI {value:.2f} < {MIN_E_BFMI} (chain {c})",
                    f"Chain {c}: E-BFMI = {value:.3f} < {MIN_E_BFMI}. Momentum resampling "
                    "explores the energy distribution poorly (heavy tails or a poorly adapted "
                    "mass matrix); reparameterise."))
    max_depth = _max_tree_depth(idata)
    if "tree_depth" in sample_stats and max_depth is not None:
        fractions = tree_depth_saturation(idata, max_depth)
        counts = np.round(fractions * sample_stats["tree_depth"].sizes["draw"]).astype(int)
        if counts.any():
            per_chain = ", ".join(f"chain {c}: {n} ({f:.1%})"
                                  for c, (n, f) in enumerate(zip(counts, fractions)) if n)
            found.append(_Finding(
                "tree_depth", f"{int(counts.sum())} transition(s) at max tree depth {max_depth}",
                f"{int(counts.sum())} transitions after warm-up reached the maximum tree depth "
                f"{max_depth} ({per_chain}). Trajectories were cut short: an efficiency "
                "concern; raise max_tree_depth or reparameterise."))
    return found


def mcmc_diagnostics(idata, summary: pd.DataFrame | None = None) -> dict[str, float]:
    """Scalar MCMC diagnostics of one result (NaN where a statistic is missing).

    :param idata: a result with ``sample_stats.diverging`` (dims ``(chain, draw)``).
    :param summary: :func:`parameter_summary` of ``idata`` if already computed.
    :returns: ``max_r_hat`` (rank-normalized split R-hat; Vehtari et al. 2021),
        ``min_ess_bulk`` and ``min_ess_tail`` (draws) over parameters, ``min_e_bfmi`` over
        chains (:func:`e_bfmi`), ``divergences`` (count) and ``tree_depth_saturation``
        (fraction of all transitions at the maximum depth; :func:`tree_depth_saturation`).
    :raises ValueError: ``idata`` has no ``diverging`` statistic (not an MCMC result).
    """
    if not _is_mcmc(idata):
        raise ValueError("mcmc_diagnostics needs sample_stats.diverging (an MCMC result)")
    sample_stats = _sample_stats(idata)
    summary = parameter_summary(idata) if summary is None else summary
    has_energy = "energy" in sample_stats and sample_stats["energy"].sizes.get("draw", 0) >= 2
    max_depth = _max_tree_depth(idata)
    return {
        "max_r_hat": float(summary["r_hat"].max()),
        "min_ess_bulk": float(summary["ess_bulk"].min()),
        "min_ess_tail": float(summary["ess_tail"].min()),
        "min_e_bfmi": float(e_bfmi(idata).min()) if has_energy else np.nan,
        "divergences": float(np.asarray(sample_stats["diverging"].values).sum()),
        "tree_depth_saturation": float(tree_depth_saturation(idata, max_depth).mean())
        if "tree_depth" in sample_stats and max_depth is not None else np.nan,
    }


def mcmc_warnings(idata, summary: pd.DataFrame | None = None) -> list[str]:
    """Stan-style warnings for an MCMC result, one human-readable string per problem.

    Fires for: R-hat > 1.01 (rank-normalized; Vehtari et al. 2021), bulk or tail ESS < 100
    per chain, any divergent transition, E-BFMI < 0.3 in a chain (Betancourt 2016), any
    transition at the maximum tree depth (read from the run's ``config``), and a single
    chain (R-hat undefined). Messages name the worst parameters (up to 4) or the chains.

    :param idata: a result with ``sample_stats.diverging``; ``energy`` and ``tree_depth``
        are checked when present.
    :param summary: :func:`parameter_summary` of ``idata`` if already computed.
    :returns: list of messages; empty when nothing fired.
    :raises ValueError: ``idata`` has no ``diverging`` statistic (not an MCMC result).
    """
    if not _is_mcmc(idata):
        raise ValueError("mcmc_warnings needs sample_stats.diverging (an MCMC result)")
    return [f.message for f in _mcmc_findings(idata, summary)]


def _k_hat_finding(k_hat: float) -> _Finding | None:
    if k_hat > K_HAT_MAX:
        return _Finding("k_hat", f"PSIS k-hat {k_hat:.2f} > {K_HAT_MAX}",
                        f"PSIS k-hat = {k_hat:.2f} > {K_HAT_MAX}: the guide's importance weights "
                        "have a very heavy tail; the guide is far from the posterior and even "
                        "PSIS-corrected estimates are unreliable (Yao et al. 2018; Vehtari et "
                        "al. 2024).")
    if k_hat > K_HAT_GOOD:
        return _Finding("k_hat", f"PSIS k-hat {k_hat:.2f} > {K_HAT_GOOD}",
                        f"PSIS k-hat = {k_hat:.2f} in ({K_HAT_GOOD}, {K_HAT_MAX}]: the guide is "
                        "usable but not close to the posterior; prefer the PSIS-corrected "
                        "moments (Yao et al. 2018).")
    return None


def vi_warnings(idata) -> list[str]:
    """Warnings for a result with ``sample_stats.log_weight`` (draws from a guide).

    Fires when PSIS k-hat of the log weights exceeds 0.5 (usable) or 0.7 (unreliable)
    (Yao et al. 2018, sec. 3).

    :returns: list of messages; empty when k-hat <= 0.5.
    :raises ValueError: no ``log_weight`` statistic, or invalid log weights.
    """
    sample_stats = _sample_stats(idata)
    if "log_weight" not in sample_stats:
        raise ValueError("vi_warnings needs sample_stats.log_weight (a VI result)")
    finding = _k_hat_finding(importance_diagnostics(sample_stats["log_weight"].values)["k_hat"])
    return [finding.message] if finding else []


def engine_warnings(idata, summary: pd.DataFrame | None = None) -> list[str]:
    """:func:`mcmc_warnings` for MCMC results, :func:`vi_warnings` for results with
    ``log_weight``, otherwise one message that no diagnostic applies."""
    sample_stats = _sample_stats(idata)
    if _is_mcmc(idata):
        return mcmc_warnings(idata, summary)
    if "log_weight" in sample_stats:
        return vi_warnings(idata)
    return ["No diagnostic applies: the result has neither MCMC statistics (diverging) nor "
            "importance log weights (log_weight)."]


def engine_diagnostics(idata, summary: pd.DataFrame | None = None) -> dict[str, float]:
    """Per-run figures: ``wall_time_s`` (s), ``grad_evals``; for MCMC results
    :func:`mcmc_diagnostics` (``divergences``, ``max_r_hat``, ``min_ess_bulk``,
    ``min_ess_tail``, ``min_e_bfmi``, ``tree_depth_saturation``); for results with
    ``log_weight`` :func:`importance_diagnostics` (``elbo``, ``log_evidence`` and their
    standard errors in nats, ``k_hat``). Missing figures are NaN."""
    attrs = run_attrs(idata)
    out = {
        "wall_time_s": float(attrs.get("wall_time_s", np.nan)),
        "grad_evals": float(attrs.get("grad_evals", np.nan)),
    }
    mcmc_keys = ("divergences", "max_r_hat", "min_ess_bulk", "min_ess_tail", "min_e_bfmi",
                 "tree_depth_saturation")
    out.update({k: np.nan for k in mcmc_keys})
    if _is_mcmc(idata):
        out.update(mcmc_diagnostics(idata, summary))
    keys = ("elbo", "elbo_se", "log_evidence", "log_evidence_se", "k_hat")
    sample_stats = _sample_stats(idata)
    if "log_weight" in sample_stats:
        out.update(importance_diagnostics(sample_stats["log_weight"].values))
    else:
        out.update({k: np.nan for k in keys})
    return out


def verdict(idata, summary: pd.DataFrame | None = None) -> tuple[str, str]:
    """*trust*, *caution* or *do not trust* for one result, and the diagnostics that decided.

    MCMC (results with ``diverging``): *do not trust* if max R-hat > 1.05 or more than 1%
    of transitions diverged; otherwise *caution* if any of :func:`mcmc_warnings` fired
    (R-hat > 1.01, bulk/tail ESS < 100 per chain, any divergence, E-BFMI < 0.3, maximum
    tree depth reached, a single chain); else *trust* (Vehtari et al. 2021; Betancourt
    2016; Stan's warnings). VI (results with ``log_weight``): PSIS k-hat > 0.7 *do not
    trust*, > 0.5 *caution* (Yao et al. 2018).

    :param summary: :func:`parameter_summary` of ``idata`` if already computed.
    :returns: ``(label, reason)``; ``reason`` lists, in short form, every check that fired
        (the deciding one first), or the figures that passed.
    """
    sample_stats = _sample_stats(idata)
    if _is_mcmc(idata):
        summary = parameter_summary(idata) if summary is None else summary
        findings = _mcmc_findings(idata, summary)
        r_hat, ess = float(summary["r_hat"].max()), float(summary["ess_bulk"].min())
        frac = float(np.asarray(sample_stats["diverging"].values).mean())
        fatal = {}  # check -> short reason
        if r_hat > R_HAT_FAIL:
            fatal["r_hat"] = f"max R-hat {r_hat:.3f} > {R_HAT_FAIL}"
        if frac > DIVERGENT_FRACTION_FAIL:
            fatal["divergences"] = f"{frac:.1%} divergent transitions > {DIVERGENT_FRACTION_FAIL:.0%}"
        if fatal:
            rest = [f.short for f in findings if f.check not in fatal]
            return "do not trust", "; ".join([*fatal.values(), *rest])
        if findings:
            return "caution", "; ".join(f.short for f in findings)
        return "trust", (f"max R-hat {r_hat:.3f}, min bulk ESS {ess:.0f}, "
                         f"min tail ESS {float(summary['ess_tail'].min()):.0f}, no divergences, "
                         "no warnings")
    if "log_weight" in sample_stats:
        k_hat = importance_diagnostics(sample_stats["log_weight"].values)["k_hat"]
        label = "do not trust" if k_hat > K_HAT_MAX else "caution" if k_hat > K_HAT_GOOD else "trust"
        finding = _k_hat_finding(k_hat)
        return label, finding.short if finding else f"PSIS k-hat {k_hat:.2f} <= {K_HAT_GOOD}"
    return "caution", "no diagnostic available for this engine's output"
