"""Per-image posteriors of an image model at fixed theta: NUTS on every image as its own
posterior (one batched ensemble run), per-image diagnostics and verdicts, and the figure of
the active latent dimensions.

With theta fixed the posterior p(z_1..z_N | x_1..x_N, theta) factorizes over images, so each
image is its own posterior: NUTS adapts a step size and metric per image
(:meth:`ppl_genmodels.infer.NUTS.run_many`), and a guide's PSIS k-hat, NUTS's R-hat and ESS,
and the verdicts are computed per image (a k-hat of the joint weights of a batch grows with
the batch and says nothing about any one image).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import diagnostics
from ..diagnostics.verdicts import K_HAT_GOOD, K_HAT_MAX
from ..infer import EngineResult, NUTS
from ..infer.result import engine_attrs, make_inference_data
from ..plotting import pyplot, save_figure
from ..posterior import Posterior

__all__ = ["nuts_per_image", "nuts_image_table", "k_hat_verdict", "trust_counts",
           "active_dimensions", "active_dimensions_figure"]


def _split(posterior: Posterior) -> list[Posterior]:
    """One posterior per image: the same model and theta, data ``{"x": x[i:i+1]}``."""
    x = posterior.data["x"]
    return [posterior.replace(guide=None, data={"x": x[i:i + 1]}, name=f"{posterior.name}[{i}]",
                              coords=posterior.image_coords(i)) for i in range(x.shape[0])]


def nuts_per_image(posterior: Posterior, engine: NUTS, seed: int = 0,
                   progress: bool = True) -> tuple[EngineResult, list]:
    """NUTS on every image of ``posterior`` (data ``{"x": (N, D)}``) as its own posterior.

    :returns: ``(joint, per_image)``: ``joint`` an :class:`EngineResult` whose draws of each
        latent site have the batch's shape ``(chain, draw, N, ...)`` (image i's chain c is
        chain c of its own run; the images are independent given theta), per-draw
        statistics summed over images (``n_steps``, ``energy``, ``lp``), their maximum
        (``tree_depth``), mean (``step_size``, ``acceptance_rate``) or any (``diverging``); ``per_image`` the N InferenceData.
    :raises ValueError: from :meth:`ppl_genmodels.infer.NUTS.validate`.
    """
    results = engine.run_many(_split(posterior), seed=seed, progress=progress)
    per_image = [r.idata for r in results]
    draws = {var: np.concatenate([idata.posterior[var].values for idata in per_image], axis=2)
             for var in per_image[0].posterior.data_vars}
    stats = {}
    for var in per_image[0].sample_stats.data_vars:
        values = np.stack([idata.sample_stats[var].values for idata in per_image])
        if values.dtype == bool:
            stats[var] = values.any(0)
        elif var in ("tree_depth",):
            stats[var] = values.max(0)
        elif var in ("step_size", "acceptance_rate"):
            stats[var] = values.mean(0)
        else:
            stats[var] = values.sum(0)
    first = per_image[0].attrs
    attrs = engine_attrs(engine.name, json.loads(first["config"]), seed,
                         float(first["batch_wall_time_s"]),
                         sum(int(i.attrs["grad_evals"]) for i in per_image), posterior)
    attrs.update({k: first[k] for k in ("potential_mode", "potential_compiled", "num_posteriors",
                                        "batch_wall_time_s") if k in first})
    lockstep = sum(int(i.attrs["grad_evals_lockstep"]) for i in per_image)
    attrs.update(grad_evals_lockstep=lockstep,
                 lockstep_waste=1 - attrs["grad_evals"] / max(lockstep, 1))
    joint = make_inference_data(posterior, draws, stats, attrs)
    return EngineResult(joint), per_image


def nuts_image_table(per_image: list) -> pd.DataFrame:
    """One row per image: ``max_r_hat`` (rank-normalized), ``min_ess_bulk``,
    ``min_ess_tail``, ``divergences`` and NUTS's ``verdict`` with its reason
    (:func:`ppl_genmodels.diagnostics.verdict` on that image's own run)."""
    rows = []
    for i, idata in enumerate(per_image):
        summary = diagnostics.convergence_summary(idata)
        label, reason = diagnostics.verdict(idata, summary)
        rows.append({"image": i, "max_r_hat": float(summary["r_hat"].max()),
                     "min_ess_bulk": float(summary["ess_bulk"].min()),
                     "min_ess_tail": float(summary["ess_tail"].min()),
                     "divergences": int(idata.sample_stats["diverging"].values.sum()),
                     "verdict": label, "because": reason})
    return pd.DataFrame(rows)


def k_hat_verdict(k_hat) -> np.ndarray:
    """Verdict per PSIS k-hat (Yao et al. 2018): *trust* <= 0.5 < *caution* <= 0.7 <
    *do not trust*; an array of labels of ``k_hat``'s shape."""
    k_hat = np.asarray(k_hat, dtype=float)
    return np.where(k_hat > K_HAT_MAX, "do not trust",
                    np.where(k_hat > K_HAT_GOOD, "caution", "trust"))


def trust_counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Rows ``(image, engine, verdict)`` -> per engine: how many images each verdict got."""
    table = verdicts.groupby(["engine", "verdict"], sort=False).size().unstack(fill_value=0)
    for label in ("trust", "caution", "do not trust"):
        if label not in table:
            table[label] = 0
    table = table[["trust", "caution", "do not trust"]]
    table["images"] = table.sum(axis=1)
    return table


def active_dimensions(idata, site: str = "z", prior_sd: float = 1.0,
                      ratio: float = 0.5) -> list[np.ndarray]:
    """Per image, the latent dimensions whose posterior sd is below ``ratio`` x the prior sd
    (the dimensions the image informs; the others sit at the prior), most informed first.

    :param idata: draws of ``site`` with shape ``(chain, draw, N, L)``.
    :returns: N integer arrays of dimension indices.
    """
    values = idata.posterior[site].values
    sd = values.reshape(-1, *values.shape[2:]).std(0, ddof=1)  # (N, L)
    return [np.argsort(row)[: int((row < ratio * prior_sd).sum())] for row in sd]


def active_dimensions_figure(idata: dict, path: Path, images=(0, 1, 2, 3), site: str = "z",
                             baseline: str = "nuts", max_dims: int = 8) -> Path:
    """Posterior mean +/- sd of each engine on the most informed latent dimensions of a few
    images (chosen by ``baseline``'s posterior sd), one panel per image."""
    plt = pyplot()
    base = idata[baseline] if baseline in idata else next(iter(idata.values()))
    active = active_dimensions(base, site)
    images = [i for i in images if i < len(active)]
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.4), squeeze=False)
    width = 0.8 / max(len(idata), 1)
    for ax, image in zip(axes[0], images):
        dims = active[image][:max_dims]
        if len(dims) == 0:  # nothing informed: show the smallest-sd dimensions anyway
            values = base.posterior[site].values
            dims = np.argsort(values.reshape(-1, *values.shape[2:]).std(0)[image])[:max_dims]
        for k, (name, data) in enumerate(idata.items()):
            values = data.posterior[site].values
            flat = values.reshape(-1, *values.shape[2:])[:, image, dims]
            ax.errorbar(np.arange(len(dims)) + (k - (len(idata) - 1) / 2) * width,
                        flat.mean(0), yerr=flat.std(0), fmt="o", ms=3, label=name)
        ax.set_xticks(np.arange(len(dims)))
        ax.set_xticklabels([str(d) for d in dims], fontsize=7)
        ax.set_title(f"image {image}: {len(active[image])} active dims", fontsize=9)
        ax.set_xlabel(f"{site} dimension")
    axes[0][0].set_ylabel("posterior mean ± sd")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"Active latent dimensions (posterior sd < 0.5 prior sd under {baseline})",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    return path
