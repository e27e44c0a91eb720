"""Named binary-image data sets for training and evaluation, read from a folder.

=================  ===================================================  ================
name               files in ``data_dir``                                binarization
=================  ===================================================  ================
binarized_mnist    ``binarized_mnist.npz`` or ``binarized_mnist_        fixed (Larochelle
                   {train,test}.amat``; 50000 train / 10000 test        & Murray 2011)
mnist              ``mnist.npz`` (grey levels), 60000 / 10000           dynamic
fashion_mnist      the four IDX files (default: Debian's folder)        dynamic
digits             none: scikit-learn's ``load_digits`` (8x8), a        fixed (grey >= 8)
                   seeded 1500 / 297 split
=================  ===================================================  ================

"Dynamic" (IWAE paper, Burda et al. 2016): each training image is re-binarized, pixel ~
Bernoulli(grey / 255), every time it is used; the test set is binarized once with a fixed
seed (0) so that evaluations are repeatable. Log-likelihoods under the two protocols are not
comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .images import (DEFAULT_FASHION_MNIST_DIR, dynamic_binarize, load_binarized_mnist,
                     load_digits_binarized, load_fashion_mnist, load_mnist_npz)

__all__ = ["ImageDataset", "IMAGE_DATASETS", "load_image_dataset"]

IMAGE_DATASETS = ("binarized_mnist", "mnist", "fashion_mnist", "digits")
TEST_BINARIZATION_SEED = 0


@dataclass
class ImageDataset:
    """Flattened images for training (``x_train``) and evaluation (``x_test``).

    :ivar x_train: ``(N, D)`` uint8: binary {0, 1} when ``dynamic`` is False, else grey
        levels 0..255 to re-binarize per epoch.
    :ivar x_test: ``(M, D)`` uint8 in {0, 1}.
    :ivar y_test: ``(M,)`` class labels or ``None`` (binarized MNIST ships none).
    :ivar image_shape: ``(height, width)``.
    :ivar dynamic: whether training images are re-binarized each epoch.
    """

    name: str
    x_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray | None
    image_shape: tuple[int, int]
    dynamic: bool
    source: str

    @property
    def pixels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def binarization(self) -> str:
        return "dynamic" if self.dynamic else "fixed"

    def test_subset(self, num: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """A seeded random subset of ``num`` test images (all when ``None``), with labels.

        Random, not the first rows: the binarized MNIST test file is sorted by class.
        """
        if num is None or num >= len(self.x_test):
            return self.x_test, self.y_test
        idx = np.sort(np.random.default_rng(seed).choice(len(self.x_test), num, replace=False))
        return self.x_test[idx], None if self.y_test is None else self.y_test[idx]


def _find(data_dir: Path, *names: str) -> Path:
    for name in names:
        if (data_dir / name).exists():
            return data_dir / name
    raise FileNotFoundError(f"{data_dir}: none of {list(names)} found")


def load_image_dataset(name: str, data_dir: str | Path | None = None) -> ImageDataset:
    """Load a named data set (see the module table) from ``data_dir``.

    :raises ValueError: unknown ``name``, or ``data_dir`` missing for a data set that needs
        one; ``FileNotFoundError``/``ValueError`` from the loaders name the bad file.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {list(IMAGE_DATASETS)}")
    if name == "digits":
        x, y = load_digits_binarized()
        order = np.random.default_rng(0).permutation(len(x))
        x, y = x[order].astype(np.uint8), y[order]
        return ImageDataset(name, x[:1500], x[1500:], y[1500:], (8, 8), False,
                            "scikit-learn load_digits (UCI optdigits test set), grey >= 8 of 16")
    if name == "fashion_mnist":
        arrays = load_fashion_mnist(data_dir or DEFAULT_FASHION_MNIST_DIR)
        return _grey(name, arrays, "Fashion-MNIST (Xiao, Rasul & Vollgraf 2017)")
    if data_dir is None:
        raise ValueError(f"data set {name!r} needs --data-dir (the folder with its files)")
    data_dir = Path(data_dir)
    if name == "mnist":
        arrays = load_mnist_npz(_find(data_dir, "mnist.npz"))
        return _grey(name, arrays, "MNIST (LeCun et al. 1998), mnist.npz")
    path = _find(data_dir, "binarized_mnist.npz", "binarized_mnist_train.amat")
    if path.suffix == ".npz":
        arrays = load_binarized_mnist(path)
    else:
        arrays = {**load_binarized_mnist(path, "train"),
                  **load_binarized_mnist(_find(data_dir, "binarized_mnist_test.amat"), "test")}
    return ImageDataset(name, arrays["x_train"], arrays["x_test"], None, (28, 28), False,
                        f"binarized MNIST, fixed binarization of Larochelle & Murray 2011 ({path.name})")


def _grey(name: str, arrays: dict, source: str) -> ImageDataset:
    x_train = arrays["x_train"].reshape(len(arrays["x_train"]), -1)
    x_test = dynamic_binarize(arrays["x_test"].reshape(len(arrays["x_test"]), -1),
                              TEST_BINARIZATION_SEED)
    return ImageDataset(name, x_train, x_test, arrays["y_test"], tuple(arrays["x_train"].shape[1:3]),
                        True, source + "; dynamic binarization")
