"""Figures of a trained image model: samples, reconstructions, latent scatter, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..plotting import pyplot, save_figure


def image_grid(images: np.ndarray, image_shape, rows: int, title: str, row_labels=None):
    """A figure of ``(rows * cols, D)`` images in [0, 1] (pixel probabilities or pixels)."""
    plt = pyplot()
    cols = len(images) // rows
    h, w = image_shape
    grid = images[: rows * cols].reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
    fig, ax = plt.subplots(figsize=(cols * 0.6 + 1, rows * 0.6 + 0.6))
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(i + 0.5) * h for i in range(rows)] if row_labels else [])
    if row_labels:
        ax.set_yticklabels(row_labels)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def write_run_figures(run, dataset, x_test: torch.Tensor, y_test, directory: Path, seed: int = 0):
    """Write samples.png, reconstructions.png, training.png (and latent_scatter.png for 2-d
    VAE latents) into ``directory``; returns the file names."""
    plt = pyplot()
    cfg = run.config
    made = []
    gen = torch.Generator().manual_seed(seed)
    exact = cfg.method == "mle"  # autoregressive: binary ancestral samples, completions
    samples = run.model.sample_images(64, gen).cpu().numpy()
    what = "64 ancestral samples" if exact else "pixel probabilities of 64 model samples"
    save_figure(image_grid(samples, dataset.image_shape, 8, f"{cfg.model} ({cfg.method}): {what}"),
                directory / "samples.png")
    made.append("samples.png")
    x = x_test[:16]
    if exact:
        device = next(run.model.parameters()).device
        half = dataset.pixels // 2
        done = run.model.complete(x.to(device), half, gen).cpu().numpy()
        both = np.concatenate([x.cpu().numpy(), done])
        save_figure(image_grid(both, dataset.image_shape, 2, f"{cfg.model}: test images, and their "
                               "lower halves sampled given the upper", row_labels=["data", "compl."]),
                    directory / "completions.png")
        made.append("completions.png")
    else:
        recon = run.model.reconstruct(run.guide, x).cpu().numpy()
        both = np.concatenate([x.cpu().numpy(), recon])
        save_figure(image_grid(both, dataset.image_shape, 2, f"{cfg.model} ({cfg.method}): test images "
                               "and reconstructions", row_labels=["data", "recon."]),
                    directory / "reconstructions.png")
        made.append("reconstructions.png")
    epochs = [h["epoch"] for h in run.history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [-h["loss"] for h in run.history], "o-", label="training objective (per image)")
    ax.plot(epochs, [h["test_elbo"] for h in run.history], "s-",
            label="test log-likelihood (exact, 1000 images)" if exact
            else "test ELBO (1 sample, 1000 images)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.set_title(f"{cfg.model} trained by {cfg.method} on {cfg.data}")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, directory / "training.png")
    made.append("training.png")
    if cfg.model == "vae" and run.model.latent_dim == 2:
        with torch.no_grad():
            loc = run.guide.params(x_test)[0].cpu().numpy()
        fig, ax = plt.subplots(figsize=(5, 4.5))
        if y_test is not None:
            points = ax.scatter(loc[:, 0], loc[:, 1], c=y_test, cmap="tab10", s=6)
            fig.colorbar(points, ax=ax, label="class")
        else:
            ax.scatter(loc[:, 0], loc[:, 1], s=6)
            ax.text(0.01, 0.01, "no labels ship with this data set", transform=ax.transAxes)
        ax.set_xlabel("z[0] (encoder mean)")
        ax.set_ylabel("z[1] (encoder mean)")
        ax.set_title("test images in latent space")
        fig.tight_layout()
        save_figure(fig, directory / "latent_scatter.png")
        made.append("latent_scatter.png")
    return made
