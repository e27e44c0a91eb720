"""Diagnostics shared by every engine: ArviZ summaries, importance weights, distances.

Sources: ``arviz.summary`` (rank-normalized R-hat, bulk/tail ESS and MCSE; Vehtari et
al. 2021), PSIS k-hat (Vehtari et al. 2024, ``arviz.psislw``) read as in Yao et al. 2018,
the importance-weighted log-evidence bound (Burda et al. 2016), and the 1-Wasserstein
distance (``scipy.stats.wasserstein_distance``).
"""

from __future__ import annotations

import json
import math
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from . import _arviz
from .reference import Reference

__all__ = [
    "flat_draws",
    "parameter_summary",
    "importance_diagnostics",
    "reference_distances",
    "reference_check",
    "engine_diagnostics",
    "run_attrs",
    "verdict",
]


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


def importance_diagnostics(log_weights: np.ndarray) -> dict[str, float]:
    """Evidence bounds and PSIS k-hat from log weights log p(x, z) - log q(z) of iid z ~ q.

    :param log_weights: ``(num_draws,)`` nats.
    :returns: ``elbo`` = mean log weight and ``elbo_se`` (its standard error);
        ``log_evidence`` = log mean exp(log weight), the importance-weighted bound with
        ``num_draws`` samples, and ``log_evidence_se`` (delta method); ``k_hat``: Pareto
        shape of the weights (Yao et al. 2018: < 0.5 good, 0.5-0.7 usable, > 0.7 poor).
        All in nats except ``k_hat``.
    :raises ValueError: fewer than 2 or non-finite log weights.
    """
    lw = np.asarray(log_weights, dtype=np.float64).ravel()
    if lw.size < 2 or not np.all(np.isfinite(lw)):
        raise ValueError("log_weights must hold at least 2 finite values")
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


def reference_check(idata, reference: Reference, num_sigmas: float = 5.0) -> pd.DataFrame:
    """Inference Gym's test of posterior means against a reference, per scalar parameter.

    Passes when ``|mean - ref_mean| < num_sigmas * sqrt(mcse_mean**2 + ref_mcse**2)``, where
    ``mcse_mean`` is ArviZ's Monte Carlo standard error of this run's mean (sd / sqrt(ESS)
    for iid draws) and ``ref_mcse`` the reference's (0 for closed forms). Source: TFP
    Inference Gym, ``inference_gym/targets`` ground-truth tests (``5 * sqrt(var/ess +
    ref_mcse**2)``); Vehtari et al. 2021 for the MCSE.

    :param idata: an engine's result.
    :param reference: the reference posterior.
    :returns: rows per parameter in both, columns ``mean``, ``ref_mean``, ``abs_error``,
        ``tolerance`` (parameter units) and ``passed`` (bool).
    :raises ValueError: no parameter of ``idata`` is in ``reference``.
    """
    summary = parameter_summary(idata)
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


def engine_diagnostics(idata) -> dict[str, float]:
    """Per-run figures: wall time (s), gradient evaluations, divergences and, for results
    with ``log_weight``, :func:`importance_diagnostics`."""
    attrs = run_attrs(idata)
    out = {
        "wall_time_s": float(attrs.get("wall_time_s", np.nan)),
        "grad_evals": float(attrs.get("grad_evals", np.nan)),
        "divergences": np.nan,
    }
    sample_stats = getattr(idata, "sample_stats", None)
    if sample_stats is not None and "diverging" in sample_stats:
        out["divergences"] = float(sample_stats["diverging"].values.sum())
    keys = ("elbo", "elbo_se", "log_evidence", "log_evidence_se", "k_hat")
    if sample_stats is not None and "log_weight" in sample_stats:
        out.update(importance_diagnostics(sample_stats["log_weight"].values))
    else:
        out.update({k: np.nan for k in keys})
    return out


def verdict(idata) -> tuple[str, str]:
    """*trust*, *caution* or *do not trust* for one result, and the diagnostic that decided.

    MCMC (results with ``diverging``): do not trust if max R-hat > 1.05 or more than 1% of
    draws diverged; caution if R-hat > 1.01, any divergence, bulk ESS < 100 per chain or
    E-BFMI < 0.3 (Vehtari et al. 2021; Betancourt 2016; Stan's warnings). VI (results with
    ``log_weight``): PSIS k-hat > 0.7 do not trust, > 0.5 caution (Yao et al. 2018).
    :returns: ``(label, reason)``.
    """
    stats = idata.sample_stats if "sample_stats" in idata.groups() else {}
    if "diverging" in stats:
        summary = parameter_summary(idata)
        chains = idata.posterior.sizes["chain"]
        r_hat, ess = float(summary["r_hat"].max()), float(summary["ess_bulk"].min())
        diverging = stats["diverging"].values
        frac = float(diverging.mean())
        if r_hat > 1.05 or frac > 0.01:
            why = f"max R-hat {r_hat:.3f}" if r_hat > 1.05 else f"{frac:.1%} divergent transitions"
            return "do not trust", why
        problems = []
        if r_hat > 1.01:
            problems.append(f"max R-hat {r_hat:.3f} > 1.01")
        if diverging.any():
            problems.append(f"{int(diverging.sum())} divergent transition(s)")
        if ess < 100 * chains:
            problems.append(f"min bulk ESS {ess:.0f} < 100 per chain")
        if "energy" in stats:
            e_bfmi = float(np.min(_arviz.bfmi(idata)))
            if e_bfmi < 0.3:
                problems.append(f"E-BFMI {e_bfmi:.2f} < 0.3")
        if problems:
            return "caution", "; ".join(problems)
        return "trust", f"max R-hat {r_hat:.3f}, min bulk ESS {ess:.0f}, no divergences"
    if "log_weight" in stats:
        k_hat = importance_diagnostics(stats["log_weight"].values)["k_hat"]
        label = "do not trust" if k_hat > 0.7 else "caution" if k_hat > 0.5 else "trust"
        return label, f"PSIS k-hat {k_hat:.2f}"
    return "caution", "no diagnostic available for this engine's output"
