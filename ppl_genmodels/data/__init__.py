"""Data loaders. Each takes a path to files in a standard format (IDX, .npz, .amat) and returns
NumPy arrays; nothing is downloaded. See :mod:`ppl_genmodels.data.images`."""

from .images import (
    DEFAULT_FASHION_MNIST_DIR,
    dynamic_binarize,
    load_binarized_mnist,
    load_digits_binarized,
    load_fashion_mnist,
    load_idx,
    load_mnist_npz,
    sha256,
)

__all__ = [
    "DEFAULT_FASHION_MNIST_DIR",
    "dynamic_binarize",
    "load_binarized_mnist",
    "load_digits_binarized",
    "load_fashion_mnist",
    "load_idx",
    "load_mnist_npz",
    "sha256",
]
