"""The built-in ``vae_digits`` model: the VAE of :mod:`ppl_genmodels.models.vae` trained by
:func:`ppl_genmodels.learning.train` on scikit-learn's 8x8 digits, then frozen.

    z[n] ~ Normal(0, I_2);   x[n] ~ Bernoulli(logits = decoder_theta(z[n]))   (64 pixels)

Network: ``models.vae`` with ``arch="mlp"``, 2 latent dimensions and hidden layers of 128
tanh units. Data: the ``digits`` image data set (:func:`ppl_genmodels.data.load_image_dataset`:
``sklearn.datasets.load_digits`` binarized at grey level >= 8 of 16, a seeded 1500 / 297
train / test split).

theta (the decoder) is learned first by SVI (``Trace_ELBO``, Kingma & Welling 2014) with the
amortized encoder, mini-batches of 100 and Adam (learning rate 5e-3) for a fixed budget of 60
epochs (15 with ``quick``), then frozen; the comparison targets p(z | x, theta) of a seeded
subset of held-out digits, all latents jointly, with the trained encoder as every engine's
starting guide. There is no reference posterior: distances are to NUTS.

It lives in ``learning``, not beside the other built-in models, because it composes a model
module with the trainer: a model module knows only itself.
"""

from __future__ import annotations

from ..posterior import Posterior
from .trainer import TrainedRun, posterior_from_run, train

__all__ = ["NAME", "trained_run", "make_posterior", "reference", "engine_config"]

NAME = "vae_digits"
NUM_IMAGES = 8
TRAINING = {"method": "svi", "batch_size": 100, "lr": 5e-3,
            "model_kwargs": {"latent_dim": 2, "hidden": 128, "arch": "mlp"}}
"""Keyword arguments of :func:`~ppl_genmodels.learning.train` besides epochs and seed."""


def trained_run(quick: bool = False, seed: int = 0, progress: bool = True) -> TrainedRun:
    """Learn theta (and the encoder) on the digits' training images, in memory.

    :returns: a :class:`~ppl_genmodels.learning.TrainedRun`; its ``history`` holds the
        training curve (loss = mean negative ELBO per image, nats, per epoch).
    """
    return train("vae", "digits", epochs=15 if quick else 60, seed=seed, progress=progress,
                 **TRAINING)


def make_posterior(quick: bool = False, seed: int = 0, num_images: int = NUM_IMAGES) -> Posterior:
    """Train theta (:func:`trained_run`), freeze it, and target p(z | x, theta) of
    ``num_images`` held-out digits (``x``: ``(num_images, 64)`` in {0, 1}); for the training
    curve, call :func:`trained_run` and :func:`~ppl_genmodels.learning.posterior_from_run`."""
    return posterior_from_run(trained_run(quick, seed), num_images, seed=seed, name=NAME)


def reference(posterior: Posterior | None = None):
    """No closed form or published reference: the harness measures distances to NUTS."""
    return None


def engine_config(quick: bool = False) -> dict:
    """Engine name -> keyword arguments (steps, learning rates, NUTS draws) for this model."""
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 200, "warmup_steps": 200}}
    return {"svi": {"num_steps": 1500, "lr": 0.01}, "rws": {"num_steps": 1500, "lr": 0.01},
            "nuts": {"num_samples": 500, "warmup_steps": 500}}
