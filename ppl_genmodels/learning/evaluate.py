"""Test log-likelihood by importance sampling with the guide as proposal.

log p(x) >= E log (1/S) sum_s p(x, z_s) / q(z_s | x),  z_s ~ q(. | x)

is the importance-weighted bound of Burda, Grosse & Salakhutdinov (2016, eq. 8); with
S = 5000 it is the estimator behind the published MNIST log-likelihoods (their sec. 5.1).
It is a stochastic lower bound whose gap to log p(x) shrinks as S grows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..diagnostics import importance_summary
from .objectives import log_weights

__all__ = ["LogLikelihood", "log_likelihood", "exact_log_likelihood", "per_image_log_weights"]


@dataclass
class LogLikelihood:
    """Result of :func:`log_likelihood`; all values in nats.

    :ivar per_image: ``(N,)`` log-mean-exp of the S log weights of each image.
    :ivar per_image_se: ``(N,)`` Monte Carlo standard error of each (delta method:
        sd(w) / (sqrt(S) mean(w)); NaN for S = 1). Both from
        :func:`ppl_genmodels.diagnostics.importance_summary`.
    :ivar elbo_per_image: ``(N,)`` mean log weight (the ELBO estimate) of each image.
    :ivar num_samples: S.
    """

    per_image: np.ndarray
    per_image_se: np.ndarray
    elbo_per_image: np.ndarray
    num_samples: int

    @property
    def mean(self) -> float:
        """Average bound over the images (nats per image)."""
        return float(self.per_image.mean())

    @property
    def se(self) -> float:
        """Standard error of :attr:`mean` over the test images (image-to-image spread plus
        Monte Carlo error: sd over images / sqrt(N))."""
        n = len(self.per_image)
        return float(self.per_image.std(ddof=1) / math.sqrt(n)) if n > 1 else float(self.per_image_se[0])

    @property
    def elbo(self) -> float:
        """Average ELBO over the images (nats per image)."""
        return float(self.elbo_per_image.mean())

    def as_dict(self) -> dict:
        return {"log_likelihood": self.mean, "log_likelihood_se": self.se, "elbo": self.elbo,
                "elbo_se": float(self.elbo_per_image.std(ddof=1) / math.sqrt(len(self.per_image)))
                if len(self.per_image) > 1 else float("nan"),
                "num_images": int(len(self.per_image)), "num_samples": self.num_samples}


@torch.no_grad()
def per_image_log_weights(model, guide, x: torch.Tensor, num_samples: int,
                          particle_chunk: int = 500) -> torch.Tensor:
    """``(S, B)`` log weights log p(x_n, z) - log q(z | x_n), z ~ q, in chunks of particles.

    :raises ValueError: as :func:`~ppl_genmodels.learning.objectives.log_weights`.
    """
    chunks = []
    for start in range(0, num_samples, particle_chunk):
        k = min(particle_chunk, num_samples - start)
        log_p, log_q = log_weights(model, guide, x, k)
        chunks.append((log_p - log_q).double())
    return torch.cat(chunks, 0)


def log_likelihood(model, guide, data, num_samples: int = 5000, batch_size: int = 100,
                   particle_chunk: int = 500, progress: bool = False) -> LogLikelihood:
    """Importance-weighted estimate of log p(x) per image (Burda et al. 2016), nats.

    :param model: Pyro model ``model(x)``; every latent and ``x`` in
        ``pyro.plate("images", B, dim=-1)``; theta is used as is (no gradients).
    :param guide: Pyro guide ``guide(x)`` (the proposal), same plate.
    :param data: ``(N, D)`` images (tensor or array), or ``{"x": ...}``.
    :param num_samples: S importance samples per image.
    :param batch_size: images per forward pass; memory ~ particle_chunk * batch_size * D.
    :returns: :class:`LogLikelihood` (``.mean`` and ``.se`` in nats per image).
    :raises ValueError: empty data, NaN in the data, ``num_samples < 1``, or non-finite
        log weights (the guide puts mass where the model has none).
    """
    x = data["x"] if isinstance(data, dict) else data
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                        dtype=torch.get_default_dtype())
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"data must be (N, D) images with N >= 1, got shape {tuple(x.shape)}")
    bad = torch.nonzero(torch.isnan(x).any(-1)).flatten().tolist()
    if bad:
        raise ValueError(f"data['x'] has NaN at rows {bad[:10]}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    ll, se, elbo = [], [], []
    batches = list(x.split(batch_size))
    for xb in tqdm(batches, desc=f"log-likelihood (S={num_samples})", disable=not progress,
                   leave=False):
        lw = per_image_log_weights(model, guide, xb, num_samples, particle_chunk)
        if not torch.isfinite(lw).all():
            raise ValueError("non-finite log weights: the guide proposes latents with zero "
                             "density under the model")
        bounds = importance_summary(lw.cpu().numpy(), axis=0)  # from any device
        ll.append(bounds["log_evidence"])
        se.append(bounds["log_evidence_se"])
        elbo.append(bounds["elbo"])
    return LogLikelihood(np.concatenate(ll), np.concatenate(se), np.concatenate(elbo), num_samples)


@torch.no_grad()
def exact_log_likelihood(model, data, batch_size: int = 500, progress: bool = False) -> LogLikelihood:
    """Exact log p(x) per image of a model without latent sites (an autoregressive model of
    :mod:`ppl_genmodels.models.autoregressive`: ``model.log_prob(x)`` is the sum of the D
    per-pixel Bernoulli terms), nats.

    :param data: ``(N, D)`` images (tensor or array), or ``{"x": ...}``.
    :returns: :class:`LogLikelihood` with ``num_samples=0`` (no sampling), per-image Monte
        Carlo errors 0 and ``elbo_per_image`` equal to ``per_image`` (nothing to bound).
    :raises ValueError: data not ``(N, D)`` with N >= 1, or NaN in it.
    """
    x = data["x"] if isinstance(data, dict) else data
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                        dtype=torch.get_default_dtype())
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"data must be (N, D) images with N >= 1, got shape {tuple(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError("data['x'] has NaN")
    device = next(model.parameters()).device
    ll = [model.log_prob(xb.to(device)).double().cpu()
          for xb in tqdm(x.split(batch_size), desc="exact log-likelihood", disable=not progress,
                         leave=False)]
    per_image = torch.cat(ll).numpy()
    return LogLikelihood(per_image, np.zeros_like(per_image), per_image.copy(), 0)


def evaluate_run(run_dir, num_samples: int = 5000, num_test: int | None = 1000,
                 data_dir=None, seed: int = 0, figures: bool = True, progress: bool = True,
                 device=None) -> dict:
    """Evaluate a ``ppl-genmodels train`` run folder on its data set's test images.

    Writes (atomically) into ``run_dir``: ``evaluation.json`` (log-likelihood and ELBO in
    nats per image with standard errors, the protocol), ``evaluation.md``, and with
    ``figures``: ``samples.png`` (model samples), ``reconstructions.png``, ``training.png``
    (loss and test ELBO per epoch), and ``latent_scatter.png`` for 2-d VAE latents.

    :param num_test: a seeded random subset of that many test images (``None``: all).
    :param data_dir: override the data folder stored in the run's config.
    :param num_samples: S of the importance-weighted bound; ignored for a model without latent
        sites (``fvbn``, ``made``, ``pixelcnn``), whose log-likelihood is exact
        (:func:`exact_log_likelihood`) and whose figures are ancestral samples and
        completions of test images' lower halves instead of reconstructions.
    :param device: torch device for the evaluation (default CPU).
    :returns: the ``evaluation.json`` contents.
    :raises FileNotFoundError: no checkpoint in ``run_dir``.
    """
    import json
    import time
    from pathlib import Path

    from ..data.datasets import load_image_dataset
    from ..io import write_text
    from .trainer import load_run

    run = load_run(run_dir)
    device = torch.device(device or "cpu")
    run.model.to(device), run.guide.to(device)
    config = run.config
    exact = config.method == "mle"
    dataset = load_image_dataset(config.data, data_dir or config.data_dir)
    x_test, y_test = dataset.test_subset(num_test, seed=seed)
    x = torch.as_tensor(x_test, dtype=torch.float32)
    torch.manual_seed(seed)
    start = time.perf_counter()
    if exact:
        result = exact_log_likelihood(run.model, x, progress=progress)
        estimator = "exact: sum of the per-pixel Bernoulli log-probabilities (no latent variables)"
    else:
        result = log_likelihood(run.model.model, run.guide, x.to(device), num_samples=num_samples,
                                progress=progress)
        estimator = (f"importance-weighted bound, guide as proposal, S={num_samples} "
                     "(Burda et al. 2016)")
    seconds = time.perf_counter() - start
    out = {
        "model": config.model, "method": config.method, "data": config.data,
        "binarization": dataset.binarization, "epochs_trained": len(run.history),
        "train_seconds": float(sum(h["time_s"] for h in run.history)),
        **result.as_dict(), "eval_seconds": seconds,
        "estimator": estimator, "test_images_per_s": len(x) / seconds,
    }
    directory = Path(run_dir)
    write_text(directory / "evaluation.json", json.dumps(out, indent=2) + "\n")
    made = []
    if figures:
        from . import figures as fig

        if not exact:  # the latent models' figure code draws on the CPU
            run.model.cpu(), run.guide.cpu()
        made = fig.write_run_figures(run, dataset, x, y_test, directory, seed=seed)
    lines = [
        f"# Evaluation: {config.model} trained by {config.method} on {config.data}",
        "",
        f"- test log-likelihood: **{out['log_likelihood']:.2f} ± {out['log_likelihood_se']:.2f} "
        f"nats per image** ({out['estimator']}; {out['num_images']} test images, "
        f"{dataset.binarization} binarization)",
        f"- test ELBO: {out['elbo']:.2f} ± {out['elbo_se']:.2f} nats per image"
        + (" (= the exact log-likelihood: no latent variables)" if exact else ""),
        f"- trained {out['epochs_trained']} epoch(s) in {out['train_seconds']:.0f} s",
        "",
    ] + [f"![{name}]({name})\n" for name in made]
    write_text(directory / "evaluation.md", "\n".join(lines))
    return out
