"""A VAE trained on binarized MNIST and 500 binarized MNIST test images, shipped in the package.

The files live in ``data/vae_mnist/`` next to this module; its ``README.md`` says how they were
made (training and packaging commands, commit, machine, wall time, test log-likelihood,
SHA-256 of the source file) and cites MNIST (LeCun et al. 1998) and the fixed binarization
(Larochelle & Murray 2011). ``scripts/make_vae_mnist_package.py`` remakes them from a
``ppl-genmodels train`` run folder.

- :func:`packaged_checkpoint_dir`: a folder in the project's run format (``checkpoint.pt``
  with ``config``, ``model``, ``guide``, ``history``; no optimizer state), readable by
  ``ppl_genmodels.learning.load_run`` and ``posterior_from_checkpoint``;
- :func:`packaged_vae`: the frozen generative model (:class:`~.vae.VAE`, 50 Gaussian latents,
  784 Bernoulli pixels) and its amortized encoder, rebuilt from that checkpoint;
- :func:`packaged_mnist_images`: the 500 test images (50 per digit class, interleaved so that
  image j has class j % 10 and any prefix of 10 m images holds m of every class), with their
  labels and their rows in the binarized MNIST test set;
- :func:`packaged_posterior`: p(z | x, theta) of the first N of those images at the packaged
  theta, with the trained encoder as guide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import vae

__all__ = ["PACKAGE_DIR", "packaged_checkpoint_dir", "packaged_checkpoint", "packaged_vae",
           "packaged_mnist_images", "packaged_posterior", "make_posterior", "engine_config",
           "reference"]

#: Folder of the packaged checkpoint, images, manifest and provenance.
PACKAGE_DIR = Path(__file__).parent / "data" / "vae_mnist"
CHECKPOINT_FILE = "checkpoint.pt"
IMAGES_FILE = "test_images.npz"
PIXELS = 28 * 28


def packaged_checkpoint_dir() -> Path:
    """The packaged run folder (holds ``checkpoint.pt``): pass it where a ``ppl-genmodels
    train`` run folder is expected. Its config's ``data_dir`` is ``None``: give a data
    folder explicitly if test images are to be read from files rather than from
    :func:`packaged_mnist_images`.

    :raises FileNotFoundError: the package was installed without its data files.
    """
    if not (PACKAGE_DIR / CHECKPOINT_FILE).is_file():
        raise FileNotFoundError(f"{PACKAGE_DIR / CHECKPOINT_FILE} is missing: the package data "
                                "was not installed (see setup.cfg [options.package_data])")
    return PACKAGE_DIR


def packaged_checkpoint() -> dict:
    """The packaged checkpoint's content: ``config`` (the ``train`` options), ``epoch``,
    ``model`` and ``guide`` (float32 state dicts), ``history`` (per-epoch dicts) and
    ``provenance``. Read with ``weights_only=True`` (no arbitrary unpickling)."""
    return torch.load(packaged_checkpoint_dir() / CHECKPOINT_FILE, weights_only=True,
                      map_location="cpu")


def packaged_vae() -> tuple[vae.VAE, vae.Encoder]:
    """``(model, encoder)`` of the packaged VAE (eval mode, as ``load_run`` gives them): ``model.model(x)``
    is the Pyro model p_theta(x, z) for ``x`` ``(B, 784)`` in {0, 1}, ``model.decoder(z)`` maps
    ``(..., 50)`` latents to ``(..., 784)`` Bernoulli logits, ``encoder(x)`` is the amortized
    guide and ``encoder.params(x)`` its ``(loc, scale)``, each ``(B, 50)``."""
    checkpoint = packaged_checkpoint()
    model, encoder = vae.build(PIXELS, **checkpoint["config"]["model_kwargs"])
    model.load_state_dict(checkpoint["model"])
    encoder.load_state_dict(checkpoint["guide"])
    model.eval(), encoder.eval()
    return model, encoder


def packaged_posterior(num_images: int = 100):
    """p(z | x, theta) of the first ``num_images`` packaged test images (class-balanced when a
    multiple of 10) under the packaged VAE, theta frozen: a :class:`~ppl_genmodels.Posterior`
    with data ``{"x": (num_images, 784)}``, the trained encoder as guide and the model module
    as ``params`` (:func:`packaged_mnist_images` says which images they are)."""
    from ..posterior import Posterior

    model, encoder = packaged_vae()
    x, _, _ = packaged_mnist_images(num_images)
    return Posterior(model.model, encoder, {"x": x}, params=model, name="vae_mnist",
                     dims=model.dims)


NUM_IMAGES = 100
"""Test images the default comparison uses (10 of each digit)."""
NUM_SAMPLES = 1000
"""Importance samples per image for the default comparison's bounds and k-hat."""


def make_posterior(quick: bool = False, seed: int = 0):
    """:func:`packaged_posterior` of ``NUM_IMAGES`` images (20 with ``quick``)."""
    return packaged_posterior(20 if quick else NUM_IMAGES)


def reference(posterior=None):
    """No closed form: NUTS is the yardstick."""
    return None


def engine_config(quick: bool = False) -> dict:
    """Budgets of the default fixed-theta comparison (per image: each image its own posterior)."""
    if quick:
        return {"svi": {"num_steps": 200, "lr": 0.01}, "rws": {"num_steps": 200, "lr": 0.01},
                "nuts": {"num_samples": 50, "warmup_steps": 50, "num_chains": 2},
                "amortized": {"num_draws": 200}}
    return {"svi": {"num_steps": 400, "lr": 0.01}, "rws": {"num_steps": 400, "lr": 0.01},
            "nuts": {"num_samples": 150, "warmup_steps": 150, "num_chains": 2},
            "amortized": {"num_draws": 1000}}


def packaged_mnist_images(num: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The packaged binarized MNIST test images (Larochelle & Murray 2011's fixed binarization).

    :param num: the first ``num`` images (all 500 when ``None``); a multiple of 10 is class-balanced.
    :returns: ``(images, labels, test_indices)``: ``images`` float32 ``(N, 784)`` with values in
        {0, 1} (28x28, row-major), ``labels`` int64 ``(N,)`` digit classes (image j has class
        j % 10), ``test_indices`` int64 ``(N,)`` rows of ``x_test`` in ``binarized_mnist.npz``.
    :raises ValueError: ``num`` < 1 or more than the packaged images;
        ``FileNotFoundError``: the package data was not installed.
    """
    path = PACKAGE_DIR / IMAGES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the package data was not installed")
    with np.load(path, allow_pickle=False) as npz:
        pixels = int(npz["pixels"])
        x = np.unpackbits(npz["bits"], axis=1, count=pixels)
        labels, indices = npz["labels"].astype(np.int64), npz["test_indices"].astype(np.int64)
    if num is not None:
        if not 1 <= num <= len(x):
            raise ValueError(f"num must be in 1..{len(x)}, got {num}")
        x, labels, indices = x[:num], labels[:num], indices[:num]
    return (torch.from_numpy(x.astype(np.float32)), torch.from_numpy(labels),
            torch.from_numpy(indices))
