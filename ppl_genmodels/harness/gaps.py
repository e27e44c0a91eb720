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
  bounds is biased up by their Monte Carlo error, reported as ``iw_se``; with heavy-tailed
  weights, k-hat > 0.7, one draw can lift a bound by more: ``bench/RESULTS.md``, issue 11 AIS);
- ``log p^(x) AIS`` (with ``ais_steps`` T > 0): annealed importance sampling with HMC
  transitions from the ffg refit to the posterior (:mod:`ppl_genmodels.learning.ais`; Neal
  2001, Wu et al. 2017; Cremer et al. estimate log p(x) this way), M chains per image; its log
  Ẑ is also a stochastic lower bound on log p(x). With AIS, ``log p^(x)`` **is** the AIS
  estimate, as in Cremer et al.: the per-image maximum of IW bounds is biased up where the
  weights are heavy-tailed (a single lucky draw lifted 8 of 100 images by more than a nat,
  and did not reproduce at S = 20000; bench/RESULTS.md, issue 11 AIS). The best IW bound
  stays in the table as its own row, and AIS - best IW (paired);
- approximation gap log p^(x) - ELBO(q*_F); amortization gap ELBO(q*_E) - ELBO(q), E the
  encoder's own family; their means over images with standard errors (sd over images /
  sqrt(N); differences paired per image), and the mean PSIS k-hat of each proposal.

All values in nats per image. Without AIS (the default, ``ais_steps=0``) log p^(x) is
importance sampling only.
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
from ..learning.ais import annealed_importance_sampling
from ..learning.evaluate import per_image_log_weights
from ..learning.trainer import TrainedRun, image_model, load_run
from ..posterior import Posterior

__all__ = ["GapResult", "inference_gaps", "gap_table"]


class GapResult:
    """Result of :func:`inference_gaps` for one run.

    :ivar per_image: rows (image, proposal) with ``elbo``, ``iw_bound``, ``iw_se`` (nats), ``k_hat``.
    :ivar family: the encoder's family; ``families``: the refit families.
    :ivar label: the column name (run folder name and encoder family).
    :ivar ais: ``None``, or rows per image with ``ais_log_p``, ``ais_se`` (nats) and
        ``ais_acceptance``; ``ais_steps``, ``ais_chains``, ``ais_seconds`` its settings and time.
    """

    def __init__(self, per_image: pd.DataFrame, family: str, families, label: str,
                 num_samples: int, refit_steps: int, ais: pd.DataFrame | None = None,
                 ais_steps: int = 0, ais_chains: int = 0, ais_seconds: float = 0.0):
        self.per_image, self.family, self.families, self.label = per_image, family, families, label
        self.num_samples, self.refit_steps = num_samples, refit_steps
        self.ais, self.ais_steps, self.ais_chains, self.ais_seconds = ais, ais_steps, ais_chains, ais_seconds

    def per_image_gaps(self) -> pd.DataFrame:
        """Rows per image: ``log_p_hat``, ``log_p_iw`` (the best IW bound), with AIS
        ``log_p_ais``, ``elbo_<proposal>``, ``approx_gap_<F>``, ``amort_gap``."""
        wide = self.per_image.pivot(index="image", columns="proposal")
        out = pd.DataFrame({"log_p_hat": wide["iw_bound"].max(axis=1),
                            "log_p_iw": wide["iw_bound"].max(axis=1)})
        if self.ais is not None:  # AIS replaces the max of IW bounds (module docstring)
            out["log_p_ais"] = self.ais.set_index("image")["ais_log_p"]
            out["log_p_hat"] = out["log_p_ais"]
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
        if self.ais is not None:
            rows = {f"log p^(x) = AIS (T={self.ais_steps}, M={self.ais_chains})": fmt(g["log_p_ais"]),
                    "best IW bound": fmt(g["log_p_iw"]),
                    "AIS - best IW (paired)": fmt(g["log_p_ais"] - g["log_p_iw"])}
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
                   seed: int = 0, progress: bool = False, label: str | None = None,
                   ais_steps: int = 0, ais_chains: int = 16, ais_leapfrog: int = 5) -> GapResult:
    """The per-image gaps of one trained VAE run at its frozen theta.

    :param run: a run folder or :class:`~ppl_genmodels.learning.TrainedRun` of ``vae``.
    :param images: ``(N, D)`` binary test images.
    :param families: refit families (default ``("ffg", <encoder family>)``, or ffg and iaf
        for an ffg encoder); the encoder's own family is always included.
    :param refit_steps: SVI steps of each per-image refit (``num_particles`` vectorized, Adam
        ``lr`` decayed tenfold).
    :param num_samples: S importance samples per image and proposal.
    :param ais_steps: T annealing steps of AIS from the ffg refit (0: no AIS; ffg is added to
        ``families`` if missing); ``ais_chains``: M chains per image; ``ais_leapfrog``:
        leapfrog steps per HMC transition
        (:func:`~ppl_genmodels.learning.ais.annealed_importance_sampling`, pilot-adapted step
        sizes, sigmoid schedule). Cost:
        about T × (ais_leapfrog + 1) × M × N decoder passes with gradients.
    :returns: :class:`GapResult`.
    :raises ValueError: the run is not a ``vae``, ``ais_steps < 0`` or ``ais_chains < 1``
        (before any refit); :class:`RuntimeError`: theta changed.
    """
    if int(ais_steps) != ais_steps or ais_steps < 0:
        raise ValueError(f"ais_steps must be an integer >= 0 (0: no AIS), got {ais_steps}")
    if int(ais_chains) != ais_chains or ais_chains < 1:
        raise ValueError(f"ais_chains must be an integer >= 1, got {ais_chains}")
    run = run if isinstance(run, TrainedRun) else load_run(run)
    if run.config.model != "vae":
        raise ValueError(f"the gap table needs a vae run (continuous latents), got {run.config.model}")
    module = image_model("vae")
    family = getattr(run.guide, "kind", "ffg")
    families = tuple(dict.fromkeys(families or ("ffg", family if family != "ffg" else "iaf")))
    if family not in families:
        families = families + (family,)
    if ais_steps and "ffg" not in families:
        families = families + ("ffg",)
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
    ais = None
    if ais_steps:
        result = annealed_importance_sampling(
            model, guides["refit_ffg"], x, num_steps=ais_steps, num_chains=ais_chains,
            num_leapfrog=ais_leapfrog, seed=seed, progress=progress)
        ais = pd.DataFrame({"image": np.arange(len(x)), "ais_log_p": result.log_evidence,
                            "ais_se": result.log_evidence_se, "ais_acceptance": result.acceptance})
    label = label or f"{Path(run.directory).name if run.directory else 'run'} ({family} encoder)"
    return GapResult(pd.concat(frames, ignore_index=True), family, families, label, num_samples,
                     refit_steps, ais, ais_steps, ais_chains if ais_steps else 0,
                     result.seconds if ais_steps else 0.0)


def gap_table(results) -> pd.DataFrame:
    """Cremer et al. (2018) Table 2 layout: rows the bounds and gaps, one column per run."""
    return pd.DataFrame({r.label: r.column() for r in results})
