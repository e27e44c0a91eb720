"""Rank statistics and uniformity tests for simulation-based calibration.

Pure NumPy/SciPy: no Pyro here. Sources: Talts, Betancourt, Simpson, Vehtari & Gelman
(2018), "Validating Bayesian inference algorithms with simulation-based calibration",
arXiv:1804.06788 (ranks, histograms); Säilynoja, Bürkner & Vehtari (2022), "Graphical
test for discrete uniformity and its applications in goodness-of-fit evaluation and
multiple sample comparison", Statistics and Computing 32:32 (ECDF simultaneous band);
Yao, Vehtari, Simpson & Gelman (2018), "Yes, but did it work?: Evaluating variational
inference", ICML, sec. 3 (VSBC).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

__all__ = [
    "rank_of",
    "ecdf_eval_ranks",
    "ecdf_test",
    "chi_square_test",
    "vsbc_test",
    "rank_bins",
]


def rank_of(true_value: np.ndarray, draws: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each true value among its posterior draws (Talts et al. 2018, Alg. 1).

    rank = #{l : draw_l < true} + U, where U is uniform on {0, ..., #{l : draw_l == true}}
    (random tie-breaking, needed for discrete parameters).

    :param true_value: ``(P,)`` simulated parameter values.
    :param draws: ``(L, P)`` posterior draws.
    :param rng: source of the tie-breaking draws.
    :returns: ``(P,)`` int64 ranks in ``{0, ..., L}``.
    :raises ValueError: shapes disagree or values are not finite.
    """
    true_value = np.asarray(true_value, dtype=np.float64)
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 2 or true_value.shape != draws.shape[1:]:
        raise ValueError(
            f"rank_of: draws must be (L, P) and true_value (P,); got {draws.shape} and "
            f"{true_value.shape}"
        )
    if not (np.isfinite(draws).all() and np.isfinite(true_value).all()):
        raise ValueError("rank_of: draws and true values must be finite")
    below = (draws < true_value).sum(0)
    ties = (draws == true_value).sum(0)
    return (below + rng.integers(0, ties + 1)).astype(np.int64)


def _check_ranks(ranks: np.ndarray, num_draws: int) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size < 2:
        raise ValueError(f"ranks must be a 1-D array of >= 2 values, got shape {ranks.shape}")
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    if ranks.min() < 0 or ranks.max() > num_draws:
        raise ValueError(f"ranks must lie in [0, {num_draws}], got [{ranks.min()}, {ranks.max()}]")
    return ranks.astype(np.int64)


