"""Loaders for the image data sets of the benchmarks: MNIST, binarized MNIST, Fashion-MNIST
and scikit-learn's 8x8 digits.

Every loader takes a path and reads a standard format; nothing is downloaded. All errors about
a file's content are ``ValueError`` whose message starts with the file's path; a missing file
is ``FileNotFoundError`` naming the path.

Formats
- IDX (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/): a big-endian header, then the
  data row-major. The header is a magic number (two zero bytes, a type byte 0x08 for unsigned
  byte, a byte for the number of dimensions: 2051 = 0x0803 for images, 2049 = 0x0801 for labels)
  and one 32-bit size per dimension. Files may be gzip-compressed (``.gz``) or raw.
- ``.npz``: NumPy archives, as written by ``np.savez``.
- ``.amat``: binarized MNIST as distributed by Larochelle: whitespace-separated 0/1 text, one
  image of 784 pixels a row. Some copies named ``.amat`` are MATLAB v5 files holding the
  matrix as ``X``; both are read.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

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

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
MNIST_PIXELS = 28 * 28
SPLITS = ("train", "valid", "test")

#: Where Debian's ``dataset-fashion-mnist`` package installs the four IDX files.
DEFAULT_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def sha256(path: str | Path) -> str:
    """Hex SHA-256 digest of the file at ``path`` (read in 1 MiB chunks), as ``sha256sum``
    prints it. Raises ``FileNotFoundError`` when there is no such file."""
    digest = hashlib.sha256()
    with open(_existing_file(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzip-compressed or raw (told apart by content).

    Returns
    - magic 2051 (images): uint8 array ``(n, rows, cols)``, values 0..255;
    - magic 2049 (labels): uint8 array ``(n,)``.

    Raises ``FileNotFoundError`` naming ``path`` if it does not exist, and ``ValueError``
    naming ``path`` and the fault if the gzip stream is corrupt, the header is short, the
    magic number is neither 2049 nor 2051, or the payload is shorter (truncated) or longer
    (trailing bytes) than the header says.
    """
    path = _existing_file(path)
    data = _read_maybe_gzip(path)
    if len(data) < 8:
        raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if magic == LABELS_MAGIC:
        (n,) = struct.unpack(">I", data[4:8])
        return _idx_payload(path, data[8:], (n,), f"{n} labels", "bytes of labels")
    if magic == IMAGES_MAGIC:
        if len(data) < 16:
            raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX images header")
        n, rows, cols = struct.unpack(">III", data[4:16])
        what = f"{n} images of {rows}x{cols}"
        return _idx_payload(path, data[16:], (n, rows, cols), what, "bytes of pixels")
    raise ValueError(
        f"{path}: magic number {magic}, expected {LABELS_MAGIC} (labels) or {IMAGES_MAGIC} (images)"
    )


