"""The packaged MNIST VAE checkpoint and binarized MNIST test images (models/data/vae_mnist)."""

import configparser
import fnmatch
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_genmodels.learning import load_run, log_likelihood
from ppl_genmodels.models import vae_mnist

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("PPL_GENMODELS_DATA", ROOT / ".." / "shared" / "data"))
MNIST_TEST_CLASS_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


@pytest.fixture(scope="module")
def images():
    return vae_mnist.packaged_mnist_images()


@pytest.fixture(scope="module")
def packaged():
    return vae_mnist.packaged_vae()


def test_images_are_binary_float_784_with_labels_and_indices(images):
    x, labels, idx = images
    assert x.dtype == torch.float32 and x.shape == (500, 784)
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert labels.dtype == torch.int64 and labels.shape == (500,)
    assert idx.dtype == torch.int64 and idx.shape == (500,)
    assert len(set(idx.tolist())) == 500 and 0 <= idx.min() and idx.max() < 10000
    # 10-18% of pixels on, as in binarized MNIST (test mean 0.1325)
    assert 0.10 < x.mean().item() < 0.18


def test_class_balanced_and_interleaved(images):
    _, labels, idx = images
    assert np.bincount(labels.numpy(), minlength=10).tolist() == [50] * 10
    assert torch.equal(labels, torch.arange(500) % 10)
    for m in (1, 10):  # every prefix of 10 m images holds m of each class
        assert np.bincount(labels[: 10 * m].numpy(), minlength=10).tolist() == [m] * 10
    # the label is the class block of the (class-sorted) binarized test set the row falls in
    starts = np.cumsum((0,) + MNIST_TEST_CLASS_COUNTS)
    assert np.array_equal(np.searchsorted(starts, idx.numpy(), side="right") - 1, labels.numpy())


def test_num_gives_a_prefix_and_is_checked(images):
    x, labels, idx = vae_mnist.packaged_mnist_images(100)
    assert torch.equal(x, images[0][:100]) and torch.equal(idx, images[2][:100])
    assert labels.bincount().tolist() == [10] * 10
    for bad in (0, 501):
        with pytest.raises(ValueError, match="num"):
            vae_mnist.packaged_mnist_images(bad)


def test_images_equal_the_binarized_mnist_test_rows(images):
    path = SHARED / "binarized_mnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent (expected at ../shared/data)")
    x, labels, idx = images
    with np.load(path) as npz:
        x_test = npz["x_test"]
    assert np.array_equal(x.numpy().astype(np.uint8), x_test[idx.numpy()])
    manifest = json.loads((vae_mnist.PACKAGE_DIR / "manifest.json").read_text())
    assert manifest["source"]["binarized_mnist_npz_sha256"] == _sha256(path)


def test_labels_agree_with_grey_level_mnist(images):
    """Each chosen binarized image is most likely under its own MNIST test image's grey levels
    (Bernoulli(grey/255)), whose label is the packaged one (first 50 images, 5 per class)."""
    path = SHARED / "mnist.npz"
    if not path.is_file():
        pytest.skip(f"{path} is absent (expected at ../shared/data)")
    x, labels, _ = (t[:50] for t in images)
    with np.load(path) as npz:
        p = np.clip(npz["x_test"].reshape(10000, -1) / 255.0, 1e-3, 1 - 1e-3)
        y = npz["y_test"]
    xd = x.numpy().astype(np.float64)
    best = (xd @ np.log(p).T + (1 - xd) @ np.log1p(-p).T).argmax(1)
    assert np.array_equal(y[best], labels.numpy())


def test_checkpoint_is_small_float32_without_optimizer_state():
    path = vae_mnist.packaged_checkpoint_dir() / "checkpoint.pt"
    assert path.stat().st_size < 5 * 2**20
    checkpoint = vae_mnist.packaged_checkpoint()  # weights_only=True
    assert set(checkpoint) == {"config", "epoch", "model", "guide", "history", "provenance", "pixels"}
    assert checkpoint["pixels"] == 784
    for key in ("model", "guide"):
        assert all(t.dtype == torch.float32 for t in checkpoint[key].values())
    config = checkpoint["config"]
    assert config["model"] == "vae" and config["data"] == "binarized_mnist"
    assert config["model_kwargs"]["latent_dim"] == 50 and config["data_dir"] is None
    assert all(h["complete"] for h in checkpoint["history"])
    assert len(checkpoint["history"]) == checkpoint["epoch"] == config["epochs"]


def test_manifest_hashes_match_the_shipped_files():
    manifest = json.loads((vae_mnist.PACKAGE_DIR / "manifest.json").read_text())
    for name, entry in manifest["files"].items():
        path = vae_mnist.PACKAGE_DIR / name
        assert path.stat().st_size == entry["bytes"] and _sha256(path) == entry["sha256"], name


def test_packaged_vae_equals_load_run(packaged):
    model, encoder = packaged
    run = load_run(vae_mnist.packaged_checkpoint_dir())
    for mine, theirs in ((model, run.model), (encoder, run.guide)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert not mine.training
    assert model.latent_dim == 50 and encoder.latent_dim == 50
    assert run.config.model == "vae" and run.config.method == "iwae"


def test_packaged_posterior_targets_the_first_images(images):
    posterior = vae_mnist.packaged_posterior(10)
    assert torch.equal(posterior.data["x"], images[0][:10])
    assert not hasattr(posterior, "labels")  # nothing bolted onto Posterior
    assert {k: v.shape for k, v in posterior.theta().items()}["decoder.net.4.bias"] == (784,)


def test_decoder_gives_finite_trained_log_likelihoods(images, packaged):
    model, encoder = packaged
    x = images[0][:20]
    logits = model.decoder(encoder.params(x)[0])
    assert logits.shape == (20, 784) and torch.isfinite(logits).all()
    torch.manual_seed(0)
    ll = log_likelihood(model.model, encoder, x, num_samples=100)
    assert np.isfinite(ll.per_image).all() and (ll.per_image < 0).all()
    # trained: far above independent pixels (about -206 nats on binarized MNIST); the
    # IWAE-5000 bound on 1000 test images is in data/vae_mnist/README.md
    assert ll.mean > -110, ll.mean


def test_setup_cfg_ships_the_package_files():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    patterns = [p.strip() for p in cfg["options.package_data"]["ppl_genmodels.models"].split(",")]
    base = ROOT / "ppl_genmodels" / "models"
    shipped = [p for p in vae_mnist.PACKAGE_DIR.iterdir() if p.is_file()]
    assert {p.name for p in shipped} >= {"checkpoint.pt", "test_images.npz", "manifest.json", "README.md"}
    for path in shipped:
        rel = path.relative_to(base).as_posix()
        assert any(fnmatch.fnmatch(rel, pat) for pat in patterns), rel


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
