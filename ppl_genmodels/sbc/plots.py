"""SBC figures: rank histograms (Talts et al. 2018, fig. 1) and ECDF-difference plots with
simultaneous bands (Säilynoja, Bürkner & Vehtari 2022, via ``arviz.plot_ecdf``).

Each function returns a matplotlib Figure (Agg backend) with one panel per parameter.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .. import _arviz
from ..plotting import pyplot
from . import stats as sbc_stats

__all__ = ["rank_histograms", "ecdf_difference"]

MAX_PARAMS = 20


def _grid(num: int, width: float = 3.2, height: float = 2.5):
    plt = pyplot()
    cols = min(4, num)
    rows = math.ceil(num / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.6),
                             squeeze=False)
    for ax in axes.flat[num:]:
        ax.set_visible(False)
    return fig, axes.flat


def _shown(result, max_params: int) -> list[int]:
    """Failing parameters first, then the rest, at most ``max_params``."""
    verdicts = result.tests()["verdict"].to_numpy()
    order = [j for j in range(len(verdicts)) if verdicts[j] == "fail"]
    order += [j for j in range(len(verdicts)) if verdicts[j] != "fail"]
    return order[:max_params]


def rank_histograms(result, max_params: int = MAX_PARAMS, band: float = 0.99):
    """Histogram of SBC ranks per parameter with the ``band`` binomial interval.

    Under calibration bin b's count is Binomial(N, w_b / (L + 1)), w_b = rank values in
    the bin; the grey band is its central ``band`` interval per bin (pointwise, as in
    Talts et al. 2018). A U shape means an over-confident posterior, a hump an
    over-dispersed one, a slope a biased one.

    :param result: :class:`~ppl_genmodels.sbc.SBCResult`.
    :returns: matplotlib Figure.
    """
    tests = result.tests()
    num_draws, n = result.num_draws, result.num_simulations
    bins = sbc_stats.rank_bins(num_draws, n, result.bins)
    bin_of = (np.arange(num_draws + 1) * bins) // (num_draws + 1)
    width = np.bincount(bin_of, minlength=bins)
    edges = np.concatenate([[0], np.cumsum(width)]) - 0.5  # in rank units
    low, high = stats.binom.interval(band, n, width / (num_draws + 1))
    expected = n * width / (num_draws + 1)
    shown = _shown(result, max_params)
    fig, axes = _grid(len(shown))
    for k, (ax, j) in enumerate(zip(axes, shown)):
        name = result.param_names[j]
        counts = np.bincount(bin_of[result.ranks[:, j]], minlength=bins)
        ax.fill_between(edges, np.append(low, low[-1]), np.append(high, high[-1]), step="post",
                        color="0.8", label=f"{band:.0%} binomial band")
        ax.stairs(expected, edges, color="0.4", linestyle="--", label="expected")
        ax.stairs(counts, edges, color="C0", linewidth=1.5, label="ranks")
        verdict = tests.loc[name, "verdict"]
        ax.set_title(f"{name}: {verdict}", fontsize=9, color="C3" if verdict == "fail" else "k")
        ax.set_xlabel(f"rank of simulated value among L={num_draws} draws", fontsize=8)
        ax.set_ylabel("simulations", fontsize=8)
        ax.set_xlim(edges[0], edges[-1])
        if k == 0:
            ax.legend(fontsize=7, loc="upper center")
    fig.suptitle(f"SBC rank histograms: {result.model}, {result.engine} "
                 f"(N={n} simulations, {bins} bins)", fontsize=10)
    fig.tight_layout()
    return fig


def ecdf_difference(result, max_params: int = MAX_PARAMS):
    """ECDF of the ranks minus the uniform CDF, with the simultaneous band.

    Drawn by ``arviz.plot_ecdf(ranks, eval_points, cdf, difference=True,
    confidence_bands="optimized")`` at the fixed evaluation ranks of
    :func:`~ppl_genmodels.sbc.stats.ecdf_eval_ranks`. The band's level is
    ``1 - alpha / P``, the Bonferroni level of the verdict, so a curve leaving it is a
    failing parameter (Säilynoja et al. 2022). Reading: a positive hump = ranks too small
    (the posterior sits above the truth), a negative hump = too large; a curve that rises
    then falls below zero = over-confident (U-shaped ranks), falls then rises =
    over-dispersed.

    :param result: :class:`~ppl_genmodels.sbc.SBCResult`.
    :returns: matplotlib Figure.
    """
    az = _arviz.plots()
    tests = result.tests()
    num_draws, n = result.num_draws, result.num_simulations
    level = 1 - result.alpha / len(result.param_names)
    cuts = sbc_stats.ecdf_eval_ranks(num_draws)

    def cdf(r):
        return (np.asarray(r) + 1) / (num_draws + 1)

    shown = _shown(result, max_params)
    fig, axes = _grid(len(shown))
    for k, (ax, j) in enumerate(zip(axes, shown)):
        name = result.param_names[j]
        az.plot_ecdf(result.ranks[:, j], eval_points=cuts, cdf=cdf, difference=True,
                     confidence_bands="optimized", ci_prob=level, ax=ax,
                     plot_kwargs={"label": "ECDF - uniform CDF", "color": "C0"},
                     fill_kwargs={"label": f"{level:.3g} simultaneous band", "color": "C0",
                                  "alpha": 0.2})
        ax.axhline(0.0, color="0.4", linewidth=0.8, linestyle="--")
        verdict, p = tests.loc[name, "verdict"], tests.loc[name, "ecdf_p"]
        ax.set_title(f"{name}: {verdict} (p={p:.2g})", fontsize=9,
                     color="C3" if verdict == "fail" else "k")
        ax.set_xlabel("rank", fontsize=8)
        ax.set_ylabel("ECDF difference", fontsize=8)
        if k == 0:
            ax.legend(fontsize=7, loc="lower center")
    fig.suptitle(f"SBC rank ECDF difference: {result.model}, {result.engine} (N={n})",
                 fontsize=10)
    fig.tight_layout()
    return fig