def load_mnist_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read MNIST (LeCun et al. 1998) from an ``.npz`` as Keras distributes it (``mnist.npz``).

    Returns ``{"x_train", "y_train", "x_test", "y_test"}``, all uint8: ``x_*`` of shape
    ``(n, 28, 28)`` with grey levels 0..255 (0 is background), ``y_*`` of shape ``(n,)`` with
    digit classes 0..9 (60000 train and 10000 test images in the standard file).

    Raises ``FileNotFoundError`` naming ``path``, or ``ValueError`` naming ``path`` and the
    key that is missing, not uint8, or of the wrong shape.
    """
    arrays = _read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        _check_images_labels(path, split, x, y)
    return arrays


def load_binarized_mnist(path: str | Path, split: str | None = None) -> dict[str, np.ndarray]:
    """Read the fixed binarization of MNIST used by Larochelle & Murray (2011, "The Neural
    Autoregressive Distribution Estimator", AISTATS) and later by the IWAE and RWS papers: each
    pixel sampled once as Bernoulli(grey/255), split 50000 train / 10000 valid / 10000 test.
    The test split of the distributed files is sorted by digit class, not in MNIST's order.

    Accepts
    - an ``.npz`` with keys ``x_train``, ``x_valid``, ``x_test``: returns all three;
    - one ``.amat`` file (one split): either whitespace-separated 0/1 text, 784 columns a row,
      or a MATLAB v5 file (first bytes ``MATLAB``) holding the matrix as ``X``. It is returned
      under the key ``x_<split>``; ``split`` ("train", "valid" or "test") defaults to the one
      named in the file name (``binarized_mnist_test.amat`` -> ``x_test``); it is ignored for
      an ``.npz``.

    Returns a dict of split key -> uint8 array ``(n, 784)`` with values in {0, 1} (rows are
    28x28 images flattened row-major).

    Raises ``FileNotFoundError`` naming ``path``, or ``ValueError`` naming ``path`` when a key
    is missing, the file cannot be parsed, an array is not ``(n, 784)``, a value is not 0 or 1,
    or the split is not one of the three or cannot be told from the file name.
    """
    path = _existing_file(path)
    if path.suffix == ".npz":
        arrays = _read_npz(path, ("x_train", "x_valid", "x_test"))
    else:
        split = split or _split_from_name(path)
        if split not in SPLITS:
            raise ValueError(f"{path}: split {split!r}, expected one of {SPLITS}")
        arrays = {f"x_{split}": _read_amat(path)}
    return {key: _as_binary_images(path, key, x) for key, x in arrays.items()}


def load_fashion_mnist(directory: str | Path = DEFAULT_FASHION_MNIST_DIR) -> dict[str, np.ndarray]:
    """Read Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its four standard IDX files in
    ``directory``: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzip'd (``.gz``, preferred)
    or raw. The default directory is where Debian's ``dataset-fashion-mnist`` package installs
    them (``/usr/share/datasets/fashion-mnist``).

    Returns ``{"x_train", "y_train", "x_test", "y_test"}``, all uint8: ``x_*`` of shape
    ``(n, 28, 28)`` with grey levels 0..255, ``y_*`` of shape ``(n,)`` with classes 0..9
    (60000 train and 10000 test images in the published files).

    Raises ``FileNotFoundError`` naming the missing file, or ``ValueError`` (see
    :func:`load_idx`, and when an images file and its labels file disagree).
    """
    directory = Path(directory)
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = load_idx(_idx_file(directory, f"{prefix}-images-idx3-ubyte"))
        y = load_idx(_idx_file(directory, f"{prefix}-labels-idx1-ubyte"))
        _check_images_labels(directory, split, x, y)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    return arrays


def load_digits_binarized(threshold: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``load_digits()`` (1797 handwritten digits, 8x8, grey levels 0..16; the
    UCI "Optical Recognition of Handwritten Digits" test set), binarized by thresholding grey
    level >= ``threshold`` of 16 (default 8).

    Returns ``(x, y)``: ``x`` float32 ``(1797, 64)`` with values in {0, 1} (8x8 images
    flattened row-major), ``y`` int64 ``(1797,)`` with classes 0..9.

    Raises ``ValueError`` unless ``1 <= threshold <= 16`` (otherwise every pixel would be equal).
    """
    from sklearn.datasets import load_digits

    if not 1 <= threshold <= 16:
        raise ValueError(f"threshold {threshold} must be in 1..16 (grey levels are 0..16)")
    digits = load_digits()
    x = (digits.data >= threshold).astype(np.float32)
    return x, digits.target.astype(np.int64)


def dynamic_binarize(x_grey: np.ndarray, rng: np.random.Generator | int | None) -> np.ndarray:
    """A fresh binarization of grey-level images: each pixel an independent Bernoulli draw with
    p = grey / 255. This is the "dynamic binarization" protocol of the IWAE paper (Burda, Grosse
    & Salakhutdinov 2016, "Importance Weighted Autoencoders", ICLR): the training images are
    resampled this way every time they are used, unlike the fixed binarization of
    :func:`load_binarized_mnist`. Log-likelihoods of the two protocols are not comparable.

    ``x_grey``: uint8 array of any shape, values 0..255 (255 is always 1, 0 always 0).
    ``rng``: a ``numpy.random.Generator``, or a seed for ``numpy.random.default_rng``.
    Returns a uint8 array of the same shape with values in {0, 1}.

    Raises ``TypeError`` if ``x_grey`` is not uint8.
    """
    x_grey = np.asarray(x_grey)
    if x_grey.dtype != np.uint8:
        raise TypeError(f"dynamic_binarize needs uint8 grey levels 0..255, got {x_grey.dtype}")
    rng = np.random.default_rng(rng)
    p = x_grey.astype(np.float32) / np.float32(255)
    return (rng.random(x_grey.shape, dtype=np.float32) < p).astype(np.uint8)


# -- helpers ---------------------------------------------------------------------------------


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "No such file", str(path))
    return path


