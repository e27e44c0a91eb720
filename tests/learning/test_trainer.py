"""Training image models: every method runs, losses fall, the learned model beats the
independent-pixel baseline, and checkpoint/resume reproduces an uninterrupted run."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_genmodels.data import load_image_dataset
from ppl_genmodels.learning import load_run, log_likelihood, train

SHARED = Path(os.environ.get("PPL_GENMODELS_DATA",
                             Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
SMALL = {"vae": {"latent_dim": 5, "hidden": 50}, "sbn": {"layers": (20, 10)}}


@pytest.mark.parametrize("model,method", [
    ("vae", "svi"), ("vae", "iwae"), ("vae", "rws"), ("sbn", "rws"), ("sbn", "wake_sleep"),
    ("sbn", "nvil"), ("vae", "svi-conv"),
])
def test_each_method_trains_and_the_loss_falls(model, method):
    kwargs = dict(SMALL[model])
    if method == "svi-conv":
        method, kwargs = "svi", {"latent_dim": 5, "arch": "conv"}
    run = train(model, "digits", method=method, epochs=3, batch_size=50, lr=3e-3,
                num_train=600, model_kwargs=kwargs, progress=False)
    losses = [h["loss"] for h in run.history]
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 1.0, losses  # nats per image (64 pixels)


def _pixel_baseline(x_train, x_test):
    """Per-image log-likelihood of independent Bernoulli pixels fitted to x_train (nats)."""
    p = ((x_train.sum(0) + 1) / (len(x_train) + 2))  # Laplace smoothing
    return (x_test * np.log(p) + (1 - x_test) * np.log1p(-p)).sum(1)


def _data():
    """(name, data_dir, num_train, epochs): 2000 binarized-MNIST images for 4 epochs, or the
    embedded digits (1500 images of 64 pixels: fewer steps per epoch) for 20 epochs when
    ../shared/data is absent."""
    if SHARED.joinpath("binarized_mnist.npz").exists():
        return "binarized_mnist", str(SHARED), 2000, 4
    return "digits", None, 1500, 20


@pytest.mark.parametrize("model,method", [("vae", "svi"), ("sbn", "rws")])
def test_short_training_beats_the_independent_pixel_model(model, method):
    """Threshold: the independent-pixel Bernoulli model is the best model without latent
    structure; a latent-variable model that learned anything must beat it on held-out images
    by more than 3 standard errors of the paired per-image difference."""
    name, data_dir, num_train, epochs = _data()
    kwargs = {"latent_dim": 20} if model == "vae" else {"layers": (50,)}
    run = train(model, name, data_dir=data_dir, method=method, epochs=epochs, batch_size=50, lr=3e-3,
                num_train=num_train, model_kwargs=kwargs, progress=False, seed=0)
    dataset = load_image_dataset(name, data_dir)
    x_test, _ = dataset.test_subset(200, seed=1)
    result = log_likelihood(run.model.model, run.guide, torch.tensor(x_test).float(),
                            num_samples=500)
    diff = result.per_image - _pixel_baseline(dataset.x_train[:num_train].astype(float), x_test)
    assert diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(len(diff)), (result.mean, diff.mean())
    assert run.history[-1]["loss"] < run.history[0]["loss"]


@pytest.mark.parametrize("method", ["rws", "nvil"])
def test_resume_reproduces_an_uninterrupted_run(tmp_path, method):
    common = dict(method=method, batch_size=50, lr=3e-3, num_train=300, seed=7,
                  model_kwargs={"layers": (10, 5)}, progress=False)
    straight = train("sbn", "digits", epochs=3, out=tmp_path / "a", **common)
    train("sbn", "digits", epochs=1, out=tmp_path / "b", **common)
    resumed = train("sbn", "digits", epochs=3, out=tmp_path / "b", resume=True, **common)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for key, value in straight.guide.state_dict().items():
        assert torch.equal(value, resumed.guide.state_dict()[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    loaded = load_run(tmp_path / "b")
    assert torch.equal(loaded.model.down[0].weight, straight.model.down[0].weight)


def test_existing_run_needs_resume_or_force_and_matching_config(tmp_path):
    common = dict(method="wake_sleep", batch_size=50, num_train=100,
                  model_kwargs={"layers": (5,)}, progress=False)
    train("sbn", "digits", epochs=1, out=tmp_path, **common)
    with pytest.raises(FileExistsError, match="--resume"):
        train("sbn", "digits", epochs=2, out=tmp_path, **common)
    with pytest.raises(ValueError, match="config differs"):
        train("sbn", "digits", epochs=2, out=tmp_path, resume=True, **{**common, "batch_size": 20})
    train("sbn", "digits", epochs=1, out=tmp_path, force=True, **common)


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "iwae", "model": "sbn"}, "reparameterized"),
    ({"method": "rws", "num_particles": 1}, "num_particles >= 2"),
    ({"method": "wake_sleep", "num_particles": 3}, "one guide sample"),
    ({"method": "adam"}, "unknown method"),
    ({"model": "not_a_model"}, "unknown image model"),
])
def test_bad_options_fail_before_loading_data(kwargs, match):
    kwargs = {"model": "vae", **kwargs}
    with pytest.raises(ValueError, match=match):
        train(data="binarized_mnist", data_dir="/nonexistent", epochs=1, progress=False, **kwargs)
