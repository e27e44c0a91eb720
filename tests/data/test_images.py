"""Image loaders on the real files of ../shared/data (see its README.md and SHA256SUMS)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from ppl_genmodels.data import (
    DEFAULT_FASHION_MNIST_DIR,
    dynamic_binarize,
    load_binarized_mnist,
    load_digits_binarized,
    load_fashion_mnist,
    load_idx,
    load_mnist_npz,
    sha256,
)

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
IDX = DATA / "mnist_idx"


@pytest.fixture(scope="module")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} is absent (expected at ../shared/data)")
    return DATA


@pytest.fixture(scope="module")
def mnist(data_dir):
    return load_mnist_npz(data_dir / "mnist.npz")


@pytest.fixture(scope="module")
def binarized(data_dir):
    return load_binarized_mnist(data_dir / "binarized_mnist.npz")


# -- the real files --------------------------------------------------------------------------


def test_checksums_match_sha256sums(data_dir):
    lines = (data_dir / "SHA256SUMS").read_text().splitlines()
    entries = [line.split(maxsplit=1) for line in lines if line.strip()]
    assert len(entries) == 6
    for digest, name in entries:
        assert sha256(data_dir / name.lstrip("*")) == digest, name


def test_load_idx_real_files(data_dir, mnist):
    images = load_idx(IDX / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    test_labels = load_idx(IDX / "t10k-labels-idx1-ubyte.gz")
    train_labels = load_idx(IDX / "train-labels-idx1-ubyte.gz")
    assert test_labels.shape == (10000,) and train_labels.shape == (60000,)
    assert test_labels.dtype == train_labels.dtype == np.uint8
    assert set(np.unique(test_labels)) == set(range(10))
    # The IDX files and mnist.npz hold the same data in the same order.
    np.testing.assert_array_equal(images, mnist["x_test"])
    np.testing.assert_array_equal(test_labels, mnist["y_test"])
    np.testing.assert_array_equal(train_labels, mnist["y_train"])


def test_load_idx_reads_raw_files(data_dir, tmp_path):
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((IDX / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    np.testing.assert_array_equal(load_idx(raw), load_idx(IDX / "t10k-labels-idx1-ubyte.gz"))


def test_load_mnist_npz(mnist):
    assert mnist["x_train"].shape == (60000, 28, 28) and mnist["x_test"].shape == (10000, 28, 28)
    assert mnist["y_train"].shape == (60000,) and mnist["y_test"].shape == (10000,)
    assert all(a.dtype == np.uint8 for a in mnist.values())
    assert mnist["x_train"].max() == 255 and mnist["y_train"].max() == 9


def test_load_binarized_mnist_npz(binarized):
    shapes = {k: v.shape for k, v in binarized.items()}
    assert shapes == {"x_train": (50000, 784), "x_valid": (10000, 784), "x_test": (10000, 784)}
    for x in binarized.values():
        assert x.dtype == np.uint8 and set(np.unique(x)) == {0, 1}
    # Means stated in shared/data/README.md.
    assert abs(binarized["x_train"].mean() - 0.1306) < 5e-4
    assert abs(binarized["x_test"].mean() - 0.1325) < 5e-4


def test_binarized_amat_is_the_npz_test_split_exactly(data_dir, binarized):
    amat = data_dir / "binarized_mnist_test.amat"
    assert amat.read_bytes()[:6] == b"MATLAB"  # a MATLAB v5 file despite its name
    loaded = load_binarized_mnist(amat)
    assert list(loaded) == ["x_test"]
    assert loaded["x_test"].dtype == np.uint8
    np.testing.assert_array_equal(loaded["x_test"], binarized["x_test"])  # same rows, same order


def test_binarized_text_amat(data_dir, binarized, tmp_path):
    rows = binarized["x_test"][:5]
    path = tmp_path / "binarized_mnist_valid.amat"
    np.savetxt(path, rows, fmt="%d")
    loaded = load_binarized_mnist(path)
    assert list(loaded) == ["x_valid"]
    np.testing.assert_array_equal(loaded["x_valid"], rows)
    other = tmp_path / "rows.amat"
    shutil.copy(path, other)
    with pytest.raises(ValueError, match="cannot tell the split"):
        load_binarized_mnist(other)
    np.testing.assert_array_equal(load_binarized_mnist(other, split="test")["x_test"], rows)
    with pytest.raises(ValueError, match="split 'validation'"):
        load_binarized_mnist(other, split="validation")


def test_fashion_mnist_from_idx_directory(data_dir, tmp_path):
    # The real MNIST test files under Fashion-MNIST's names stand in for both splits.
    for prefix in ("train", "t10k"):
        shutil.copy(IDX / "t10k-images-idx3-ubyte.gz", tmp_path / f"{prefix}-images-idx3-ubyte.gz")
        shutil.copy(IDX / "t10k-labels-idx1-ubyte.gz", tmp_path / f"{prefix}-labels-idx1-ubyte.gz")
    data = load_fashion_mnist(tmp_path)
    images, labels = (10000, 28, 28), (10000,)
    shapes = {"x_train": images, "y_train": labels, "x_test": images, "y_test": labels}
    assert {k: v.shape for k, v in data.items()} == shapes
    np.testing.assert_array_equal(data["x_train"], load_idx(IDX / "t10k-images-idx3-ubyte.gz"))


def test_fashion_mnist_missing_file_is_named(data_dir):
    # mnist_idx has no train-images file.
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_fashion_mnist(IDX)


def test_fashion_mnist_images_labels_count_mismatch(data_dir, tmp_path):
    shutil.copy(IDX / "t10k-images-idx3-ubyte.gz", tmp_path / "train-images-idx3-ubyte.gz")
    shutil.copy(IDX / "train-labels-idx1-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="10000 train images but 60000 train labels"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(
    not DEFAULT_FASHION_MNIST_DIR.is_dir(),
    reason=f"{DEFAULT_FASHION_MNIST_DIR} absent (Debian package dataset-fashion-mnist)",
)
def test_fashion_mnist_debian_package():
    data = load_fashion_mnist()
    assert data["x_train"].shape == (60000, 28, 28) and data["x_test"].shape == (10000, 28, 28)
    assert set(np.unique(data["y_test"])) == set(range(10))


# -- IDX errors ------------------------------------------------------------------------------


def _t10k_images_bytes() -> bytes:
    return gzip.decompress((IDX / "t10k-images-idx3-ubyte.gz").read_bytes())


def test_idx_truncated(data_dir, tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(_t10k_images_bytes()[: 16 + 1234]))
    with pytest.raises(ValueError) as info:
        load_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "truncated: header says 10000 images of 28x28" in message
    assert "file holds 1234 bytes of pixels" in message


def test_idx_trailing_bytes(data_dir, tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(_t10k_images_bytes() + b"\x00\x00")
    with pytest.raises(ValueError, match="trailing data: header says 10000 images") as info:
        load_idx(path)
    assert str(path) in str(info.value)


def test_idx_wrong_magic(data_dir, tmp_path):
    labels = gzip.decompress((IDX / "t10k-labels-idx1-ubyte.gz").read_bytes())
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress((1234).to_bytes(4, "big") + labels[4:]))
    with pytest.raises(ValueError) as info:
        load_idx(path)
    assert str(info.value) == (
        f"{path}: magic number 1234, expected 2049 (labels) or 2051 (images)"
    )


def test_idx_corrupt_gzip(data_dir, tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes((IDX / "t10k-labels-idx1-ubyte.gz").read_bytes()[:1000])
    with pytest.raises(ValueError, match="corrupt gzip stream") as info:
        load_idx(path)
    assert str(path) in str(info.value)


def test_idx_missing_file(tmp_path):
    path = tmp_path / "no-such-idx3-ubyte.gz"
    with pytest.raises(FileNotFoundError) as info:
        load_idx(path)
    assert str(path) in str(info.value)


# -- .npz and binarized errors ---------------------------------------------------------------


def test_mnist_npz_missing_key(mnist, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, **{k: v for k, v in mnist.items() if k != "y_test"})
    with pytest.raises(ValueError, match="missing key 'y_test'") as info:
        load_mnist_npz(path)
    assert str(path) in str(info.value)


def test_mnist_npz_wrong_shape(mnist, tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, **{**mnist, "x_test": mnist["x_test"].reshape(10000, 784)})
    with pytest.raises(ValueError, match=r"x_test is uint8 of shape \(10000, 784\)"):
        load_mnist_npz(path)


def test_binarized_npz_with_a_two(binarized, tmp_path):
    x_test = binarized["x_test"].copy()
    x_test[3, 400] = 2
    path = tmp_path / "binarized_mnist.npz"
    np.savez(path, **{**binarized, "x_test": x_test})
    with pytest.raises(ValueError, match="values other than 0 and 1") as info:
        load_binarized_mnist(path)
    assert str(path) in str(info.value) and "first 2 at row 3, column 400" in str(info.value)


def test_binarized_amat_with_a_two(binarized, tmp_path):
    rows = binarized["x_test"][:3].copy()
    rows[1, 7] = 2
    text = tmp_path / "binarized_mnist_test.amat"
    np.savetxt(text, rows, fmt="%d")
    matlab = tmp_path / "binarized_mnist_train.amat"
    scipy.io.savemat(matlab, {"X": rows})
    for path in (text, matlab):
        with pytest.raises(ValueError, match="values other than 0 and 1") as info:
            load_binarized_mnist(path)
        assert str(path) in str(info.value)


def test_binarized_wrong_width(binarized, tmp_path):
    path = tmp_path / "binarized_mnist_test.amat"
    np.savetxt(path, binarized["x_test"][:3, :783], fmt="%d")
    with pytest.raises(ValueError, match=r"shape \(3, 783\), expected \(n, 784\)"):
        load_binarized_mnist(path)


# -- binarizations ---------------------------------------------------------------------------


def test_dynamic_binarize(mnist):
    grey = mnist["x_test"]
    first = dynamic_binarize(grey, np.random.default_rng(0))
    assert first.shape == grey.shape and first.dtype == np.uint8
    assert set(np.unique(first)) == {0, 1}
    np.testing.assert_array_equal(first, dynamic_binarize(grey, np.random.default_rng(0)))
    assert not np.array_equal(first, dynamic_binarize(grey, np.random.default_rng(1)))
    assert np.all(first[grey == 0] == 0) and np.all(first[grey == 255] == 1)
    p = grey.astype(np.float64) / 255
    standard_error = np.sqrt(np.sum(p * (1 - p))) / p.size
    assert abs(first.mean() - p.mean()) < 5 * standard_error


def test_dynamic_binarize_needs_uint8():
    with pytest.raises(TypeError, match="uint8"):
        dynamic_binarize(np.zeros((2, 3), dtype=np.float32), 0)


def test_load_digits_binarized():
    x, y = load_digits_binarized()
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert set(np.unique(x)) == {0.0, 1.0}
    assert y.shape == (1797,) and set(np.unique(y)) == set(range(10))
    x_high, _ = load_digits_binarized(threshold=16)
    assert x_high.sum() < x.sum()
    with pytest.raises(ValueError, match="threshold"):
        load_digits_binarized(threshold=0)
