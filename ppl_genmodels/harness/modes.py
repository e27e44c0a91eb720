"""Mode coverage of trained image models, measured with a digit classifier.

The lecture notes' claim (Hu et al. 2018, "On unifying deep generative models"; Theis et al.
2016): maximum likelihood / the VAE's ELBO minimises KL(p_data || p_theta) and covers every
mode (blurry samples), while a GAN's generator behaves like KL(p_theta || p_data)
minimisation and may seek a few modes (mode collapse). Checked here as in Srivastava et al.
(2017, VEEGAN) and Metz et al. (2017, unrolled GANs): a classifier trained on MNIST's training
labels (scikit-learn's :class:`~sklearn.neural_network.MLPClassifier`, one hidden layer)
labels N samples of each model; per model we report the class histogram, its KL divergence
KL(model classes || test-set classes) in nats (0 when the model's class frequencies equal
the test set's; log 10 = 2.303 nats when every sample is one class and the test set is
uniform), the number of classes with fewer than half their expected share, and the fraction
of samples classified with probability >= ``confident`` (0.9).

The classifier is cached (``classifier.npz``: its weight arrays, no pickle; and
``classifier.json``: its key and test accuracies); the cache is used only when its key --
the SHA-256 of ``mnist.npz``, scikit-learn's version and every training option -- equals the
current one, and the report says whether it was reused or retrained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path, write_text
from ..plotting import pyplot, save_figure

__all__ = ["DigitClassifier", "digit_classifier", "mode_statistics", "mode_coverage",
           "ModeCoverage", "CLASSIFIER_OPTIONS"]

CLASSIFIER_OPTIONS = {"hidden_layer_sizes": [256], "max_iter": 20, "batch_size": 200,
                      "random_state": 0, "alpha": 1e-4}
"""Training options of the digit classifier (part of the cache key)."""
_FORMAT = 1


@dataclass
class DigitClassifier:
    """A trained :class:`~sklearn.neural_network.MLPClassifier` on 28x28 images in [0, 1]
    (grey level / 255), with its test accuracies (fractions) and cache status.

    :ivar accuracy: accuracy on MNIST's 10,000 grey-level test images.
    :ivar accuracy_binarized: accuracy on the same images binarized (pixel ~ Bernoulli(grey),
        seed 0), the format of binarized-MNIST models' samples.
    :ivar cached: True when loaded from a cache whose key matched; False when trained now.
    """

    model: object
    accuracy: float
    accuracy_binarized: float
    cached: bool
    key: dict

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """``(N, 784)`` images in [0, 1] -> ``(N, 10)`` class probabilities."""
        return self.model.predict_proba(np.asarray(images, dtype=np.float64))


def _mnist(data_dir) -> tuple[Path, dict]:
    from ..data.images import load_mnist_npz

    path = Path(data_dir) / "mnist.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the mode-coverage classifier is trained on "
                                "MNIST's labelled grey-level images (mnist.npz)")
    return path, load_mnist_npz(path)


def _rebuild(arrays: dict):
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import LabelBinarizer

    n = int(arrays["num_layers"])
    model = MLPClassifier(**{k: (tuple(v) if isinstance(v, list) else v)
                             for k, v in CLASSIFIER_OPTIONS.items()})
    model.coefs_ = [arrays[f"coef_{i}"] for i in range(n - 1)]
    model.intercepts_ = [arrays[f"intercept_{i}"] for i in range(n - 1)]
    model.n_layers_, model.n_outputs_, model.out_activation_ = n, 10, "softmax"
    model.classes_ = arrays["classes"]
    model.n_features_in_ = model.coefs_[0].shape[0]
    model._label_binarizer = LabelBinarizer().fit(model.classes_)
    return model


def digit_classifier(data_dir, cache_dir=None, progress: bool = True,
                     train_size: int | None = None) -> DigitClassifier:
    """Train (or load from ``cache_dir`` when its key matches) the MNIST digit classifier.

    :param data_dir: folder with ``mnist.npz`` (60,000 labelled training images).
    :param cache_dir: folder for ``classifier.npz`` and ``classifier.json`` (``None``: no cache).
    :param train_size: train on the first ``train_size`` images only (``None``: all; part of
        the cache key; a smaller classifier is less accurate, and its accuracy says so).
    :raises FileNotFoundError: no ``mnist.npz``; ``ValueError``: a malformed ``mnist.npz`` or
        ``train_size < 10``.
    """
    if train_size is not None and train_size < 10:
        raise ValueError(f"train_size must be >= 10, got {train_size}")
    import sklearn

    from ..data.images import sha256

    path, data = _mnist(data_dir)
    key = {"format": _FORMAT, "mnist_sha256": sha256(path), "sklearn": sklearn.__version__,
           "options": CLASSIFIER_OPTIONS, "train_size": train_size}
    x_test = data["x_test"].reshape(-1, 784) / 255.0
    y_test = data["y_test"].astype(np.int64)
    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None and (cache / "classifier.json").is_file() and (cache / "classifier.npz").is_file():
        try:
            meta = json.loads((cache / "classifier.json").read_text())
        except (OSError, ValueError):
            meta = {}
        if meta.get("key") == key:
            with np.load(cache / "classifier.npz", allow_pickle=False) as npz:
                model = _rebuild(dict(npz))
            return DigitClassifier(model, meta["accuracy"], meta["accuracy_binarized"], True, key)
        if progress:
            print(f"classifier cache in {cache} is stale (key differs): retraining", flush=True)
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    if progress:
        print(f"training the digit classifier (MLPClassifier, {len(data['x_train'][:train_size])} "
              "MNIST images)...", flush=True)
    model = MLPClassifier(**{k: (tuple(v) if isinstance(v, list) else v)
                             for k, v in CLASSIFIER_OPTIONS.items()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(data["x_train"][:train_size].reshape(-1, 784) / 255.0,
                  data["y_train"][:train_size].astype(np.int64))
    accuracy = float(model.score(x_test, y_test))
    binarized = np.random.default_rng(0).random(x_test.shape) < x_test
    accuracy_binarized = float(model.score(binarized.astype(np.float64), y_test))
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        arrays = {"num_layers": np.array(model.n_layers_), "classes": model.classes_}
        arrays.update({f"coef_{i}": c for i, c in enumerate(model.coefs_)})
        arrays.update({f"intercept_{i}": b for i, b in enumerate(model.intercepts_)})
        with atomic_path(cache / "classifier.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        write_text(cache / "classifier.json", json.dumps(
            {"key": key, "accuracy": accuracy, "accuracy_binarized": accuracy_binarized}, indent=2) + "\n")
    return DigitClassifier(model, accuracy, accuracy_binarized, False, key)


def mode_statistics(probs: np.ndarray, reference: np.ndarray, confident: float = 0.9) -> dict:
    """Class statistics of ``(N, K)`` classifier probabilities against ``(K,)`` reference
    class counts (or frequencies).

    :returns: ``counts`` ``(K,)`` of argmax classes; ``kl`` = KL(sample class frequencies ||
        reference frequencies) in nats (``scipy.special.rel_entr``, 0 log 0 = 0; infinite
        when a class the reference lacks is predicted); ``classes_covered``: classes with at
        least half their reference share; ``max_share``: the largest class frequency;
        ``confident_fraction``: fraction of samples whose largest probability >= ``confident``.
    :raises ValueError: shapes disagree, no samples, or negative / all-zero reference.
    """
    from scipy.special import rel_entr

    probs = np.asarray(probs, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0 or reference.shape != (probs.shape[1],):
        raise ValueError(f"probs must be (N >= 1, K) and reference (K,); got {probs.shape} and "
                         f"{reference.shape}")
    if (reference < 0).any() or reference.sum() <= 0:
        raise ValueError("reference counts must be >= 0 and not all zero")
    counts = np.bincount(probs.argmax(1), minlength=probs.shape[1])
    p, q = counts / counts.sum(), reference / reference.sum()
    return {"counts": counts, "kl": float(rel_entr(p, q).sum()),
            "classes_covered": int((p >= 0.5 * q).sum()), "max_share": float(p.max()),
            "confident_fraction": float((probs.max(1) >= confident).mean())}


@dataclass
class ModeCoverage:
    """Result of :func:`mode_coverage`: ``table`` (one row per model: kl [nats],
    classes_covered, max_share, confident_fraction, share of each class 0..9), the
    classifier, the test set's class frequencies and the figure paths."""

    table: pd.DataFrame
    classifier: DigitClassifier
    test_frequencies: np.ndarray
    num_samples: int
    figures: list

    def markdown(self) -> str:
        c = self.classifier
        size = c.key.get("train_size") or "all 60,000"
        head = (f"Classifier: scikit-learn MLPClassifier (hidden {CLASSIFIER_OPTIONS['hidden_layer_sizes']}, "
                f"{size} training images), "
                f"MNIST test accuracy {c.accuracy:.4f} (grey levels), {c.accuracy_binarized:.4f} "
                f"(binarized test images); {'reused from its cache (key matched)' if c.cached else 'trained now'}. "
                f"{self.num_samples} samples per model (generator / decoder means in [0, 1]). "
                "kl = KL(model class frequencies || test-set class frequencies), nats; "
                "covered = classes with at least half their test share; confident = max "
                "class probability >= 0.9.")
        return head + "\n\n" + self.table.to_markdown(floatfmt=".3f") + "\n"


