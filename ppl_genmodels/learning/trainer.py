"""Learn theta (and the encoder phi) of an image model: ``train(...)``, checkpoints, resume.

Methods (objectives per image, see :mod:`ppl_genmodels.learning.objectives` for why the
importance-weighted ones are written per image rather than with Pyro's batch-joint classes):

==========  ==========================================================================
svi         ``pyro.infer.Trace_ELBO`` (reparameterized for the VAE; score function for
            binary latents), ``num_particles`` vectorized (Kingma & Welling 2014)
iwae        ``pyro.infer.RenyiELBO(alpha=0)``: the importance-weighted bound with K
            vectorized particles, reparameterized (Burda et al. 2016); per image
rws         reweighted wake-sleep: wake-theta + insomnia * wake-phi + (1 - insomnia) *
            sleep-phi, K particles (Bornschein & Bengio 2015; Le et al. 2019)
wake_sleep  classic wake-sleep: wake-theta with one guide sample, sleep-phi on one fantasy
            per image (Hinton et al. 1995) -- the Helmholtz machine for ``sbn``
nvil        ``pyro.infer.TraceGraph_ELBO`` with the encoder's neural baselines (Mnih &
            Gregor 2014), for the binary ``sbn``
mle         maximum likelihood for the autoregressive models (``fvbn``, ``made``,
            ``pixelcnn``; no latent sites): the loss is -log p(x) per image, the exact
            log-likelihood of :mod:`ppl_genmodels.models.autoregressive`. With no latent
            sites ``Trace_ELBO`` with the empty guide gives the same loss and gradient (the
            tests check it), but computing it directly skips Pyro's tracing, which costs
            up to a fifth of a small model's step on a CPU (``bench/trainer_throughput.py``)
gan         the ``gan`` model only: non-saturating GAN loss for generator and
            discriminator, sleep-phase encoder (:mod:`.gan_training`; Goodfellow et al.
            2014); the reported loss is the generator's
==========  ==========================================================================

Mini-batches: the data-set objective is a sum over images (no global latents), so each
step uses the batch's per-image mean; Pyro's ELBOs return batch sums, which only rescales the
gradient by B (Adam's steps are invariant to that). Reported losses are nats per image.

Every epoch writes ``checkpoint.pt`` atomically (model, encoder, optimizer, every RNG state,
epoch, history); ``resume=True`` continues from it and reproduces an uninterrupted run
with the same seed bit for bit (single-threaded CPU).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from ..data.datasets import ImageDataset, load_image_dataset
from ..fingerprint import difference, source_fingerprint
from ..io import StaleFileError, atomic_path, damaged, check_writable, load_torch, write_text
from ..models.registry import IMAGE_MODELS
from ..posterior import Posterior
from . import objectives
from .config import TrainConfig, build_model, image_model
from .methods import METHODS

__all__ = ["METHODS", "IMAGE_MODELS", "TrainConfig", "TrainedRun", "train", "load_run", "build_model",
           "image_model", "posterior_from_run", "posterior_from_checkpoint"]

CHECKPOINT = "checkpoint.pt"
_KEYS = ("config", "epoch", "model", "guide", "optimizer", "rng", "history")
_PYRO_ELBOS = {"svi": pyro.infer.Trace_ELBO, "iwae": pyro.infer.RenyiELBO,
               "nvil": pyro.infer.TraceGraph_ELBO}


@dataclass
class TrainedRun:
    """A trained model: ``model`` (module with ``.model(x)``), ``guide`` (encoder), the
    config, per-epoch ``history`` (dicts: epoch, loss [nats/image], test_elbo [nats/image],
    time_s [s], images_per_s) and the run folder (or ``None``)."""

    model: torch.nn.Module
    guide: torch.nn.Module
    config: TrainConfig
    history: list[dict]
    directory: Path | None = None


def _step(config: TrainConfig, model, guide, x: torch.Tensor, gen=None) -> float:
    """One gradient evaluation (backward done); returns the per-image loss to report."""
    k, b = config.num_particles, x.shape[0]
    if config.method == "mle":  # exact -log p(x) per image (module docstring)
        loss = -gen.log_prob(x).mean()
        loss.backward()
        return loss.item()
    if config.method in _PYRO_ELBOS:
        elbo_cls = _PYRO_ELBOS[config.method]
        kwargs = {"alpha": 0.0} if config.method == "iwae" else {}
        elbo = elbo_cls(num_particles=k, vectorize_particles=k > 1, max_plate_nesting=1, **kwargs)
        return elbo.loss_and_grads(model, guide, x) / b
    if config.method == "rws":
        theta, phi = objectives.rws_losses(model, guide, x, k, config.insomnia)
        (theta + phi).backward()
        return theta.item()
    theta, sleep, neg_elbo = objectives.wake_sleep_losses(model, guide, x)
    (theta + sleep).backward()
    return neg_elbo.item()


def _rng_state(data_gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "data": data_gen.get_state(),
            "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(state: dict, data_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    data_gen.set_state(state["data"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _test_elbo(gen, guide, x_test: torch.Tensor, seed: int, exact: bool = False) -> float:
    if exact:  # mle: no latents, the ELBO is the exact log-likelihood
        with torch.no_grad():
            return float(torch.cat([gen.log_prob(xb) for xb in x_test.split(500)]).mean())
    # Own RNG stream, and eval mode (batch-norm statistics untouched): monitoring must not
    # change the training run.
    training = gen.training
    gen.eval()
    try:
        with torch.random.fork_rng(), torch.no_grad():
            torch.manual_seed(seed)
            log_p, log_q = objectives.log_weights(gen.model, guide, x_test, 1)
    finally:
        gen.train(training)
    return float((log_p - log_q).mean())


def _save(directory: Path, state: dict) -> None:
    with atomic_path(directory / CHECKPOINT) as tmp:
        torch.save(state, tmp)


def _dataset(config: TrainConfig) -> ImageDataset:
    dataset = load_image_dataset(config.data, config.data_dir)
    if config.num_train is not None:
        dataset.x_train = dataset.x_train[: config.num_train]
    return dataset


def train(model: str = "vae", data: str = "binarized_mnist", *, data_dir=None,
          method: str | None = None, epochs: int = 10, batch_size: int = 100,
          num_particles: int | None = None, lr: float | None = None, seed: int = 0, num_train: int | None = None, insomnia: float = 1.0,
          model_kwargs: dict | None = None, out=None, resume: bool = False, force: bool = False,
          max_time_s: float | None = None, progress: bool = True, device=None) -> TrainedRun:
    """Learn theta and phi of an image model (``"vae"``, ``"sbn"``, ``"gan"``, or an
    autoregressive model by ``mle``) on a named data set.

    :param data: a name from :data:`ppl_genmodels.data.IMAGE_DATASETS`, read from ``data_dir``.
    :param method: one of :data:`METHODS` (module docstring; default ``"gan"`` for the gan
        model, ``"svi"`` otherwise); ``num_particles`` defaults to 1 (svi, wake_sleep, nvil,
        gan) or 5 (iwae, rws).
    :param lr: Adam learning rate (default 2e-4 for gan, 1e-3 otherwise).
    :param num_train: use only the first ``num_train`` training images.
    :param model_kwargs: passed to the model's ``build`` (vae: latent_dim, hidden, arch;
        sbn: layers).
    :param out: run folder for ``checkpoint.pt``, ``config.json``, ``history.csv``; ``None``
        keeps everything in memory.
    :param resume: continue the run in ``out`` (its config must match, except ``epochs``).
    :param force: start afresh even if ``out`` holds a checkpoint.
    :param max_time_s: stop after the step that exceeds this wall-clock budget (seconds);
        the checkpoint then holds the partial epoch, and a resume starts the next epoch.
    :param device: torch device for the model and each batch (default CPU); the data order
        and the checkpoint's RNG states stay on the CPU (bit-identical resume is promised
        on a single-threaded CPU only).
    :returns: :class:`TrainedRun`.
    :raises ValueError: a bad option or combination (before any data is read);
        ``FileExistsError``: ``out`` has a checkpoint and neither ``resume`` nor ``force``;
        :class:`~ppl_genmodels.io.OutputFolderError` (a ``ValueError``): ``out`` is a file or
        not writable (checked before any data is read);
        :class:`~ppl_genmodels.io.DamagedFileError`: ``resume`` and the checkpoint cannot be
        read; :class:`~ppl_genmodels.io.StaleFileError`: ``resume`` and the checkpoint was
        made from other training images, model source or package version.
    """
    config = TrainConfig(model, data, str(Path(data_dir).resolve()) if data_dir else None, method,
                         epochs, batch_size, num_particles, lr, seed, num_train, insomnia,
                         dict(model_kwargs or {})).validate()
    device = torch.device(device or "cpu")
    directory = Path(out) if out is not None else None
    checkpoint = None
    if directory is not None and (directory / CHECKPOINT).exists():
        if resume:
            checkpoint = load_torch(directory / CHECKPOINT, _KEYS)
            saved = dict(checkpoint["config"], epochs=config.epochs)
            if saved != asdict(config):
                diff = {k: (saved.get(k), v) for k, v in asdict(config).items()
                        if saved.get(k) != v}
                raise ValueError(f"{directory}: cannot resume, config differs (saved, given): {diff}")
        elif not force:
            raise FileExistsError(f"{directory / CHECKPOINT} exists: pass resume=True (--resume) "
                                  "to continue it or force=True (--force) to start again")
    if directory is not None:
        check_writable(directory)
    dataset = _dataset(config)
    # beyond the config: the images' bytes (data_dir's files may change), the model's source
    fingerprint = source_fingerprint(image_model(config.model), {"x_train": dataset.x_train})
    why = difference(checkpoint.get("fingerprint", fingerprint), fingerprint) if checkpoint else None
    if why is not None:
        raise StaleFileError(f"{directory / CHECKPOINT} was made from {why}; rerun with --force "
                             "(force=True) or use another --out")
    x_test = torch.as_tensor(dataset.test_subset(1000)[0], dtype=torch.float32).to(device)
    pyro.set_rng_seed(config.seed)  # before building: the initial weights are part of the run
    gen, guide = build_model(config, dataset.pixels)
    gen.to(device), guide.to(device)
    params = list(gen.parameters()) + list(guide.parameters())
    if config.method == "gan":
        from .gan_training import GANOptimizers, gan_step

        optimizer = GANOptimizers(gen, guide, config.lr)
    else:
        optimizer = torch.optim.Adam(params, lr=config.lr)
    data_gen = torch.Generator()
    data_gen.manual_seed(config.seed)
    history, start_epoch = [], 0
    if checkpoint is not None:
        gen.load_state_dict(checkpoint["model"])
        guide.load_state_dict(checkpoint["guide"])
        optimizer.load_state_dict(checkpoint["optimizer"])  # follows the parameters' device
        _set_rng_state(checkpoint["rng"], data_gen)
        history, start_epoch = list(checkpoint["history"]), int(checkpoint["epoch"])
    if directory is not None:
        write_text(directory / "config.json", json.dumps(asdict(config), indent=2) + "\n")
    x_train = torch.as_tensor(dataset.x_train)
    n = len(x_train)
    steps_per_epoch = -(-n // config.batch_size)
    started = time.perf_counter()
    bar = tqdm(total=(config.epochs - start_epoch) * steps_per_epoch, disable=not progress,
               desc=f"train {config.model} by {config.method}", mininterval=0.5)
    out_of_time = False
    with pyro.get_param_store().scope():
        for epoch in range(start_epoch, config.epochs):
            epoch_start, total, seen, extras = time.perf_counter(), 0.0, 0, {}
            order = torch.randperm(n, generator=data_gen)
            for idx in order.split(config.batch_size):
                xb = x_train[idx].float()
                if dataset.dynamic:
                    xb = torch.bernoulli(xb / 255.0, generator=data_gen)
                if config.method == "gan":  # own optimizers per player
                    loss, extra = gan_step(gen, guide, xb.to(device), optimizer)
                    for key, value in extra.items():
                        extras[key] = extras.get(key, 0.0) + value * len(idx)
                else:
                    optimizer.zero_grad()
                    loss = _step(config, gen.model, guide, xb.to(device), gen)
                    optimizer.step()
                total += loss * len(idx)
                seen += len(idx)
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{total / seen:.2f}")
                if max_time_s is not None and time.perf_counter() - started > max_time_s:
                    out_of_time = True
                    break
            seconds = time.perf_counter() - epoch_start
            history.append({"epoch": epoch + 1, "loss": total / seen,
                            "test_elbo": _test_elbo(gen, guide, x_test, config.seed,
                                                    exact=config.method == "mle"),
                            "time_s": seconds, "images_per_s": seen / seconds,
                            "complete": not out_of_time,
                            **{key: value / seen for key, value in extras.items()}})
            if directory is not None:
                _save(directory, {"config": asdict(config), "pixels": dataset.pixels,
                                  "epoch": epoch + 1,
                                  "model": gen.state_dict(), "guide": guide.state_dict(),
                                  "optimizer": optimizer.state_dict(),
                                  "rng": _rng_state(data_gen), "history": history,
                                  "fingerprint": fingerprint})
                _write_history(directory, history)
            if out_of_time:
                break
    bar.close()
    return TrainedRun(gen, guide, config, history, directory)


def _write_history(directory: Path, history: list[dict]) -> None:
    keys = list(history[0])
    lines = [",".join(keys)] + [",".join(str(h[k]) for k in keys) for h in history]
    write_text(directory / "history.csv", "\n".join(lines) + "\n")


def load_run(directory) -> TrainedRun:
    """Rebuild a run from ``directory/checkpoint.pt`` (the model is built for the pixel count
    the checkpoint records; an older checkpoint without it takes the run's data set's).

    :raises FileNotFoundError: no checkpoint there (or, for an older checkpoint, no data set);
        :class:`~ppl_genmodels.io.DamagedFileError`: the checkpoint cannot be read.
    """
    directory = Path(directory)
    path = directory / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {directory} a `ppl-genmodels train` run folder?")
    checkpoint = load_torch(path, ("config", "model", "guide", "history"))
    try:
        config = TrainConfig(**checkpoint["config"])
    except TypeError as exc:
        raise damaged(path, exc) from exc
    pixels = checkpoint.get("pixels")
    if pixels is None:  # a checkpoint from before the pixel count was recorded: ask the data
        pixels = load_image_dataset(config.data, config.data_dir).pixels
    gen, guide = build_model(config, int(pixels))
    gen.load_state_dict(checkpoint["model"])
    guide.load_state_dict(checkpoint["guide"])
    gen.eval(), guide.eval()
    return TrainedRun(gen, guide, config, list(checkpoint["history"]), directory)


def posterior_from_run(run: TrainedRun, num_images: int = 4, seed: int = 0, data_dir=None,
                       name: str | None = None) -> Posterior:
    """p(z | x, theta) of ``num_images`` test images (a seeded random subset, see
    :meth:`~ppl_genmodels.data.ImageDataset.test_subset`) of the run's data set, under the
    run's theta; the guide is the trained encoder, ``params`` the generative module.

    :param data_dir: overrides the run's data folder.
    :param name: the posterior's name (default ``"{model}_{method}"``).
    :returns: a :class:`~ppl_genmodels.Posterior` with data ``{"x": (num_images, D)}`` float32.
    :raises ValueError: ``num_images < 1``; ``FileNotFoundError``: the data set's files.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    dataset = load_image_dataset(run.config.data, data_dir or run.config.data_dir)
    x, _ = dataset.test_subset(num_images, seed=seed)
    return Posterior(run.model.model, run.guide, {"x": torch.as_tensor(x, dtype=torch.float32)},
                     params=run.model, name=name or f"{run.config.model}_{run.config.method}",
                     dims=getattr(run.model, "dims", None))


def posterior_from_checkpoint(run_dir, num_images: int = 4, seed: int = 0, data_dir=None) -> Posterior:
    """:func:`posterior_from_run` of the run saved in ``run_dir`` (see :func:`load_run`).

    :raises FileNotFoundError: no checkpoint; ``ValueError``: ``num_images < 1``.
    """
    return posterior_from_run(load_run(run_dir), num_images, seed, data_dir)
