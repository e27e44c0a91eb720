"""Importance weights of iid guide draws: evidence bounds with their standard errors, PSIS
k-hat and PSIS-corrected moments.

Sources: the ELBO and the importance-weighted bound log (1/S) sum_s w_s (Burda, Grosse &
Salakhutdinov 2016, eq. 8), log-mean-exp by ``scipy.special.logsumexp``; PSIS k-hat and
Pareto-smoothed weights (Vehtari et al. 2024, ``arviz.psislw``) read as in Yao et al. 2018.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from .. import _arviz

__all__ = ["importance_summary", "importance_diagnostics", "psis_moments"]


def _log_weights(log_weights) -> np.ndarray:
    lw = np.asarray(log_weights, dtype=np.float64).ravel()
    if lw.size < 2 or not np.all(np.isfinite(lw)):
        raise ValueError(f"log_weights must hold at least 2 finite values (got {lw.size} "
                         f"values, {int(np.sum(~np.isfinite(lw)))} non-finite)")
    return lw


def importance_summary(log_weights, axis: int = 0) -> dict[str, np.ndarray]:
    """Evidence bounds from S log weights log w_s = log p(x, z_s) - log q(z_s | x), z_s ~ q.

    The one implementation of these four statistics in the package (diagnostics, fixed-theta
    comparisons and test log-likelihoods all use it).

    :param log_weights: log weights in nats, S along ``axis`` (e.g. ``(S,)`` or ``(S, B)``
        for B images).
    :param axis: the sample axis.
    :returns: arrays over the other axes (floats for 1-d input), all nats: ``elbo`` = mean
        log w and ``elbo_se`` = sd(log w) / sqrt(S); ``log_evidence`` = log (1/S) sum_s w_s,
        the importance-weighted bound (Burda et al. 2016, eq. 8; ``scipy.special.logsumexp``),
        and ``log_evidence_se`` = sd(w) / (sqrt(S) mean(w)), its delta-method standard
        error. Standard errors are NaN when S = 1.
    """
    lw = np.asarray(log_weights, dtype=np.float64)
    n = lw.shape[axis]
    w = np.exp(lw - lw.max(axis=axis, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # S = 1: sd with ddof=1 is NaN
        out = {
            "elbo": lw.mean(axis=axis),
            "elbo_se": lw.std(axis=axis, ddof=1) / math.sqrt(n),
            "log_evidence": logsumexp(lw, axis=axis) - math.log(n),
            "log_evidence_se": w.std(axis=axis, ddof=1) / (math.sqrt(n) * w.mean(axis=axis)),
        }
    return {k: v[()] if np.ndim(v) == 0 else v for k, v in out.items()}


def importance_diagnostics(log_weights: np.ndarray) -> dict[str, float]:
    """Evidence bounds and PSIS k-hat from log weights log p(x, z) - log q(z) of iid z ~ q.

    :param log_weights: ``(num_draws,)`` nats (any shape; flattened).
    :returns: :func:`importance_summary` (``elbo``, ``elbo_se``, ``log_evidence`` with
        ``num_draws`` samples, ``log_evidence_se``; nats) and ``k_hat``: Pareto shape of the
        weights (Yao et al. 2018: < 0.5 good, 0.5-0.7 usable, > 0.7 poor).
    :raises ValueError: fewer than 2 or non-finite log weights.
    """
    lw = _log_weights(log_weights)
    _, k_hat = _arviz.psislw(lw)
    return {**{k: float(v) for k, v in importance_summary(lw).items()}, "k_hat": k_hat}


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
