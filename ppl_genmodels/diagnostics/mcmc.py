"""MCMC diagnostics and Stan-style warnings: R-hat, bulk/tail ESS, divergences, E-BFMI and
tree-depth saturation.

Sources: ``arviz.summary`` (rank-normalized R-hat, bulk/tail ESS; Vehtari et al. 2021),
``arviz.bfmi`` (E-BFMI; Betancourt 2016) and Stan's sampler warnings (thresholds R-hat
1.01, ESS 100 per chain up to 400, E-BFMI 0.3, any divergence or maximum tree depth).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from .. import _arviz
from .nested import nested_r_hat_table
from .summary import parameter_summary, run_attrs

__all__ = ["nested_r_hat_table", "R_HAT_MAX", "MIN_ESS_PER_CHAIN", "MIN_ESS", "MIN_E_BFMI", "e_bfmi", "tree_depth_saturation",
           "mcmc_diagnostics", "mcmc_warnings"]

# Stan's / Vehtari et al. 2021's warning thresholds.
R_HAT_MAX = 1.01
MIN_ESS_PER_CHAIN = 100
MIN_ESS = 400
"""Vehtari et al. (2021) ask for ESS > 400: 100 per chain for their 4 chains. With more,
shorter chains (the ensemble sampler) the total is what estimates rest on: the limit is
100 per chain up to 4 chains and 400 beyond."""
MIN_E_BFMI = 0.3
_MAX_NAMED = 4  # parameters named per warning, worst first


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


def _r_hat(idata, summary: pd.DataFrame) -> tuple[pd.Series, str]:
    """The R-hat that judges mixing: nested R-hat when the run has superchains (many short
    chains; Margossian et al. 2024), else rank-normalized R-hat (Vehtari et al. 2021)."""
    nested = nested_r_hat_table(idata)
    if nested is not None:
        return nested.astype(float), "nested R-hat"
    return summary["r_hat"].astype(float), "R-hat"


def _mcmc_findings(idata, summary: pd.DataFrame | None = None) -> list[_Finding]:
    sample_stats = _sample_stats(idata)
    summary = parameter_summary(idata) if summary is None else summary
    chains = int(idata.posterior.sizes["chain"])
    found = []
    if chains < 2:
        found.append(_Finding("chains", "one chain: R-hat undefined",
                              "Only 1 chain: R-hat cannot detect chains that disagree; run at "
                              "least 2 (better 4) chains from dispersed starting points."))
    r_hat, label = _r_hat(idata, summary)
    bad = r_hat > R_HAT_MAX
    if bad.any():
        found.append(_Finding(
            "r_hat", f"{label} {r_hat.max():.3f} > {R_HAT_MAX} ({r_hat.idxmax()})",
            f"{label} > {R_HAT_MAX} for {int(bad.sum())} parameter(s): "
            f"{_worst(r_hat, bad, '.3f', False)}. The chains have not mixed; their estimates "
            "disagree. Run longer or reparameterise."))
    limit = min(MIN_ESS_PER_CHAIN * chains, MIN_ESS)
    for column, kind, use in (("ess_bulk", "Bulk", "means and medians"),
                              ("ess_tail", "Tail", "quantiles and tail intervals")):
        ess = summary[column].astype(float)
        bad = ess < limit
        if bad.any():
            found.append(_Finding(
                column, f"{kind.lower()} ESS {ess.min():.0f} < {limit} ({ess.idxmin()})",
                f"{kind} ESS < {limit} ({MIN_ESS_PER_CHAIN} per chain, at most {MIN_ESS}; "
                f"{chains} chain(s)) for "
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
        ``max_r_hat_nested`` (:func:`~.nested.nested_r_hat` for runs with superchains, else
        NaN),
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
    nested = nested_r_hat_table(idata)
    return {
        "max_r_hat": float(summary["r_hat"].max()),
        "max_r_hat_nested": float(nested.max()) if nested is not None else np.nan,
        "min_ess_bulk": float(summary["ess_bulk"].min()),
        "min_ess_tail": float(summary["ess_tail"].min()),
        "min_e_bfmi": float(e_bfmi(idata).min()) if has_energy else np.nan,
        "divergences": float(np.asarray(sample_stats["diverging"].values).sum()),
        "tree_depth_saturation": float(tree_depth_saturation(idata, max_depth).mean())
        if "tree_depth" in sample_stats and max_depth is not None else np.nan,
    }


def mcmc_warnings(idata, summary: pd.DataFrame | None = None) -> list[str]:
    """Stan-style warnings for an MCMC result, one human-readable string per problem.

    Fires for: R-hat > 1.01 (rank-normalized; Vehtari et al. 2021; nested R-hat, Margossian
    et al. 2024, instead for runs whose chains form superchains), bulk or tail ESS < 100
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
