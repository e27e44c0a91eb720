"""Per-parameter summaries of a result: its ``attrs``, scalar draws labelled as ArviZ labels
them, and ``az.summary`` (rank-normalized R-hat, bulk/tail ESS, MCSE; Vehtari et al. 2021)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd

from .. import _arviz

__all__ = ["run_attrs", "flat_draws", "parameter_summary", "convergence_summary"]


def run_attrs(idata) -> dict:
    """The engine ``attrs`` of a result (``config`` decoded from JSON)."""
    attrs = dict(idata.posterior.attrs)
    if "config" in attrs and isinstance(attrs["config"], str):
        attrs["config"] = json.loads(attrs["config"])
    return attrs


def flat_draws(idata) -> dict[str, np.ndarray]:
    """Scalar parameters of ``idata.posterior``, named as ``az.summary`` names them
    (ArviZ's ``BaseLabeller``; :func:`ppl_genmodels._arviz.flat_values`).

    :returns: name -> ``(chain, draw)`` float64 array, e.g. ``"theta[3]"``, ``"z[1, 0]"``.
    """
    return _arviz.flat_values(idata.posterior)


def parameter_summary(idata) -> pd.DataFrame:
    """``az.summary`` of the posterior: mean, sd, MCSE, bulk/tail ESS, R-hat per parameter.

    R-hat is NaN for single-chain results (the VI engines' iid draws).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]hape validation failed.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        table = _arviz.summary(idata, kind="all", round_to="none")
    columns = ["mean", "sd", "mcse_mean", "mcse_sd", "ess_bulk", "ess_tail", "r_hat"]
    return table[columns]


def convergence_summary(idata) -> pd.DataFrame:
    """``ess_bulk``, ``ess_tail`` and rank-normalized ``r_hat`` per parameter: the columns
    of :func:`parameter_summary` that MCMC warnings and verdicts read, computed with
    ``az.ess`` / ``az.rhat`` alone (a fraction of ``az.summary``'s cost: for many small
    per-image runs).

    :returns: DataFrame indexed like :func:`parameter_summary` (ArviZ's labels).
    """
    posterior = idata.posterior
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]hape validation failed.*")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        columns = {"ess_bulk": _arviz.ess(posterior, method="bulk"),
                   "ess_tail": _arviz.ess(posterior, method="tail"),
                   "r_hat": _arviz.rhat(posterior, method="rank")}
    return pd.DataFrame({name: pd.Series(_arviz.flat_values(values, sample_dims=()))
                         for name, values in columns.items()}).astype(float)