def _label(run_dir) -> str:
    return "vae_mnist (packaged)" if str(run_dir) == "vae_mnist" else Path(run_dir).name


def _load(run_dir):
    from ..learning.trainer import load_run

    if str(run_dir) == "vae_mnist":
        from ..models.vae_mnist import packaged_checkpoint_dir

        run_dir = packaged_checkpoint_dir()
    return load_run(run_dir)


def mode_coverage(run_dirs, data_dir, num_samples: int = 10000, seed: int = 0, out=None,
                  cache_dir=None, confident: float = 0.9, progress: bool = True,
                  classifier_train_size: int | None = None) -> ModeCoverage:
    """Class histograms of ``num_samples`` samples of each trained run (:mod:`module docstring <.modes>`).

    :param run_dirs: ``ppl-genmodels train`` run folders (any image model on 28x28 images);
        ``"vae_mnist"`` names the packaged VAE.
    :param data_dir: folder with ``mnist.npz`` (classifier training and test labels).
    :param classifier_train_size: see :func:`digit_classifier` (``None``: all 60,000).
    :param out: folder for ``modes.md``, ``modes.csv``, ``samples_<model>.png`` and
        ``class_histograms.png`` (``None``: nothing written).
    :raises ValueError: no runs, ``num_samples < 1``, or a run whose images are not 784 pixels
        (checked before the classifier is trained); ``FileNotFoundError``: a missing run
        folder or ``mnist.npz``.
    """
    import torch

    from ..learning.figures import image_grid

    run_dirs = list(run_dirs)
    if not run_dirs:
        raise ValueError("mode_coverage needs at least one run folder")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    _mnist(data_dir)  # the file exists before any run is loaded
    runs = [_load(r) for r in run_dirs]
    for r, run in zip(run_dirs, runs):
        pixels = run.model.sample_images(2).shape[-1]
        if pixels != 784:
            raise ValueError(f"{r}: samples have {pixels} pixels; the MNIST classifier needs 784 (28x28)")
    classifier = digit_classifier(data_dir, cache_dir, progress, classifier_train_size)
    test_counts = np.bincount(np.load(Path(data_dir) / "mnist.npz")["y_test"], minlength=10)
    rows, figures = {}, []
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    for r, run in zip(run_dirs, runs):
        label = f"{_label(r)} ({run.config.model}/{run.config.method})"
        gen = torch.Generator().manual_seed(seed)
        samples = run.model.sample_images(num_samples, gen).numpy()
        probs = classifier.predict_proba(samples)
        stats = mode_statistics(probs, test_counts, confident)
        share = stats.pop("counts") / num_samples
        rows[label] = {**stats, **{str(k): share[k] for k in range(10)}}
        if out is not None:
            order = np.argsort(probs[:100].argmax(1), kind="stable")
            name = f"samples_{_label(r).split(' ')[0]}.png"
            save_figure(image_grid(samples[:100][order], (28, 28), 10,
                                   f"{label}: 100 samples, sorted by predicted class"), Path(out) / name)
            figures.append(name)
    table = pd.DataFrame.from_dict(rows, orient="index")
    test_frequencies = test_counts / test_counts.sum()
    result = ModeCoverage(table, classifier, test_frequencies, num_samples, figures)
    if out is not None:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7, 3.5))
        width = 0.8 / (len(table) + 1)
        ax.bar(np.arange(10) - 0.4 + width / 2, test_frequencies, width, label="MNIST test labels",
               color="k")
        for i, (label, row) in enumerate(table.iterrows()):
            ax.bar(np.arange(10) - 0.4 + width * (i + 1.5), [row[str(k)] for k in range(10)], width,
                   label=f"{label} (KL {row.kl:.3f})")
        ax.set_xticks(range(10))
        ax.set_xlabel("predicted digit class")
        ax.set_ylabel("fraction of samples")
        ax.set_title("Mode coverage: class histograms of model samples")
        ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure(fig, Path(out) / "class_histograms.png")
        result.figures.append("class_histograms.png")
        with atomic_path(Path(out) / "modes.csv") as tmp:
            table.to_csv(tmp)
        write_text(Path(out) / "modes.md", "# Mode coverage\n\n" + result.markdown() + "\n"
                   + "".join(f"![{f}]({f})\n\n" for f in result.figures))
    return result