def _read_maybe_gzip(path: Path) -> bytes:
    data = path.read_bytes()
    if not data.startswith(b"\x1f\x8b"):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt gzip stream ({exc})") from exc


def _idx_file(directory: Path, name: str) -> Path:
    """``directory/name.gz`` or else ``directory/name``; ``FileNotFoundError`` if neither."""
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    hint = "No such file, gzip'd or raw (Fashion-MNIST: apt-get install dataset-fashion-mnist)"
    raise FileNotFoundError(errno.ENOENT, hint, str(directory / f"{name}.gz"))


def _idx_payload(path: Path, payload: bytes, shape: tuple[int, ...], what: str, unit: str):
    expected = int(np.prod(shape))
    if len(payload) < expected:
        problem = "truncated"
    elif len(payload) > expected:
        problem = "trailing data"
    else:
        return np.frombuffer(payload, dtype=np.uint8).reshape(shape).copy()
    raise ValueError(
        f"{path}: {problem}: header says {what} ({expected} bytes) "
        f"but file holds {len(payload)} {unit}"
    )


def _read_npz(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    path = _existing_file(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not an .npz archive (no zip structure)")
    with np.load(path, allow_pickle=False) as npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing key {missing[0]!r} (has {sorted(npz.files)})")
        try:
            return {k: npz[k] for k in keys}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: damaged .npz ({exc})") from exc


def _check_images_labels(source, split: str, x: np.ndarray, y: np.ndarray) -> None:
    """28x28 uint8 images ``x`` and uint8 labels ``y`` of equal count, else ``ValueError``."""
    for key, arr, shape in ((f"x_{split}", x, "(n, 28, 28)"), (f"y_{split}", y, "(n,)")):
        ok_shape = arr.shape[1:] == (28, 28) if key[0] == "x" else arr.ndim == 1
        if arr.dtype != np.uint8 or not ok_shape:
            raise ValueError(
                f"{source}: {key} is {arr.dtype} of shape {arr.shape}, expected uint8 {shape}"
            )
    if len(x) != len(y):
        raise ValueError(f"{source}: {len(x)} {split} images but {len(y)} {split} labels")
    if len(x) == 0:
        raise ValueError(f"{source}: x_{split} has zero rows (no images)")


def _split_from_name(path: Path) -> str:
    found = [s for s in SPLITS if s in path.stem]
    if len(found) != 1:
        raise ValueError(f"{path}: cannot tell the split from the file name; pass split=")
    return found[0]


def _read_amat(path: Path) -> np.ndarray:
    from scipy.io.matlab import MatReadError

    with open(path, "rb") as f:
        is_matlab = f.read(6) == b"MATLAB"
    try:
        if is_matlab:
            return _read_matlab_x(path)
        return np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, MatReadError) as exc:
        raise ValueError(f"{path}: cannot parse ({exc})") from exc


def _read_matlab_x(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    mat = loadmat(path)
    if "X" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"MATLAB file has no variable 'X' (has {keys})")
    return mat["X"]


def _as_binary_images(path: Path, key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim != 2 or x.shape[1] != MNIST_PIXELS:
        raise ValueError(f"{path}: {key} has shape {x.shape}, expected (n, {MNIST_PIXELS})")
    if len(x) == 0:
        raise ValueError(f"{path}: {key} has zero rows (no images)")
    bad = np.argwhere((x != 0) & (x != 1))
    if len(bad):
        row, col = bad[0]
        raise ValueError(
            f"{path}: {key} holds values other than 0 and 1 "
            f"({len(bad)} of them; first {x[row, col].item()} at row {row}, column {col})"
        )
    return x.astype(np.uint8)
