"""The inference-gap table of Cremer, Li & Duvenaud (2018, "Inference suboptimality in
variational autoencoders", ICML, Table 2 layout) for trained VAEs at fixed theta, per family.

For each trained run (one column; its encoder's family -- ``ffg``, ``iaf`` or ``spline`` --
names it) and each test image x_i:

- ``ELBO(q)``: the amortized encoder's ELBO;
- ``ELBO(q*_F)``: the ELBO of the per-image refit of family F (``vae.local_guide(encoder,
  x, F)``: :class:`~ppl_genmodels.models.vae.LocalGaussianGuide` for ffg, the
  :class:`~ppl_genmodels.models.vae_flows.LocalFlowGuide` for a flow), fitted by
  :class:`~ppl_genmodels.infer.SVI` at frozen theta from the encoder's output;
- ``log p^(x)``: the largest importance-weighted bound (Burda et al. 2016) over those
  proposals with S samples each -- a stochastic lower bound on log p(x) (the max over a few
  bounds is biased up by at most their Monte Carlo error, reported as ``iw_se``);
- approximation gap log p^(x) - ELBO(q*_F); amortization gap ELBO(q*_E) - ELBO(q), E the
  encoder's own family; their means over images with standard errors (sd over images /
  sqrt(N); differences paired per image), and the mean PSIS k-hat of each proposal.

All values in nats per image. No AIS: log p^(x) is importance sampling only.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyro
import torch

from .. import _arviz, diagnostics
from ..infer import SVI
from ..learning.evaluate import per_image_log_weights
from ..learning.trainer import TrainedRun, image_model, load_run
from ..posterior import Posterior

__all__ = ["GapResult", "inference_gaps", "gap_table"]


class GapResult:
    """Result of :func:`inference_gaps` for one run.

    :ivar per_image: rows (image, proposal) with ``elbo``, ``iw_bound``, ``iw_se`` (nats), ``k_hat``.
    :ivar family: the encoder's family; ``families``: the refit families.
    :ivar label: the column name (run folder name and encoder family).
    """

    def __init__(self, per_image: pd.DataFrame, family: str, families, label: str,
                 num_samples: int, refit_steps: int):
        self.per_image, self.family, self.families, self.label = per_image, family, families, label
        self.num_samples, self.refit_steps = num_samples, refit_steps

    def per_image_gaps(self) -> pd.DataFrame:
        """Rows per image: ``log_p_hat``, ``elbo_<proposal>``, ``approx_gap_<F>``, ``amort_gap``."""
        wide = self.per_image.pivot(index="image", columns="proposal")
        out = pd.DataFrame({"log_p_hat": wide["iw_bound"].max(axis=1)})
        for proposal in wide["elbo"].columns:
            out[f"elbo_{proposal}"] = wide["elbo"][proposal]
        for fam in self.families:
            out[f"approx_gap_{fam}"] = out["log_p_hat"] - out[f"elbo_refit_{fam}"]
        out["amort_gap"] = out[f"elbo_refit_{self.family}"] - out["elbo_amortized"]
        return out

    def column(self) -> dict[str, str]:
        """Cremer et al. Table 2 rows -> "mean ± se" (nats; k-hat: mean over images)."""
        g = self.per_image_gaps()
        n = len(g)

        def fmt(values):
            values = np.asarray(values, dtype=float)
            return f"{values.mean():.2f} ± {values.std(ddof=1) / math.sqrt(n):.2f}"

        rows = {"log p^(x)": fmt(g["log_p_hat"])}
        for fam in self.families:
            rows[f"ELBO(q*_{fam})"] = fmt(g[f"elbo_refit_{fam}"])
        rows["ELBO(q) amortized"] = fmt(g["elbo_amortized"])
        for fam in self.families:
            rows[f"approximation gap ({fam})"] = fmt(g[f"approx_gap_{fam}"])
        rows["amortization gap (encoder's family)"] = fmt(g["amort_gap"])
        rows["inference gap"] = fmt(g["log_p_hat"] - g["elbo_amortized"])
        flows = [f for f in self.families if f != "ffg"]
        if "ffg" in self.families:
            for fam in flows:
                rows[f"approx gap ffg - {fam} (paired)"] = fmt(g["approx_gap_ffg"] - g[f"approx_gap_{fam}"])
        k = self.per_image.groupby("proposal")["k_hat"]
        for proposal, values in k:
            rows[f"k-hat {proposal} (mean; share > 0.7)"] = (
                f"{values.mean():.2f}; {(values > 0.7).mean():.0%}")
        return rows


def _bounds(model, guide, x, num_samples: int, seed: int) -> pd.DataFrame:
    with pyro.get_param_store().scope(), torch.random.fork_rng():
        torch.manual_seed(seed)
        lw = per_image_log_weights(model, guide, x, num_samples).cpu().numpy()  # (S, B)
    b = diagnostics.importance_summary(lw, axis=0)
    return pd.DataFrame({"image": np.arange(lw.shape[1]), "elbo": b["elbo"],
                         "iw_bound": b["log_evidence"], "iw_se": b["log_evidence_se"],
                         "k_hat": [float(_arviz.psislw(lw[:, i])[1]) for i in range(lw.shape[1])]})


def inference_gaps(run, images: torch.Tensor, families=None, refit_steps: int = 500,
                   lr: float = 0.01, num_particles: int = 4, num_samples: int = 1000,
                   seed: int = 0, progress: bool = False, label: str | None = None) -> GapResult:
    """The per-image gaps of one trained VAE run at its frozen theta.

    :param run: a run folder or :class:`~ppl_genmodels.learning.TrainedRun` of ``vae``.
    :param images: ``(N, D)`` binary test images.
    :param families: refit families (default ``("ffg", <encoder family>)``, or ffg and iaf
        for an ffg encoder); the encoder's own family is always included.
    :param refit_steps: SVI steps of each per-image refit (``num_particles`` vectorized, Adam
        ``lr`` decayed tenfold).
    :param num_samples: S importance samples per image and proposal.
    :returns: :class:`GapResult`.
    :raises ValueError: the run is not a ``vae``; :class:`RuntimeError`: theta changed.
    """
    run = run if isinstance(run, TrainedRun) else load_run(run)
    if run.config.model != "vae":
        raise ValueError(f"the gap table needs a vae run (continuous latents), got {run.config.model}")
    module = image_model("vae")
    family = getattr(run.guide, "kind", "ffg")
    families = tuple(dict.fromkeys(families or ("ffg", family if family != "ffg" else "iaf")))
    if family not in families:
        families = families + (family,)
    x = torch.as_tensor(images, dtype=torch.float32)
    model = run.model.model
    guides = {"amortized": run.guide}
    for fam in families:
        refit = Posterior(model, module.local_guide(run.guide, x, fam), {"x": x}, params=run.model,
                          name=f"refit_{fam}")
        before = refit.theta()
        engine = SVI(num_steps=refit_steps, num_particles=num_particles, lr=lr, num_draws=2)
        guides[f"refit_{fam}"] = engine.run(refit, seed=seed, progress=progress).guide
        refit.check_theta_unchanged(before, f"refit {fam}")
    frames = [_bounds(model, guide, x, num_samples, seed).assign(proposal=name)
              for name, guide in guides.items()]
    label = label or f"{Path(run.directory).name if run.directory else 'run'} ({family} encoder)"
    return GapResult(pd.concat(frames, ignore_index=True), family, families, label, num_samples,
                     refit_steps)


def gap_table(results) -> pd.DataFrame:
    """Cremer et al. (2018) Table 2 layout: rows the bounds and gaps, one column per run."""
    return pd.DataFrame({r.label: r.column() for r in results})
