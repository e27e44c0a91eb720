"""Latent-space figures of trained image models: spherical interpolation and attribute arithmetic.

- Spherical linear interpolation (slerp; Shoemake 1985, used for generative models' Gaussian
  latents by White 2016, "Sampling generative networks"): a straight line between two draws of
  N(0, I_L) passes near the origin, where the prior has almost no mass in high dimension
  (norms concentrate near sqrt(L)); slerp follows the great circle, keeping norms in between.
- Attribute arithmetic (White 2016; Radford et al. 2016, sec. 6.3): an attribute vector is
  the difference of the mean latents of images with and without the attribute; adding
  multiples of it to one image's latent changes that attribute. For MNIST the attribute is
  stroke thickness ("ink": the fraction of on pixels), which needs no labels: the vector is
  the mean latent of the quarter of images with the most ink minus that of the quarter with
  the least. Latents of real images are the encoder's means -- for the GAN, the sleep-phase
  encoder's "given x, find z".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..learning.figures import image_grid
from ..plotting import save_figure

__all__ = ["slerp", "interpolation_figure", "attribute_vector", "arithmetic_figure", "latent_figures"]


def slerp(z0: torch.Tensor, z1: torch.Tensor, t) -> torch.Tensor:
    """Spherical linear interpolation from ``z0`` to ``z1`` (each ``(L,)``) at ``t`` ``(T,)``
    (floats in [0, 1]): ``sin((1 - t) w) / sin w * z0 + sin(t w) / sin w * z1`` with w the
    angle between them (Shoemake 1985; White 2016): for ``|z0| = |z1| = r`` every point has
    norm r. Returns ``(T, L)`` float64; ``t = 0`` gives ``z0``, ``t = 1`` gives ``z1``.
    Falls back to linear interpolation when the vectors are (anti-)parallel within 1e-6.

    :raises ValueError: shapes differ or are not 1-d, a zero vector, or ``t`` outside [0, 1].
    """
    z0, z1 = torch.as_tensor(z0, dtype=torch.float64), torch.as_tensor(z1, dtype=torch.float64)
    t = torch.as_tensor(t, dtype=torch.float64).reshape(-1, 1)
    if z0.dim() != 1 or z0.shape != z1.shape:
        raise ValueError(f"slerp needs two (L,) vectors of one shape; got {tuple(z0.shape)} and "
                         f"{tuple(z1.shape)}")
    if z0.norm() == 0 or z1.norm() == 0:
        raise ValueError("slerp needs non-zero vectors (the angle is undefined at the origin)")
    if ((t < 0) | (t > 1)).any() or not torch.isfinite(t).all():
        raise ValueError("slerp: t must lie in [0, 1]")
    cos = torch.clamp(z0 @ z1 / (z0.norm() * z1.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if torch.sin(omega).abs() < 1e-6:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def _decode(run, z: torch.Tensor) -> np.ndarray:
    model = run.model
    with torch.no_grad():
        z = z.to(torch.float32)
        if hasattr(model, "decode"):  # gan
            return model.decode(z).numpy()
        return torch.sigmoid(model.decoder(z)).numpy()  # vae


def _encode(run, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return run.guide.params(x)[0]


def interpolation_figure(run, x: torch.Tensor, path, pairs: int = 4, steps: int = 9, title="",
                         seed: int = 0) -> Path:
    """Rows of slerp interpolations: ``pairs`` rows between encoded test images (``x``
    ``(>= 2 pairs, D)``) and ``pairs`` rows between prior draws; ``steps`` columns."""
    side = int(round(x.shape[1] ** 0.5))
    t = torch.linspace(0, 1, steps)
    z_data = _encode(run, x[: 2 * pairs])
    gen = torch.Generator().manual_seed(seed)
    z_prior = torch.randn(2 * pairs, z_data.shape[1], generator=gen)
    rows, labels = [], []
    for zs, what in ((z_data, "data"), (z_prior, "prior")):
        for i in range(pairs):
            rows.append(_decode(run, slerp(zs[2 * i], zs[2 * i + 1], t)))
            labels.append(what)
    fig = image_grid(np.concatenate(rows), (side, side), len(rows),
                     title or "spherical interpolation", row_labels=labels)
    return save_figure(fig, path)


def attribute_vector(run, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The "ink" attribute vector ``(L,)``: mean encoder latent of the quarter of ``x``
    ``(N, D)`` with the most on pixels minus that of the quarter with the least. With
    ``labels`` ``(N,)`` the difference is taken within each class and averaged over classes,
    so that the vector does not also carry "which digit" (ink differs between classes: a 1
    has less than a 0).

    :raises ValueError: fewer than 8 images (per class, with ``labels``).
    """
    groups = [torch.arange(x.shape[0])] if labels is None else [
        torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
    if min(len(g) for g in groups) < 8:
        raise ValueError("attribute_vector needs at least 8 images (per class with labels)")
    z = _encode(run, x)
    diffs = []
    for g in groups:
        order = g[torch.argsort(x[g].sum(1))]
        q = len(g) // 4
        diffs.append(z[order[-q:]].mean(0) - z[order[:q]].mean(0))
    return torch.stack(diffs).mean(0)


def arithmetic_figure(run, x: torch.Tensor, path, rows: int = 6, scales=(-2, -1, 0, 1, 2), title="",
                      labels: torch.Tensor | None = None) -> Path:
    """``rows`` test images (first column) and their decodings at z + s * v for the ink
    attribute vector v (:func:`attribute_vector` of all of ``x``, within classes when
    ``labels`` are given) and each scale s."""
    side = int(round(x.shape[1] ** 0.5))
    v = attribute_vector(run, x, labels)
    z = _encode(run, x[:rows])
    cells = []
    for i in range(rows):
        cells.append(x[i:i + 1].numpy())
        cells.append(_decode(run, torch.stack([z[i] + s * v for s in scales])))
    fig = image_grid(np.concatenate(cells), (side, side), rows,
                     title or f"z + s * (thick - thin), s = {list(scales)} (first column: the image)")
    return save_figure(fig, path)


def latent_figures(run_dirs, out, num_images: int = 200, seed: int = 0) -> list[Path]:
    """``interpolation_<run>.png`` and ``arithmetic_<run>.png`` for each run (VAE or GAN;
    ``"vae_mnist"`` = the packaged VAE), on the packaged binarized MNIST test images.

    :raises ValueError: no runs, ``num_images`` outside 80..500, or a run whose images are
        not 784 pixels; ``FileNotFoundError``: a missing run folder.
    """
    from ..models.vae_mnist import packaged_mnist_images
    from .modes import _label, _load

    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ValueError("latent_figures needs at least one run folder")
    if not 80 <= num_images <= 500:
        raise ValueError(f"num_images must be in 80..500 (8 per class), got {num_images}")
    runs = [_load(r) for r in run_dirs]
    for r, run in zip(run_dirs, runs):
        if run.config.model not in ("vae", "gan"):
            raise ValueError(f"{r}: latent figures need Gaussian latents (vae or gan), got {run.config.model}")
        if run.model.sample_images(2).shape[-1] != 784:
            raise ValueError(f"{r}: not a 28x28 model; the figures use binarized MNIST test images")
    x, labels, _ = packaged_mnist_images(num_images)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for r, run in zip(run_dirs, runs):
        name = _label(r).split(" ")[0]
        what = f"{name} ({run.config.model}/{run.config.method})"
        made.append(interpolation_figure(run, x, out / f"interpolation_{name}.png", seed=seed,
                                         title=f"{what}: slerp, test images / prior draws"))
        made.append(arithmetic_figure(run, x, out / f"arithmetic_{name}.png", labels=labels,
                                      title=f"{name}: z + s (thick - thin), s = -2..2"))
    return made
