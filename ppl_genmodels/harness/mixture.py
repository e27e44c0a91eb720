"""EM, k-means and mean-field CAVI on a Gaussian mixture, and what mean field gets wrong.

:func:`em_story` runs the whole comparison behind ``ppl-genmodels em``:

1. EM for theta of a 2-component mixture on posteriordb's low_dim_gauss_mix data from several
   starts (:func:`ppl_genmodels.learning.em.em`), log-likelihood per iteration (figure);
2. EM in the equal-variance limit against ``sklearn.cluster.KMeans`` on iris petals as the
   fixed component sd shrinks (:func:`ppl_genmodels.learning.em.kmeans_agreement`; figure);
3. CAVI, NUTS (assignments enumerated) and SVI on the same posterior of the conjugate
   Bayesian mixture (:mod:`ppl_genmodels.models.bayes_gauss_mix`), through
   :func:`ppl_genmodels.harness.compare`, with two extra report sections:

   - **label switching**: the components are exchangeable, so the posterior has K! copies of
     each mode. :func:`chain_modes` names the labelling each chain (or VI fit) sits in: NUTS
     chains started at random points settle in different ones (then R-hat flags them and
     pooled moments average the copies), a VI fit sits in exactly one;
   - **under-dispersion**: after undoing the label switching (:func:`aligned_draws`: every
     draw's components sorted by location, the identification of :mod:`.models.gauss_mix`),
     :func:`aligned_table` gives each engine's mean and sd per parameter and the sd ratio to
     NUTS: mean field ignores the coupling of assignments and components, so its sds are
     smaller (Bishop 2006 §10.1.2; Blei et al. 2017 §5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..learning.em import em, kmeans_agreement, load_iris_petals
from ..plotting import pyplot, save_figure

__all__ = ["chain_modes", "aligned_draws", "aligned_table", "em_story", "EMStory",
           "plot_em_traces", "plot_kmeans_limit", "plot_aligned_marginals", "KMEANS_SCALES"]

SITES = ("locs", "weights", "precisions")
KMEANS_SCALES = (2.0, 1.0, 0.5, 0.2, 0.05)
"""Fixed component sds (standardized iris units) of the k-means-limit table."""


def chain_modes(idata_by_engine: dict) -> pd.DataFrame:
    """Which labelling of the components each chain sits in.

    :param idata_by_engine: engine name -> InferenceData with a ``locs`` site ``(chain, draw, K)``.
    :returns: one row per (engine, chain): ``locs_mean`` (the chain's mean of each component's
        location, rounded), ``labelling`` (the components in increasing order of location,
        e.g. ``"0<1"`` or ``"1<0"``) and ``engine_labellings`` (distinct labellings over that
        engine's chains: 1 = no label switching between chains).
    """
    rows = []
    for engine, idata in idata_by_engine.items():
        locs = idata.posterior["locs"].values  # (chain, draw, K)
        means = locs.mean(1)
        labels = ["<".join(str(i) for i in np.argsort(m)) for m in means]
        for chain, (m, label) in enumerate(zip(means, labels)):
            rows.append({"engine": engine, "chain": chain,
                         "locs_mean": "(" + ", ".join(f"{v:.2f}" for v in m) + ")",
                         "labelling": label, "engine_labellings": len(set(labels))})
    return pd.DataFrame(rows).set_index(["engine", "chain"])


def aligned_draws(idata) -> dict[str, np.ndarray]:
    """Every draw's components reordered by increasing location (undoes label switching).

    :returns: ``"locs[k]"``, ``"weights[k]"``, ``"precisions[k]"`` -> ``(chain * draw,)`` arrays.
    """
    post = idata.posterior
    locs = post["locs"].values.reshape(-1, post["locs"].shape[-1])
    order = np.argsort(locs, axis=-1)
    out = {}
    for site in SITES:
        values = np.take_along_axis(post[site].values.reshape(locs.shape), order, -1)
        for k in range(values.shape[-1]):
            out[f"{site}[{k}]"] = values[:, k]
    return out


def aligned_table(idata_by_engine: dict, baseline: str = "nuts") -> pd.DataFrame:
    """Mean and sd per (engine, parameter) of the aligned draws, and ``sd_ratio`` and
    ``std_mean_error`` (= |mean - baseline mean| / baseline sd) against ``baseline``.

    :raises ValueError: ``baseline`` is not among the engines.
    """
    if baseline not in idata_by_engine:
        raise ValueError(f"baseline {baseline!r} is not among the engines {sorted(idata_by_engine)}")
    aligned = {name: aligned_draws(idata) for name, idata in idata_by_engine.items()}
    base = aligned[baseline]
    rows = []
    for name, draws in aligned.items():
        for param, values in draws.items():
            b_mean, b_sd = base[param].mean(), base[param].std(ddof=1)
            rows.append({"engine": name, "parameter": param, "mean": values.mean(),
                         "sd": values.std(ddof=1), "sd_ratio": values.std(ddof=1) / b_sd,
                         "std_mean_error": abs(values.mean() - b_mean) / b_sd})
    return pd.DataFrame(rows).set_index(["engine", "parameter"])


def plot_em_traces(results: dict, path: str | Path) -> Path:
    """Log-likelihood (nats) per EM iteration, one line per start. ``results``: label ->
    :class:`~ppl_genmodels.learning.em.EMResult`."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, result in results.items():
        ll = result.log_likelihood
        axes[0].plot(np.arange(len(ll)), ll, marker=".", label=label)
        gap = ll.max() - ll
        axes[1].semilogy(np.arange(len(ll) - 1), np.maximum(gap[:-1], 1e-12), marker=".", label=label)
    axes[0].set(xlabel="EM iteration", ylabel="log p(y | theta) (nats)",
                title="EM: log-likelihood never decreases")
    axes[1].set(xlabel="EM iteration", ylabel="final - current (nats)", title="distance to the fixed point")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_kmeans_limit(x: np.ndarray, rows: Sequence[dict], path: str | Path) -> Path:
    """One panel per fixed sd: points coloured by EM's hard assignment, EM's means (x) and
    KMeans's centres (+); title: agreement with KMeans's labels."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(rows), figsize=(3.1 * len(rows), 3.2), sharex=True, sharey=True)
    for ax, row in zip(np.atleast_1d(axes), rows):
        ax.scatter(x[:, 0], x[:, 1], c=row["labels"], s=8, cmap="viridis")
        ax.scatter(*row["locs"].T, marker="x", s=80, c="red", label="EM means")
        ax.scatter(*row["kmeans_centres"].T, marker="+", s=120, c="black", label="k-means")
        ax.set_title(f"sigma={row['scale']:g}: {100 * row['agreement']:.0f}% agree", fontsize=9)
        ax.set_xlabel("petal length (std.)")
    np.atleast_1d(axes)[0].set_ylabel("petal width (std.)")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.suptitle("EM with equal weights and fixed sd sigma -> k-means (sklearn KMeans, same init)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_aligned_marginals(idata_by_engine: dict, path: str | Path) -> Path:
    """Marginal densities of the aligned draws (:func:`aligned_draws`), engines overlaid."""
    from scipy.stats import gaussian_kde

    plt = pyplot()
    aligned = {name: aligned_draws(idata) for name, idata in idata_by_engine.items()}
    params = list(next(iter(aligned.values())))
    fig, axes = plt.subplots(1, len(params), figsize=(2.6 * len(params), 2.8))
    for ax, param in zip(axes, params):
        for name, draws in aligned.items():
            values = draws[param]
            grid = np.linspace(values.min(), values.max(), 200)
            if values.std() > 0:
                ax.plot(grid, gaussian_kde(values)(grid), label=name)
        ax.set_title(param, fontsize=9)
        ax.set_yticks([])
    axes[0].legend(fontsize=7)
    fig.suptitle("Marginals after undoing label switching (components sorted by location)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


@dataclass
class EMStory:
    """What :func:`em_story` computed.

    :ivar em_table: one row per EM start: iterations, final log-likelihood (nats), theta.
    :ivar kmeans_table: one row per fixed sd: agreement with KMeans, max centre distance.
    :ivar comparison: the CAVI / NUTS / SVI :class:`~ppl_genmodels.harness.Comparison`.
    :ivar modes: :func:`chain_modes`; :ivar aligned: :func:`aligned_table`.
    :ivar figures: name -> PNG path.
    """

    em_table: pd.DataFrame
    kmeans_table: pd.DataFrame
    comparison: object
    modes: pd.DataFrame
    aligned: pd.DataFrame
    figures: dict = field(default_factory=dict)
    report: Path | None = None


def em_story(out: str | Path, quick: bool = False, seed: int = 0, progress: bool = True,
             engines: Sequence[str] = ("cavi", "nuts", "svi"), resume: bool = True,
             strict_resume: bool = False) -> EMStory:
    """EM, k-means and CAVI vs NUTS vs SVI (module docstring); writes the comparison's report
    with the extra sections into ``out`` (``report.md``, ``report.html``, CSVs, PNGs, one
    ``.nc`` per engine, reused on a rerun when their fingerprints match).

    :param quick: small NUTS/SVI budgets (a smoke test, not a verdict).
    :raises ValueError: unknown engines; ``out`` not writable (before any work).
    """
    from ..io import check_writable, write_text
    from ..models import get_model
    from . import compare

    out = Path(out)
    spec = get_model("bayes_gauss_mix")
    posterior = spec.posterior(quick=quick, seed=seed)
    check_writable(out)
    y = posterior.data["y"].double().numpy()
    starts = range(seed, seed + 3)
    em_results = {f"start {s}": em(y, 2, seed=s, max_iter=200) for s in starts}
    em_rows = []
    for label, r in em_results.items():
        order = np.argsort(r.locs[:, 0])
        em_rows.append({"start": label, "iterations": len(r.log_likelihood) - 1,
                        "log_likelihood": r.log_likelihood[-1],
                        "weights": np.round(r.weights[order], 3).tolist(),
                        "locs": np.round(r.locs[order, 0], 3).tolist(),
                        "sds": np.round(np.sqrt(r.covariances[order, 0, 0]), 3).tolist()})
    em_table = pd.DataFrame(em_rows).set_index("start")
    x = load_iris_petals()
    init = x[[0, 60, 120]]
    k_rows = kmeans_agreement(x, init, KMEANS_SCALES)
    kmeans_table = pd.DataFrame([{k: r[k] for k in ("scale", "agreement", "max_centre_distance",
                                                    "iterations")} for r in k_rows]).set_index("scale")
    comparison = compare(posterior, engines=list(engines), seed=seed,
                         engine_config=spec.engine_config(quick), progress=progress,
                         checkpoint_dir=out, resume=resume, strict_resume=strict_resume)
    modes = chain_modes(comparison.idata)
    baseline = "nuts" if "nuts" in comparison.idata else next(iter(comparison.idata))
    aligned = aligned_table(comparison.idata, baseline=baseline)
    figures = {"em_loglik": plot_em_traces(em_results, out / "em_loglik.png"),
               "kmeans_limit": plot_kmeans_limit(x, k_rows, out / "kmeans_limit.png"),
               "aligned_marginals": plot_aligned_marginals(comparison.idata, out / "aligned_marginals.png")}
    write_text(out / "em.csv", em_table.to_csv())
    write_text(out / "kmeans_limit.csv", kmeans_table.to_csv())
    write_text(out / "label_switching.csv", modes.to_csv())
    write_text(out / "aligned.csv", aligned.to_csv())
    fmt = {"floatfmt": ".4g"}
    sections = [
        ("EM for theta (low_dim_gauss_mix data, K = 2)",
         "Exact E-step by Pyro's enumeration; log p(y | theta) per iteration never decreases.\n\n"
         + em_table.to_markdown(**fmt), [figures["em_loglik"]]),
        ("k-means as EM's sigma -> 0 limit (iris petals, K = 3)",
         "EM with equal weights and every covariance sigma^2 I (only the means learned) against "
         "sklearn.cluster.KMeans from the same centres: agreement = share of identical hard "
         "assignments.\n\n" + kmeans_table.to_markdown(**fmt), [figures["kmeans_limit"]]),
        ("Label switching: which labelling each chain sits in",
         "The components are exchangeable. NUTS chains started at random points settle in "
         "different labellings (pooled moments then average the copies and R-hat flags it); "
         "each VI fit sits in one.\n\n" + modes.to_markdown(), []),
        (f"After undoing label switching: sd ratio to {baseline}",
         "Components sorted by location in every draw. Mean field (CAVI: q(assignments) q(globals); "
         "SVI: a diagonal Gaussian) ignores posterior coupling, so sd_ratio < 1 is "
         "under-dispersion.\n\n" + aligned.to_markdown(**fmt), [figures["aligned_marginals"]]),
    ]
    report = comparison.save(out, extra_sections=sections)
    return EMStory(em_table, kmeans_table, comparison, modes, aligned, figures, report)