def rank_bins(num_draws: int, num_simulations: int, bins: int = 20) -> int:
    """Number of histogram bins: at most ``bins``, at most L + 1 rank values, and at least
    about 5 expected ranks per bin (so the chi-square approximation holds); >= 2. A count
    that divides L + 1 (equal-width bins, as Talts et al. recommend) is preferred when one
    lies within a factor 2 of that bound."""
    target = int(max(2, min(bins, num_draws + 1, num_simulations // 5)))
    for b in range(target, max(2, target // 2) - 1, -1):
        if (num_draws + 1) % b == 0:
            return b
    return target


def chi_square_test(ranks: np.ndarray, num_draws: int, bins: int) -> tuple[float, float]:
    """Pearson chi-square test of discrete uniformity of binned ranks (Talts et al. 2018).

    Rank value r in {0..L} goes to bin floor(r * B / (L + 1)); expected counts follow the
    number of rank values per bin, so L + 1 need not be divisible by B.

    :param ranks: ``(N,)`` ranks in ``{0..L}``; ``num_draws`` = L; ``bins`` = B >= 2.
    :returns: ``(statistic, p_value)`` with B - 1 degrees of freedom.
    :raises ValueError: ranks outside ``[0, L]`` or ``bins`` < 2 or > L + 1.
    """
    ranks = _check_ranks(ranks, num_draws)
    if not 2 <= bins <= num_draws + 1:
        raise ValueError(f"bins must lie in [2, L + 1 = {num_draws + 1}], got {bins}")
    bin_of = lambda r: (r * bins) // (num_draws + 1)  # noqa: E731
    observed = np.bincount(bin_of(ranks), minlength=bins)
    width = np.bincount(bin_of(np.arange(num_draws + 1)), minlength=bins)
    expected = ranks.size * width / (num_draws + 1)
    statistic = float(((observed - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, bins - 1))


def ecdf_eval_ranks(num_draws: int, max_points: int = 100) -> np.ndarray:
    """Rank values c_1 < ... < c_K at which the rank ECDF is tested and plotted.

    K = min(L, max_points - 1) points, evenly spread over {0..L-1} (the ECDF at L is 1 for
    every sample, so it carries no information). Fixed in advance, as the simultaneous band
    of Säilynoja et al. (2022) requires.

    :returns: ``(K,)`` int64 array.
    """
    if num_draws < 1:
        raise ValueError(f"num_draws must be >= 1, got {num_draws}")
    k = min(num_draws, max_points - 1)
    cuts = np.floor(np.arange(1, k + 1) * (num_draws + 1) / (k + 1)).astype(np.int64) - 1
    return np.unique(np.clip(cuts, 0, num_draws - 1))


def _prob_inside(num_sims: int, cdf: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """P(low_k <= C_k <= high_k for all k) where C_k = #{u_i <= cdf_k} of ``num_sims`` iid
    uniforms: the recursion of Säilynoja et al. (2022, sec. 2.2) over conditional binomials
    C_k - C_{k-1} | C_{k-1} ~ Binomial(N - C_{k-1}, (F_k - F_{k-1}) / (1 - F_{k-1}))."""
    counts = np.arange(num_sims + 1)
    j = counts[:, None]  # count at the previous point
    k = counts[None, :] - j  # new successes
    n = num_sims - j  # remaining trials
    valid = k >= 0  # k <= n always holds here
    kk = np.where(valid, k, 0)
    log_factorial = special.gammaln(counts + 1.0)
    log_choose = np.where(valid, log_factorial[n] - log_factorial[kk] - log_factorial[n - kk],
                          -np.inf)
    state = np.zeros(num_sims + 1)
    state[0] = 1.0
    previous = 0.0
    for f, lo, hi in zip(cdf, low, high):
        step = 0.0 if previous >= 1.0 else (f - previous) / (1.0 - previous)
        if step <= 0.0:
            transition = (valid & (kk == 0)).astype(float)
        elif step >= 1.0:
            transition = (valid & (kk == n)).astype(float)
        else:
            with np.errstate(invalid="ignore"):
                transition = np.exp(log_choose + kk * np.log(step) + (n - kk) * np.log1p(-step))
        state = state @ transition
        state[(counts < lo) | (counts > hi)] = 0.0
        previous = f
    return float(state.sum())


def ecdf_test(ranks: np.ndarray, num_draws: int, max_points: int = 100) -> tuple[float, float]:
    """Simultaneous ECDF test of discrete uniformity of SBC ranks (Säilynoja et al. 2022).

    At each evaluation rank c_k (:func:`ecdf_eval_ranks`) the count C_k = #{ranks <= c_k}
    is Binomial(N, F_k) under uniformity, F_k = (c_k + 1) / (L + 1). The statistic is the
    smallest two-sided tail probability over the K points,
    s = min_k min(P(C_k <= c_obs), P(C_k >= c_obs)); its exact p-value
    P(S <= s_obs) = 1 - P(every C_k stays in the counts whose both tails exceed s_obs)
    is computed with the paper's binomial recursion, so discreteness and the dependence
    between points are handled exactly. Rejecting when p < alpha is the same as the ECDF
    leaving the simultaneous 1 - alpha band that ``arviz.plot_ecdf(...,
    confidence_bands="optimized")`` draws (up to the band's optimiser tolerance).

    :param ranks: ``(N,)`` ranks in ``{0..L}``; ``num_draws`` = L.
    :returns: ``(statistic s, p_value)``; p is 1.0 for a perfectly flat ECDF.
    :raises ValueError: ranks outside ``[0, L]``.
    """
    ranks = _check_ranks(ranks, num_draws)
    n = ranks.size
    cuts = ecdf_eval_ranks(num_draws, max_points)
    cdf = (cuts + 1) / (num_draws + 1)
    observed = (ranks[:, None] <= cuts[None, :]).sum(0)
    lower_tail = stats.binom.cdf(observed, n, cdf)
    upper_tail = stats.binom.sf(observed - 1, n, cdf)
    s = float(np.minimum(lower_tail, upper_tail).min())
    counts = np.arange(n + 1)[None, :]
    inside = (stats.binom.cdf(counts, n, cdf[:, None]) > s) & (
        stats.binom.sf(counts - 1, n, cdf[:, None]) > s
    )
    if not inside.any(axis=1).all():
        return s, 1.0
    low = np.argmax(inside, axis=1)
    high = n - np.argmax(inside[:, ::-1], axis=1)
    p_value = 1.0 - _prob_inside(n, cdf, low, high)
    return s, float(min(max(p_value, 0.0), 1.0))


def vsbc_test(ranks: np.ndarray, num_draws: int) -> tuple[float, float, float]:
    """VSBC symmetry test of Yao et al. (2018, sec. 3) for one parameter.

    p_i = P_q(z < z_i), z_i the simulated (true) value, estimated by ``rank_i / L`` from L
    draws of q. For an approximation that is symmetric-unbiased (their sec. 3), p is
    symmetric about 0.5; their test is the two-sample Kolmogorov-Smirnov test between {p_i}
    and {1 - p_i} (``scipy.stats.ks_2samp``). Under-dispersion alone keeps p symmetric (U-shaped);
    bias makes it lopsided.

    :returns: ``(ks_statistic, p_value, mean_p)``.
    """
    ranks = _check_ranks(ranks, num_draws)
    p = ranks / num_draws
    result = stats.ks_2samp(p, 1.0 - p)
    return float(result.statistic), float(result.pvalue), float(p.mean())
