"""Variational autoencoder on scikit-learn's 8x8 digits (real images), 2-d latent.

    z[n] ~ Normal(0, I_2);   x[n] ~ Bernoulli(logits = decoder(z[n]))   (64 pixels)

Data: ``sklearn.datasets.load_digits`` (1797 images, grey levels 0..16) binarized by
thresholding: pixel = 1 if grey level >= 8 else 0. A seeded permutation splits 1500
training images from 297 held-out ones.

The generative parameters theta (the decoder) are learned first by SVI (Trace_ELBO,
Kingma & Welling 2014) for a short fixed budget with the amortized encoder, then frozen;
the comparison targets p(z | x, theta) of a batch of held-out digits, all latents jointly,
with the trained encoder as every engine's starting guide. There is no reference
posterior: distances are to NUTS.
"""

from __future__ import annotations

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import load_digits_binarized
from ..posterior import Posterior

NAME = "vae_digits"

LATENT_DIM, HIDDEN, NUM_TRAIN = 2, 128, 1500


class Decoder(nn.Module):
    """theta: z (..., 2) -> Bernoulli logits (..., 64)."""

    def __init__(self, latent_dim: int = LATENT_DIM, hidden: int = HIDDEN, pixels: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, pixels))

    def forward(self, z):
        return self.net(z)


class Encoder(nn.Module):
    """Amortized guide q(z[n] | x[n]) = Normal(loc(x[n]), diag(scale(x[n])^2)); x: (N, 64)."""

    def __init__(self, latent_dim: int = LATENT_DIM, hidden: int = HIDDEN, pixels: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, 2 * latent_dim))
        self.latent_dim = latent_dim

    def forward(self, x, observations=None):
        if observations is not None:  # RWS sleep phase: x simulated from the model
            x = observations["x"]
        pyro.module("encoder", self)
        out = self.net(x)
        loc, scale = out[..., : self.latent_dim], nn.functional.softplus(out[..., self.latent_dim:]) + 1e-3
        with pyro.plate("images", x.shape[-2]):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class VAE(nn.Module):
    """Model of the VAE; ``model(x)`` with x (N, 64) in {0, 1}."""

    def __init__(self, latent_dim: int = LATENT_DIM, hidden: int = HIDDEN):
        super().__init__()
        self.decoder = Decoder(latent_dim, hidden)
        self.latent_dim = latent_dim

    def model(self, x):
        pyro.module("decoder", self.decoder)
        n = x.shape[-2]
        with pyro.plate("images", n):
            z = pyro.sample(
                "z", dist.Normal(x.new_zeros(n, self.latent_dim), 1.0).to_event(1)
            )
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)


def split(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(train (1500, 64), held_out (297, 64)) float tensors in {0, 1}."""
    images, _ = load_digits_binarized()
    order = np.random.default_rng(seed).permutation(len(images))
    x = torch.as_tensor(images[order], dtype=torch.get_default_dtype())
    return x[:NUM_TRAIN], x[NUM_TRAIN:]


def train(x_train: torch.Tensor, num_epochs: int = 60, batch_size: int = 100, lr: float = 5e-3,
          seed: int = 0, progress: bool = True) -> tuple[VAE, Encoder, list[float]]:
    """Learn theta (and the encoder) by SVI with Trace_ELBO on mini-batches.

    The per-batch loss is the negative ELBO of that batch (nats, not rescaled to the data
    set: Adam's steps are invariant to a constant factor).

    :returns: ``(vae, encoder, losses)``; ``losses`` = mean negative ELBO per image per epoch.
    """
    pyro.set_rng_seed(seed)
    vae, encoder = VAE(), Encoder()
    losses = []
    with pyro.get_param_store().scope():
        svi = pyro.infer.SVI(vae.model, encoder, pyro.optim.Adam({"lr": lr}), pyro.infer.Trace_ELBO())
        gen = torch.Generator().manual_seed(seed)
        bar = tqdm(range(num_epochs), desc="vae_digits: learn theta (SVI)", disable=not progress, leave=False)
        for _ in bar:
            order = torch.randperm(len(x_train), generator=gen)
            total = sum(svi.step(x_train[idx]) for idx in order.split(batch_size))
            losses.append(total / len(x_train))
            bar.set_postfix(neg_elbo_per_image=f"{losses[-1]:.2f}")
    return vae, encoder, losses


def make_posterior(quick: bool = False, seed: int = 0, batch_size: int = 8) -> Posterior:
    """Train theta (fixed budget), freeze it, and target p(z | x, theta) of ``batch_size``
    held-out digits. ``posterior.training_losses`` holds the training curve."""
    x_train, x_held_out = split(seed)
    vae, encoder, losses = train(x_train, num_epochs=15 if quick else 60, seed=seed)
    posterior = Posterior(vae.model, encoder, {"x": x_held_out[:batch_size]},
                          params=vae.decoder, name=NAME)
    posterior.training_losses = losses
    return posterior


def reference(posterior: Posterior | None = None):
    """No closed form or published reference: the harness measures distances to NUTS."""
    return None


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 200, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500, "lr": 0.01}, "rws": {"num_steps": 1500, "lr": 0.01},
            "nuts": {"num_samples": 500, "warmup_steps": 500}}
