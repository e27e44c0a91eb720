"""One verdict per result, *trust* / *caution* / *do not trust*, its warnings and the
per-run figures it rests on (MCMC: :mod:`.mcmc`; VI: PSIS k-hat read as in Yao et al. 2018)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .importance import importance_diagnostics
from .mcmc import (_Finding, _is_mcmc, _mcmc_findings, _r_hat, _sample_stats, mcmc_diagnostics,
                   mcmc_warnings)
from .summary import parameter_summary, run_attrs

__all__ = ["K_HAT_GOOD", "K_HAT_MAX", "R_HAT_FAIL", "DIVERGENT_FRACTION_FAIL", "vi_warnings",
           "engine_warnings", "engine_diagnostics", "verdict"]

# Yao et al. 2018's k-hat thresholds.
K_HAT_GOOD = 0.5
K_HAT_MAX = 0.7
# "do not trust" for MCMC: chains clearly disagree, or divergences are not isolated.
R_HAT_FAIL = 1.05
DIVERGENT_FRACTION_FAIL = 0.01


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
    mcmc_keys = ("divergences", "max_r_hat", "max_r_hat_nested", "min_ess_bulk",
                 "min_ess_tail", "min_e_bfmi", "tree_depth_saturation")
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
    (R-hat > 1.01, bulk/tail ESS < 100 per chain (at most 400), any divergence, E-BFMI < 0.3, maximum
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
        r_hats, r_hat_label = _r_hat(idata, summary)
        r_hat, ess = float(r_hats.max()), float(summary["ess_bulk"].min())
        frac = float(np.asarray(sample_stats["diverging"].values).mean())
        fatal = {}  # check -> short reason
        if r_hat > R_HAT_FAIL:
            fatal["r_hat"] = f"max {r_hat_label} {r_hat:.3f} > {R_HAT_FAIL}"
        if frac > DIVERGENT_FRACTION_FAIL:
            fatal["divergences"] = f"{frac:.1%} divergent transitions > {DIVERGENT_FRACTION_FAIL:.0%}"
        if fatal:
            rest = [f.short for f in findings if f.check not in fatal]
            return "do not trust", "; ".join([*fatal.values(), *rest])
        if findings:
            return "caution", "; ".join(f.short for f in findings)
        return "trust", (f"max {r_hat_label} {r_hat:.3f}, min bulk ESS {ess:.0f}, "
                         f"min tail ESS {float(summary['ess_tail'].min()):.0f}, no divergences, "
                         "no warnings")
    if "log_weight" in sample_stats:
        k_hat = importance_diagnostics(sample_stats["log_weight"].values)["k_hat"]
        label = "do not trust" if k_hat > K_HAT_MAX else "caution" if k_hat > K_HAT_GOOD else "trust"
        finding = _k_hat_finding(k_hat)
        return label, finding.short if finding else f"PSIS k-hat {k_hat:.2f} <= {K_HAT_GOOD}"
    return "caution", "no diagnostic available for this engine's output"
