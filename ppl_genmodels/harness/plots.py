"""Comparison figures (matplotlib, ArviZ's KDE, trace and rank plots). Each returns a
matplotlib Figure; the caller saves and closes it."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .. import _arviz, diagnostics
from ..plotting import pyplot

MAX_PARAMS = 20


def _colors(names):
    plt = pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {name: cycle[i % len(cycle)] for i, name in enumerate(names)}


def _params(comparison) -> list[str]:
    first = list(diagnostics.flat_draws(next(iter(comparison.idata.values()))))
    ref = comparison.reference
    if ref is not None:  # parameters with a reference first
        first = [p for p in first if p in ref.mean] + [p for p in first if p not in ref.mean]
    return first[:MAX_PARAMS]


def forest(comparison):
    """Posterior mean, +-1 sd (thick) and 94% interval (thin) per parameter and engine, with
    the reference in black: mean +- sd (thick) and, when it has draws, its 94% interval
    (thin). Parameters with a reference come first; at most ``MAX_PARAMS``."""
    plt = pyplot()
    params = _params(comparison)
    engines = list(comparison.idata)
    colors = _colors(engines)
    flat = {e: diagnostics.flat_draws(comparison.idata[e]) for e in engines}
    ref = comparison.reference
    rows = len(engines) + (1 if ref is not None else 0)
    fig, ax = plt.subplots(figsize=(7, 0.35 * rows * len(params) + 1.2))
    for i, p in enumerate(params):
        base = -i * (rows + 1)
        for j, e in enumerate(engines):
            if p not in flat[e]:
                continue
            v = flat[e][p].ravel()
            lo, hi = np.quantile(v, [0.03, 0.97])
            y = base - j
            ax.plot([lo, hi], [y, y], color=colors[e], lw=1)
            ax.plot([v.mean() - v.std(), v.mean() + v.std()], [y, y], color=colors[e], lw=3.5)
            ax.plot(v.mean(), y, "o", color=colors[e], ms=4, label=e if i == 0 else None)
        if ref is not None and p in ref.mean:
            y = base - len(engines)
            if ref.draws is not None and p in ref.draws:
                lo, hi = np.quantile(np.asarray(ref.draws[p]).ravel(), [0.03, 0.97])
                ax.plot([lo, hi], [y, y], color="k", lw=1)
            ax.plot([ref.mean[p] - ref.sd[p], ref.mean[p] + ref.sd[p]], [y, y], color="k", lw=3.5)
            ax.plot(ref.mean[p], y, "D", color="k", ms=4, label="reference" if i == 0 else None)
    ax.set_yticks([-i * (rows + 1) - (rows - 1) / 2 for i in range(len(params))], params)
    ax.set_xlabel("parameter value (model units)")
    ax.set_title(f"{comparison.posterior_name}: posterior mean, ±1 sd (thick), 94% interval (thin)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def densities(comparison):
    """Marginal density of each parameter, every engine overlaid (ArviZ KDE)."""
    plt = pyplot()
    az = _arviz.plots()
    params = _params(comparison)
    engines = list(comparison.idata)
    colors = _colors(engines)
    flat = {e: diagnostics.flat_draws(comparison.idata[e]) for e in engines}
    ncols = min(4, len(params))
    nrows = int(np.ceil(len(params) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.4 * nrows), squeeze=False)
    for ax, p in zip(axes.flat, params):
        for e in engines:
            if p in flat[e]:
                az.plot_kde(flat[e][p].ravel(), ax=ax, plot_kwargs={"color": colors[e]}, label=e)
        ref = comparison.reference
        if ref is not None and ref.draws is not None and p in ref.draws:
            az.plot_kde(ref.draws[p], ax=ax, plot_kwargs={"color": "k", "ls": "--"}, label="reference")
        ax.set_title(p, fontsize=9)
        ax.set_yticks([])
        ax.set_xlabel("value (model units)", fontsize=8)
        if ax.get_legend():
            ax.get_legend().remove()
    for ax in list(axes.flat)[len(params):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", fontsize=8)
    fig.suptitle(f"{comparison.posterior_name}: marginal posterior densities (KDE)")
    fig.tight_layout()
    return fig


def pair_overlay(comparison, engine: str, against: str = "nuts", max_params: int = 4):
    """Pairwise scatter of ``engine``'s draws over ``against``'s (grey) for the first
    parameters; shows correlations a mean-field guide misses."""
    plt = pyplot()
    a = diagnostics.flat_draws(comparison.idata[engine])
    b = diagnostics.flat_draws(comparison.idata[against])
    params = [p for p in a if p in b][:max_params]
    k = len(params)
    fig, axes = plt.subplots(k, k, figsize=(2.3 * k, 2.3 * k), squeeze=False)
    rng = np.random.default_rng(0)
    for i, pi in enumerate(params):
        for j, pj in enumerate(params):
            ax = axes[i, j]
            if j > i:
                ax.set_visible(False)
                continue
            for draws, color, label in ((b, "0.6", against), (a, "C3", engine)):
                x, y = draws[pj].ravel(), draws[pi].ravel()
                keep = rng.permutation(x.size)[:800]
                if i == j:
                    ax.hist(x, bins=40, density=True, histtype="step", color=color, label=label)
                else:
                    ax.scatter(x[keep], y[keep], s=3, alpha=0.4, color=color, label=label)
            if i == k - 1:
                ax.set_xlabel(pj, fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(pi, fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right")
    fig.suptitle(f"{comparison.posterior_name}: {engine} (red) over {against} (grey)")
    fig.tight_layout()
    return fig


def nuts_trace(idata, max_params: int = 6):
    """ArviZ trace plot with rank bars (Vehtari et al. 2021) of the first ``max_params``
    scalar parameters (as ArviZ labels them: ``theta[0]``, ``z[0, 3]``)."""
    az = _arviz.plots()
    flat = diagnostics.flat_draws(idata)
    names = list(flat)[:max_params]
    scalars = _arviz.from_dict(posterior={p: flat[p] for p in names})
    axes = az.plot_trace(scalars, kind="rank_bars", compact=True)
    fig = axes.ravel()[0].figure
    fig.suptitle("NUTS: marginal densities per chain (left) and rank bars (right)")
    fig.tight_layout()
    return fig


def rank_plot(idata, max_params: int = 4):
    """ArviZ rank plot per chain (Vehtari et al. 2021, sec. 4.2; ``arviz.plot_rank``) of the
    first ``max_params`` scalar parameters: for well-mixed chains each chain's ranks of the
    pooled draws are uniform (bars scatter around the dashed line, the uniform
    expectation)."""
    plt = pyplot()
    az = _arviz.plots()
    flat = diagnostics.flat_draws(idata)
    names = list(flat)[:max_params]
    ncols = min(2, len(names))
    nrows = int(np.ceil(len(names) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 2.6 * nrows + 0.6), squeeze=False)
    scalars = _arviz.from_dict(posterior={p: flat[p] for p in names})
    az.plot_rank(scalars, kind="bars", ax=axes.ravel()[:len(names)])
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    for ax in axes.ravel():
        ax.set_xlabel("rank of draw among all chains", fontsize=8)
    fig.suptitle("NUTS rank plots: one row of bars per chain; flat at the dashed line = chains agree",
                 fontsize=10)
    fig.tight_layout()
    return fig


def psis_means(comparison):
    """Raw and PSIS-corrected VI means against the baseline, in baseline sds.

    One panel per engine with ``log_weight``: per parameter, (mean - baseline mean) /
    baseline sd for the raw guide draws (circle) and the self-normalized PSIS estimate
    (cross; :func:`ppl_genmodels.diagnostics.psis_moments`), joined by a line. The
    correction can be trusted only when the panel's k-hat < 0.7 (Vehtari et al. 2024).

    :raises ValueError: no engine has ``log_weight`` or there is no baseline.
    """
    plt = pyplot()
    vi = [n for n, d in comparison.idata.items()
          if "sample_stats" in d.groups() and "log_weight" in d.sample_stats]
    base_mean, base_sd = comparison.baseline_moments()
    if not vi or not base_mean:
        raise ValueError("psis_means needs an engine with log_weight and a baseline "
                         "(a reference or a NUTS run)")
    rows = sum(p in base_mean for p in _params(comparison))
    height = 0.3 * rows + 2.0
    fig, axes = plt.subplots(1, len(vi), figsize=(4.6 * len(vi), height),
                             squeeze=False, sharey=True)
    for ax, name in zip(axes[0], vi):
        idata = comparison.idata[name]
        draws = diagnostics.flat_draws(idata)
        params = [p for p in _params(comparison) if p in draws and p in base_mean]
        moments = diagnostics.psis_moments({p: draws[p] for p in params},
                                           idata.sample_stats["log_weight"].values)
        y = -np.arange(len(params))
        raw = np.array([(draws[p].mean() - base_mean[p]) / base_sd[p] for p in params])
        psis = np.array([(moments.at[p, "psis_mean"] - base_mean[p]) / base_sd[p] for p in params])
        ax.hlines(y, np.minimum(raw, psis), np.maximum(raw, psis), color="0.7", lw=1)
        ax.plot(raw, y, "o", color="C0", ms=5, label="raw guide mean")
        ax.plot(psis, y, "x", color="C3", ms=6, mew=2, label="PSIS-corrected mean")
        ax.axvline(0.0, color="k", lw=1, ls="--", label=f"{comparison.baseline} mean")
        ax.set_yticks(y, params, fontsize=8)
        k_hat = float(moments["k_hat"].iloc[0]) if len(moments) else np.nan
        note = "unreliable: k-hat > 0.7" if k_hat > diagnostics.K_HAT_MAX else "reliable"
        ax.set_title(f"{name}: PSIS k-hat {k_hat:.2f} ({note})", fontsize=10)
        ax.set_xlabel(f"(mean - {comparison.baseline} mean) / {comparison.baseline} sd")
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(f"{comparison.posterior_name}: VI means before and after PSIS correction")
    fig.tight_layout(rect=(0, 0.45 / height, 1, 1))  # leave 0.45 in for the legend
    return fig


def loss_curves(idatas: Mapping[str, object]):
    """Optimisation traces of the VI engines (nats), raw and smoothed over 50 steps."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, idata in idatas.items():
        for var in idata.sample_stats.data_vars:
            da = idata.sample_stats[var]
            if da.dims != ("step",):
                continue
            y = da.values
            ax.plot(y, alpha=0.25, lw=0.6)
            w = min(50, max(len(y) // 10, 1))
            smooth = np.convolve(y, np.ones(w) / w, mode="valid")
            ax.plot(np.arange(w - 1, len(y)), smooth, lw=1.5, label=f"{name}: {var}",
                    color=ax.lines[-1].get_color())
    ax.set_xlabel("optimisation step")
    ax.set_ylabel("loss (nats)")
    ax.set_yscale("symlog")
    ax.set_title("VI loss traces (light: per step; dark: moving average)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
