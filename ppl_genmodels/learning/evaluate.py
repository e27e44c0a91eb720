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

from .objectives import log_weights

__all__ = ["LogLikelihood", "log_likelihood", "per_image_log_weights"]


@dataclass
class LogLikelihood:
    """Result of :func:`log_likelihood`; all values in nats.

    :ivar per_image: ``(N,)`` log-mean-exp of the S log weights of each image.
    :ivar per_image_se: ``(N,)`` Monte Carlo standard error of each (delta method:
        sd(w) / (sqrt(S) mean(w))).
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
        lme = torch.logsumexp(lw, 0) - math.log(num_samples)
        w = torch.exp(lw - lw.max(0).values)
        ll.append(lme)
        se.append(w.std(0, unbiased=True) / (math.sqrt(num_samples) * w.mean(0))
                  if num_samples > 1 else torch.full_like(lme, float("nan")))
        elbo.append(lw.mean(0))
    return LogLikelihood(torch.cat(ll).numpy(), torch.cat(se).numpy(), torch.cat(elbo).numpy(),
                         num_samples)
