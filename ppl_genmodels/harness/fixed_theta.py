"""Posterior comparison at fixed theta for a trained image model (Cremer, Li & Duvenaud 2018,
"Inference Suboptimality in Variational Autoencoders", ICML).

Freeze a trained model p_theta and, on a batch of test images, compare:

- ``amortized``: the trained encoder q_phi(z | x) as it is (:class:`~ppl_genmodels.infer.Amortized`);
- ``svi``: a guide refit per image (non-amortized: its own variational parameters for each
  image, initialised at the encoder's output) by maximising the ELBO -- the best q* of the
  family, up to optimisation;
- ``rws``: the same per-image guide refit by reweighted wake-sleep (wake-phi);
- ``nuts``: NUTS with every image its own posterior, all images in one batched ensemble run
  (:mod:`.per_image`; continuous latents only: the sigmoid belief net's binary latents are out
  of NUTS's reach, so ``sbn`` comparisons have no NUTS and no mean errors).

Per image i and guide q (all in nats except k-hat and the mean error):
ELBO_i(q) and the importance-weighted bound IW_i(q) with S samples; log p^(x_i) = the largest
IW_i over guides (each is a stochastic lower bound on log p(x_i)); approximation gap
log p^(x_i) - ELBO_i(q*), amortization gap ELBO_i(q*) - ELBO_i(q_amortized), with q* the
refit ``svi`` guide; the PSIS k-hat of q's S weights (Yao et al. 2018); and the mean over
latent dimensions of |E_q z - E_NUTS z| / sd_NUTS(z). Verdicts are per image too: a guide's
from its k-hat on that image, NUTS's from that image's R-hat, ESS and divergences; the report
counts the images each engine can be trusted on. The per-parameter tables and figures of the
standard report show the first ``report_images`` images only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyro
import torch

from .. import _arviz, diagnostics
from ..infer import get_engine
from ..learning.evaluate import per_image_log_weights
from ..learning.trainer import TrainedRun, image_model, load_run, posterior_from_run
from ..io import atomic_path
from ..plotting import pyplot, save_figure
from ..posterior import Posterior
from .compare import Comparison
from .per_image import (active_dimensions_figure, k_hat_verdict, nuts_image_table,
                        nuts_per_image, trust_counts)

__all__ = ["compare_fixed_theta", "FixedThetaComparison"]


def _per_image(model, guide, x, num_samples: int, seed: int) -> pd.DataFrame:
    with pyro.get_param_store().scope(), torch.random.fork_rng():
        torch.manual_seed(seed)
        lw = per_image_log_weights(model, guide, x, num_samples).cpu().numpy()  # (S, B)
    bounds = diagnostics.importance_summary(lw, axis=0)
    return pd.DataFrame({"image": np.arange(lw.shape[1]), "elbo": bounds["elbo"],
                         "iw_bound": bounds["log_evidence"],
                         "iw_bound_se": bounds["log_evidence_se"],
                         "k_hat": [float(_arviz.psislw(lw[:, i])[1]) for i in range(lw.shape[1])]})


def _mean_errors(idata, nuts, sites) -> np.ndarray:
    """Per image ``(B,)``: mean over the latent dimensions of ``sites`` (each ``(B, ...)`` per
    draw) of |E_q z - E_NUTS z| / sd_NUTS(z)."""
    errors = []
    for site in sites:
        q = idata.posterior[site].values.reshape(-1, *idata.posterior[site].shape[2:])
        p = nuts.posterior[site].values.reshape(-1, *nuts.posterior[site].shape[2:])
        err = np.abs(q.mean(0) - p.mean(0)) / p.std(0, ddof=1)
        errors.append(err.reshape(err.shape[0], -1))
    return np.concatenate(errors, axis=1).mean(1)


class FixedThetaComparison:
    """Result of :func:`compare_fixed_theta`.

    :ivar comparison: the standard :class:`~ppl_genmodels.harness.Comparison` of the engines.
    :ivar per_image: rows (image, guide) with ``elbo``, ``iw_bound``, ``iw_bound_se`` (nats),
        ``k_hat`` and ``mean_error_sd`` (NaN without NUTS).
    :ivar run: the trained run (:class:`~ppl_genmodels.learning.TrainedRun`) whose frozen
        model the engines targeted.
    :ivar gaps: rows per image with ``log_p_hat``, ``elbo_refit``, ``elbo_amortized``,
        ``approximation_gap`` and ``amortization_gap`` (nats).
    """

    def __init__(self, comparison: Comparison, per_image: pd.DataFrame, gaps: pd.DataFrame,
                 num_samples: int, note: str, run=None, nuts_images: pd.DataFrame | None = None,
                 idata: dict | None = None):
        self.comparison, self.per_image, self.gaps, self.run = comparison, per_image, gaps, run
        self.num_samples, self.note = num_samples, note
        self.nuts_images = nuts_images
        self.idata = idata or {}

    @property
    def verdicts(self) -> pd.DataFrame:
        """Rows ``(image, engine, verdict)``: guides by their k-hat on the image, NUTS by
        the image's own diagnostics."""
        rows = self.per_image[["image", "guide", "verdict"]].rename(columns={"guide": "engine"})
        if self.nuts_images is not None:
            rows = pd.concat([rows, self.nuts_images[["image", "verdict"]].assign(engine="nuts")],
                             ignore_index=True)
        return rows

    @property
    def trust(self) -> pd.DataFrame:
        """Per engine: the number of images it can be trusted on (*trust*), *caution*, *do
        not trust* (:func:`~ppl_genmodels.harness.per_image.trust_counts`)."""
        return trust_counts(self.verdicts)

    def summary(self) -> pd.DataFrame:
        """Per guide: the per-image columns averaged over images."""
        return self.per_image.groupby("guide", sort=False).mean(numeric_only=True).drop(columns="image")

    def save(self, directory) -> Path:
        """The comparison report plus ``per_image.csv``, ``gaps.csv`` and two figures
        (gaps and k-hat per image), added as a section of ``report.md``/``report.html``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "per_image.csv") as tmp:
            self.per_image.to_csv(tmp, index=False)
        with atomic_path(directory / "gaps.csv") as tmp:
            self.gaps.to_csv(tmp)
        if self.nuts_images is not None:
            with atomic_path(directory / "nuts_per_image.csv") as tmp:
                self.nuts_images.to_csv(tmp, index=False)
        figs = [_gap_figure(self.gaps, directory / "gaps.png"),
                _khat_figure(self.per_image, directory / "k_hat_per_image.png")]
        if self.idata and "z" in next(iter(self.idata.values())).posterior:
            figs.append(active_dimensions_figure(self.idata, directory / "active_dimensions.png"))
        nuts_text = []
        if self.nuts_images is not None:
            cols = ["max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences"]
            nuts_text = [
                "NUTS per image (each image its own posterior, own adaptation): quantiles "
                "over images of its worst parameter:", "",
                self.nuts_images[cols].quantile([0.0, 0.5, 0.9, 1.0]).rename_axis(
                    "quantile over images").reset_index().to_markdown(index=False, floatfmt=".3g"),
                ""]
        text = "\n".join([
            self.note, "",
            "Images each engine can be trusted on (guides: PSIS k-hat on that image; NUTS: "
            "that image's R-hat, ESS and divergences):", "",
            self.trust.reset_index().to_markdown(index=False), "",
            *nuts_text,
            f"Per guide, averaged over the {len(self.gaps)} images (nats; IW bound with "
            f"S = {self.num_samples}; k-hat: PSIS Pareto shape of each image's weights):", "",
            self.summary().reset_index().to_markdown(index=False, floatfmt=".3f"), "",
            "Gaps over images (nats; mean, sd, quantiles):", "",
            self.gaps.describe().T.reset_index().to_markdown(index=False, floatfmt=".3f"), "",
            "Per image gaps (nats): approximation gap = log p^(x) - ELBO(refit q*), "
            "amortization gap = ELBO(q*) - ELBO(amortized encoder).", "",
            self.gaps.reset_index().to_markdown(index=False, floatfmt=".3f"), "",
        ])
        return self.comparison.save(directory, extra_sections=[("Gaps at fixed theta", text, figs)])


def _gap_figure(gaps: pd.DataFrame, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    idx = np.arange(len(gaps))
    ax.bar(idx - 0.2, gaps["approximation_gap"], 0.4, label="approximation gap")
    ax.bar(idx + 0.2, gaps["amortization_gap"], 0.4, label="amortization gap")
    ax.set_xticks(idx)
    ax.set_xlabel("test image")
    ax.set_ylabel("nats")
    ax.set_title("Inference gaps per image (Cremer et al. 2018)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return path


def _khat_figure(per_image: pd.DataFrame, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for guide, rows in per_image.groupby("guide", sort=False):
        ax.plot(rows["image"], rows["k_hat"], "o", ms=3, label=guide)
    for level, style in ((0.5, ":"), (0.7, "--")):
        ax.axhline(level, color="k", ls=style, lw=0.8)
    ax.set_xlabel("test image")
    ax.set_ylabel("PSIS k-hat")
    ax.set_title("k-hat per data point (Yao et al. 2018: < 0.5 good, > 0.7 unreliable)")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return path


def compare_fixed_theta(run_dir, num_images: int = 4, seed: int = 0, num_samples: int = 5000,
                        engine_config: dict | None = None, data_dir=None,
                        progress: bool = True, images=None,
                        report_images: int = 4, device: str | None = None) -> FixedThetaComparison:
    """Compare the amortized encoder, per-image refit guides (SVI, RWS) and NUTS on
    p(z | x, theta) of ``num_images`` test images of a trained run, theta frozen.

    :param run_dir: a run folder, or a :class:`~ppl_genmodels.learning.TrainedRun`.
    :param images: ``(N, D)`` images to use instead of a seeded subset of the run's test set.
    :param engine_config: engine name -> keyword arguments (defaults: the model module's
        ``engine_config``).
    :param num_samples: S for the per-image importance-weighted bounds and k-hat.
    :param report_images: images whose latents the standard per-parameter tables and
        figures show (all images enter the per-image tables and verdicts).
    :param device: torch device for theta, the guides, the images and every engine
        (``None``: where they are; ``"cuda"`` moves the run's modules in place and runs the
        engines under ``with torch.device(device)``).
    :returns: :class:`FixedThetaComparison`.
    :raises ValueError: ``num_images`` or ``report_images`` < 1, before any engine runs.
    :raises RuntimeError: an engine changed theta (checked bit for bit after each).
    """
    if report_images < 1:
        raise ValueError(f"report_images must be >= 1, got {report_images}")
    run = run_dir if isinstance(run_dir, TrainedRun) else load_run(run_dir)
    if device is not None:
        with torch.device(device):
            # Moves the run's decoder and encoder to the device, in place (Module.to).
            Posterior(run.model.model, run.guide, {}, params=run.model).to(device)
            return compare_fixed_theta(
                run, num_images, seed, num_samples, engine_config, data_dir, progress,
                None if images is None else torch.as_tensor(images).to(device), report_images)
    source = run_dir if isinstance(run_dir, (str, Path)) else "the given run"
    if images is None:
        posterior = posterior_from_run(run, num_images, seed, data_dir)
        device = next(run.model.parameters(), torch.empty(0)).device
        posterior = posterior.to(device) if device.type != "cpu" else posterior
    else:
        images = torch.as_tensor(images, dtype=torch.float32)  # keeps the images' device
        posterior = Posterior(run.model.model, run.guide, {"x": images}, params=run.model,
                              name=f"{run.config.model}_{run.config.method}",
                              dims=getattr(run.model, "dims", None))
    x = posterior.data["x"]
    num_images = x.shape[0]
    module = image_model(run.config.model)
    config = {**module.engine_config(False), **(engine_config or {})}
    refit = posterior.replace(guide=module.local_guide(run.guide, x))
    sites = posterior.validate()
    discrete = sorted(sites.discrete - set(sites.enumerated))  # NUTS cannot sample these
    continuous = not discrete
    plan = [("amortized", posterior), ("svi", refit), ("rws", refit)]
    engines = {name: get_engine(name, **config.get(name, {})) for name, _ in plan}
    if continuous:
        engines["nuts"] = get_engine("nuts", **config.get("nuts", {}))
    for name, target in plan:
        engines[name].validate(target)
    before = posterior.theta()
    results, nuts_images = {}, None
    for name, target in plan:
        results[name] = engines[name].run(target, seed=seed, progress=progress)
        posterior.check_theta_unchanged(before, name)
    if continuous:
        results["nuts"], nuts_idata = nuts_per_image(posterior, engines["nuts"], seed, progress)
        posterior.check_theta_unchanged(before, "nuts")
        nuts_images = nuts_image_table(nuts_idata)
    idata = {name: result.idata for name, result in results.items()}
    guides = {"amortized": run.guide, "svi": results["svi"].guide, "rws": results["rws"].guide}
    frames = []
    for name, guide in guides.items():
        frame = _per_image(run.model.model, guide, x, num_samples, seed).assign(guide=name)
        frame["mean_error_sd"] = (_mean_errors(idata[name], idata["nuts"], sites.latent)
                                  if continuous else np.nan)
        frame["verdict"] = k_hat_verdict(frame["k_hat"])
        frames.append(frame)
    posterior.check_theta_unchanged(before, "per-image evaluation")
    per_image = pd.concat(frames, ignore_index=True)[
        ["image", "guide", "elbo", "iw_bound", "iw_bound_se", "k_hat", "mean_error_sd", "verdict"]]
    wide = per_image.pivot(index="image", columns="guide")
    log_p_hat = wide["iw_bound"].max(axis=1)
    gaps = pd.DataFrame({
        "log_p_hat": log_p_hat,
        "elbo_refit": wide["elbo"]["svi"],
        "elbo_amortized": wide["elbo"]["amortized"],
        "approximation_gap": log_p_hat - wide["elbo"]["svi"],
        "amortization_gap": wide["elbo"]["svi"] - wide["elbo"]["amortized"],
    })
    shown = min(report_images, num_images)
    note = (f"Fixed theta from `{source}` ({run.config.model} trained by {run.config.method} "
            f"on {run.config.data}); {num_images} test images, each its own posterior. "
            "log p^(x) is the largest importance-weighted bound over the guides. The "
            f"per-parameter tables and figures above show the latents of the first {shown} "
            "images; the verdicts below cover every image.")
    if not continuous:
        note += (f" NUTS is absent: the latent site(s) {discrete} are discrete (binary or "
                 "integer-valued) and not enumerated, and Hamiltonian Monte Carlo needs a "
                 "differentiable density over continuous latents.")
    shown_idata = {name: _first_images(data, shown) for name, data in idata.items()}
    comparison = Comparison(posterior.name, shown_idata, reference=None, engines=engines,
                            results=results)
    return FixedThetaComparison(comparison, per_image, gaps, num_samples, note, run,
                                nuts_images, idata)


def _first_images(idata, n: int):
    """``idata`` with every latent site cut to its first ``n`` images (the axis after
    ``chain, draw``); sample statistics unchanged."""
    posterior = idata.posterior
    dims = {posterior[v].dims[2]: slice(0, n) for v in posterior.data_vars if posterior[v].ndim > 2}
    return idata.isel(groups="posterior", inplace=False, **dims) if dims else idata
