"""Posterior comparison at fixed theta for a trained image model (Cremer, Li & Duvenaud 2018,
"Inference Suboptimality in Variational Autoencoders", ICML).

Freeze a trained model p_theta and, on a batch of test images, compare:

- ``amortized``: the trained encoder q_phi(z | x) as it is (:class:`~ppl_genmodels.infer.Amortized`);
- ``svi``: a guide refit per image (non-amortized: its own variational parameters for each
  image, initialised at the encoder's output) by maximising the ELBO -- the best q* of the
  family, up to optimisation;
- ``rws``: the same per-image guide refit by reweighted wake-sleep (wake-phi);
- ``nuts``: NUTS on the batch's latents jointly (continuous latents only: the sigmoid belief
  net's binary latents are out of NUTS's reach, so ``sbn`` comparisons have no NUTS and no
  mean errors).

Per image i and guide q (all in nats except k-hat and the mean error):
ELBO_i(q) and the importance-weighted bound IW_i(q) with S samples; log p^(x_i) = the largest
IW_i over guides (each is a stochastic lower bound on log p(x_i)); approximation gap
log p^(x_i) - ELBO_i(q*), amortization gap ELBO_i(q*) - ELBO_i(q_amortized), with q* the
refit ``svi`` guide; the PSIS k-hat of q's S weights (Yao et al. 2018); and the mean over
latent dimensions of |E_q z - E_NUTS z| / sd_NUTS(z).
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
from ..learning.trainer import image_model, load_run, posterior_from_run
from ..io import atomic_path
from ..plotting import pyplot, save_figure
from ..posterior import Posterior
from .compare import Comparison

__all__ = ["compare_fixed_theta", "FixedThetaComparison"]


def _per_image(model, guide, x, num_samples: int, seed: int) -> pd.DataFrame:
    with pyro.get_param_store().scope(), torch.random.fork_rng():
        torch.manual_seed(seed)
        lw = per_image_log_weights(model, guide, x, num_samples).numpy()  # (S, B)
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
                 num_samples: int, note: str, run=None):
        self.comparison, self.per_image, self.gaps, self.run = comparison, per_image, gaps, run
        self.num_samples, self.note = num_samples, note

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
        figs = [_gap_figure(self.gaps, directory / "gaps.png"),
                _khat_figure(self.per_image, directory / "k_hat_per_image.png")]
        text = "\n".join([
            self.note, "",
            f"Per guide, averaged over the {len(self.gaps)} images (nats; IW bound with "
            f"S = {self.num_samples}; k-hat: PSIS Pareto shape of each image's weights):", "",
            self.summary().reset_index().to_markdown(index=False, floatfmt=".3f"), "",
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
        ax.plot(rows["image"], rows["k_hat"], "o-", label=guide)
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
                        progress: bool = True) -> FixedThetaComparison:
    """Compare the amortized encoder, per-image refit guides (SVI, RWS) and NUTS on
    p(z | x, theta) of ``num_images`` test images of a trained run, theta frozen.

    :param engine_config: engine name -> keyword arguments (defaults: the model module's
        ``engine_config``).
    :param num_samples: S for the per-image importance-weighted bounds and k-hat.
    :returns: :class:`FixedThetaComparison`.
    :raises RuntimeError: an engine changed theta (checked bit for bit after each).
    """
    run = load_run(run_dir)
    posterior = posterior_from_run(run, num_images, seed, data_dir)
    x = posterior.data["x"]
    module = image_model(run.config.model)
    config = {**module.engine_config(False), **(engine_config or {})}
    refit = Posterior(run.model.model, module.local_guide(run.guide, x), {"x": x}, params=run.model,
                      name=posterior.name)
    sites = posterior.validate()
    discrete = sorted(sites.discrete - set(sites.enumerated))  # NUTS cannot sample these
    continuous = not discrete
    plan = [("amortized", posterior), ("svi", refit), ("rws", refit)]
    if continuous:
        plan.append(("nuts", posterior))
    before = posterior.theta()
    results, engines = {}, {}
    for name, target in plan:
        engines[name] = get_engine(name, **config.get(name, {}))
        results[name] = engines[name].run(target, seed=seed, progress=progress)
        posterior.check_theta_unchanged(before, name)
    idata = {name: result.idata for name, result in results.items()}
    guides = {"amortized": run.guide, "svi": results["svi"].guide, "rws": results["rws"].guide}
    frames = []
    for name, guide in guides.items():
        frame = _per_image(run.model.model, guide, x, num_samples, seed).assign(guide=name)
        frame["mean_error_sd"] = (_mean_errors(idata[name], idata["nuts"], sites.latent)
                                  if continuous else np.nan)
        frames.append(frame)
    posterior.check_theta_unchanged(before, "per-image evaluation")
    per_image = pd.concat(frames, ignore_index=True)[
        ["image", "guide", "elbo", "iw_bound", "iw_bound_se", "k_hat", "mean_error_sd"]]
    wide = per_image.pivot(index="image", columns="guide")
    log_p_hat = wide["iw_bound"].max(axis=1)
    gaps = pd.DataFrame({
        "log_p_hat": log_p_hat,
        "elbo_refit": wide["elbo"]["svi"],
        "elbo_amortized": wide["elbo"]["amortized"],
        "approximation_gap": log_p_hat - wide["elbo"]["svi"],
        "amortization_gap": wide["elbo"]["svi"] - wide["elbo"]["amortized"],
    })
    note = (f"Fixed theta from `{run_dir}` ({run.config.model} trained by {run.config.method} "
            f"on {run.config.data}); {num_images} test images. log p^(x) is the largest "
            "importance-weighted bound over the guides.")
    if not continuous:
        note += (f" NUTS is absent: the latent site(s) {discrete} are discrete (binary or "
                 "integer-valued) and not enumerated, and Hamiltonian Monte Carlo needs a "
                 "differentiable density over continuous latents.")
    comparison = Comparison(posterior.name, idata, reference=None, engines=engines, results=results)
    return FixedThetaComparison(comparison, per_image, gaps, num_samples, note, run)
