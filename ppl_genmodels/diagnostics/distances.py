"""Distances of an engine's marginals to a reference posterior, and Inference Gym's test of
its means (1-Wasserstein by ``scipy.stats.wasserstein_distance``)."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from ..reference import Reference
from .summary import parameter_summary

__all__ = ["reference_distances", "reference_check"]


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
