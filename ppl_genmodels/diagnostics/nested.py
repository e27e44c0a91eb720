"""Nested R-hat for many short chains grouped in superchains (Margossian et al. 2024).

With many chains and few draws per chain, classic R-hat asks each chain to have mixed on
its own and flags short chains that are fine. Nested R-hat groups the chains into K
superchains of M chains each, every chain of a superchain started from the same point, and
compares the superchain means with the variance inside the superchains:

    nR-hat = sqrt(1 + B_nu / W_nu),
    B_nu = var_k(mean of superchain k)                          (between superchains)
    W_nu = mean_k(var_m(chain means in k) + mean_m(var within chain m of k))

(Margossian, Hoffman, Sountsov, Riou-Durand, Vehtari & Gelman 2024, "Nested R-hat: assessing
the convergence of Markov chain Monte Carlo when running many short chains", Bayesian
Analysis, eqs. 4-6; the same estimator as ``posterior::rhat_nested`` and arviz-stats'
``rhat_nested``). As for rank-normalized R-hat (Vehtari et al. 2021), the chains are split
in halves, the draws rank-normalized, and the larger of the bulk and folded (tail) values
is reported.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .summary import flat_draws, run_attrs

__all__ = ["nested_r_hat", "superchain_ids", "nested_r_hat_table"]


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank-normalize all draws jointly: normal quantiles of fractional ranks (Blom's 3/8
    offset, as ArviZ and Vehtari et al. 2021)."""
    ranks = stats.rankdata(x, method="average").reshape(x.shape)
    return stats.norm.ppf((ranks - 0.375) / (x.size + 0.25))


def _nested(x: np.ndarray, ids: np.ndarray) -> float:
    chain_mean = x.mean(axis=1)
    chain_var = x.var(axis=1, ddof=1) if x.shape[1] > 1 else np.zeros(len(x))
    groups = [ids == k for k in np.unique(ids)]
    super_mean = np.array([chain_mean[g].mean() for g in groups])
    between_chain = np.array([chain_mean[g].var(ddof=1) if g.sum() > 1 else 0.0 for g in groups])
    within_chain = np.array([chain_var[g].mean() for g in groups])
    between_super = super_mean.var(ddof=1)
    within_super = float(np.mean(between_chain + within_chain))
    if within_super <= 0:
        return np.nan
    return float(np.sqrt(1.0 + between_super / within_super))


def nested_r_hat(draws: np.ndarray, superchain_ids, method: str = "rank") -> float:
    """Nested R-hat of one scalar quantity.

    :param draws: ``(chain, draw)`` draws.
    :param superchain_ids: ``(chain,)`` integers; chain c belongs to superchain
        ``superchain_ids[c]``. Every superchain must hold the same number of chains, and all
        chains of a superchain should have started from one point.
    :param method: ``"rank"`` (split chains, rank-normalized, max of bulk and folded: the
        default, as ``arviz.rhat``'s) or ``"identity"`` (the raw estimator on the draws).
    :returns: nested R-hat (dimensionless, >= 1); NaN when the draws are constant or not
        finite.
    :raises ValueError: ``draws`` is not 2-d, ``superchain_ids`` does not have one entry per
        chain, fewer than 2 superchains, superchains of unequal size, fewer than 4 draws per
        chain with ``method="rank"``, or an unknown method.
    """
    x = np.asarray(draws, dtype=np.float64)
    ids = np.asarray(superchain_ids)
    if x.ndim != 2:
        raise ValueError(f"nested_r_hat needs (chain, draw) draws, got shape {x.shape}")
    if ids.shape != (x.shape[0],):
        raise ValueError(f"superchain_ids needs one entry per chain ({x.shape[0]}), got "
                         f"shape {ids.shape}")
    _, counts = np.unique(ids, return_counts=True)
    if len(counts) < 2:
        raise ValueError("nested R-hat needs at least 2 superchains")
    if counts.min() != counts.max():
        raise ValueError(f"every superchain must hold the same number of chains, got {counts}")
    if method not in ("rank", "identity"):
        raise ValueError(f"method must be 'rank' or 'identity', got {method!r}")
    if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
        return np.nan
    if method == "identity":
        return _nested(x, ids)
    half = x.shape[1] // 2
    if half < 2:
        raise ValueError("rank-normalized nested R-hat needs at least 4 draws per chain")
    split = np.concatenate([x[:, :half], x[:, -half:]], axis=0)
    split_ids = np.concatenate([ids, ids])
    bulk = _nested(_z_scale(split), split_ids)
    folded = _nested(_z_scale(np.abs(split - np.median(split))), split_ids)
    return float(np.nanmax([bulk, folded]))


def superchain_ids(idata) -> np.ndarray | None:
    """``(chain,)`` superchain of each chain, from the run's ``num_superchains`` attribute
    (written by :class:`ppl_genmodels.infer.NUTS`: chains ``k*M .. k*M + M - 1`` form
    superchain k); ``None`` when the run has no superchains of at least 2 chains."""
    attrs = run_attrs(idata)
    config = attrs.get("config") if isinstance(attrs.get("config"), dict) else {}
    num_super = attrs.get("num_superchains", config.get("num_superchains"))
    chains = int(idata.posterior.sizes["chain"])
    if not num_super or int(num_super) < 2 or chains % int(num_super) or chains // int(num_super) < 2:
        return None
    return np.repeat(np.arange(int(num_super)), chains // int(num_super))


def nested_r_hat_table(idata) -> pd.Series | None:
    """Nested R-hat (rank-normalized) of every scalar parameter, indexed as ``az.summary``
    indexes them; ``None`` when the run has no superchains (:func:`superchain_ids`) or
    fewer than 4 draws per chain."""
    ids = superchain_ids(idata)
    if ids is None or int(idata.posterior.sizes["draw"]) < 4:
        return None
    return pd.Series({name: nested_r_hat(values, ids)
                      for name, values in flat_draws(idata).items()}, name="r_hat_nested")
