"""Package a trained MNIST VAE and a class-balanced subset of binarized MNIST test images.

Writes into ``--out`` (default ``ppl_genmodels/models/data/vae_mnist``):

- ``checkpoint.pt``: the run's ``checkpoint.pt`` reduced to what rebuilds the model and the
  encoder (``config``, ``epoch``, ``model``, ``guide``, ``history``) -- the project's own
  format, readable by ``ppl_genmodels.learning.load_run(folder)`` -- with the optimizer and
  RNG states dropped, every tensor float32 and contiguous, ``config["data_dir"]`` set to
  ``None`` (the machine-local path is kept in ``provenance``), and a ``provenance`` entry.
  It loads with ``torch.load(..., weights_only=True)``.
- ``test_images.npz``: ``bits`` uint8 ``(N, 98)`` (``numpy.packbits`` of the 784 binary
  pixels of each image, row-major, big bit order), ``labels`` uint8 ``(N,)``,
  ``test_indices`` int64 ``(N,)`` (rows of ``x_test`` in ``binarized_mnist.npz``) and
  ``pixels`` (784).
- ``manifest.json``: SHA-256 of the source and of the written files, the selection rule,
  the training config and history summary, versions and the machine.

The image subset: the binarized test set is sorted by digit class, with MNIST's test class
counts (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009), so row i has the class of the
block it falls in. From each class ``--per-class`` rows are drawn without replacement by
``numpy.random.default_rng(--seed)`` (classes 0..9 in turn, ``Generator.choice``), and the
images are interleaved by class: image j has class j % 10, and any prefix of 10 m images holds
m of every class. With ``--mnist PATH/mnist.npz`` the labels are cross-checked: each chosen
binarized image's most likely grey-level MNIST test image (Bernoulli(grey/255) likelihood)
must carry the same label.

Usage (the command that made the shipped files is in the folder's README.md)::

    python scripts/make_vae_mnist_package.py RUN_DIR \
        --data /work/shared/data/binarized_mnist.npz --mnist /work/shared/data/mnist.npz \
        --evaluation RUN_DIR/evaluation.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "ppl_genmodels" / "models" / "data" / "vae_mnist"
#: MNIST test images per digit class 0..9 (LeCun et al. 1998); the binarized test set is
#: sorted by class, in blocks of these sizes.
MNIST_TEST_CLASS_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
KEEP = ("config", "epoch", "model", "guide", "history")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sorted_test_labels() -> np.ndarray:
    return np.repeat(np.arange(10, dtype=np.uint8), MNIST_TEST_CLASS_COUNTS)


def select(per_class: int, seed: int) -> np.ndarray:
    """Indices into ``x_test``: ``per_class`` per class, interleaved (image j: class j % 10)."""
    labels = sorted_test_labels()
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.stack(picks, axis=1).reshape(-1).astype(np.int64)


def check_labels_against_mnist(x: np.ndarray, labels: np.ndarray, mnist_npz: Path) -> dict:
    """Match each binarized image to its most likely grey-level MNIST test image."""
    with np.load(mnist_npz) as m:
        grey = m["x_test"].reshape(len(m["x_test"]), -1).astype(np.float64) / 255.0
        y = m["y_test"]
    p = np.clip(grey, 1e-3, 1 - 1e-3)
    ll = x.astype(np.float64) @ np.log(p).T + (1 - x.astype(np.float64)) @ np.log1p(-p).T
    best = ll.argmax(1)
    agree = int((y[best] == labels).sum())
    if agree != len(labels):
        raise SystemExit(f"label check failed: {len(labels) - agree} of {len(labels)} chosen images "
                         "match a grey-level MNIST test image of another class")
    return {"mnist_npz_sha256": sha256(mnist_npz), "images_checked": len(labels), "agree": agree}


def slim_checkpoint(run_dir: Path) -> tuple[dict, dict]:
    full = torch.load(run_dir / "checkpoint.pt", weights_only=False, map_location="cpu")
    config = dict(full["config"])
    provenance = {"source_data_dir": config.get("data_dir"), "source_config_epochs": config["epochs"],
                  "dropped": sorted(set(full) - set(KEEP))}
    history = full["history"]
    if not all(h.get("complete", True) for h in history):
        raise SystemExit(f"{run_dir}: an epoch was cut short by --max-time, so no `--epochs N` "
                         "command reproduces it; package a run whose epochs all completed")
    # A run stopped at an epoch boundary equals `train --epochs <epoch>` bit for bit (resume
    # reproduces an uninterrupted run), so the config says what was run.
    config["epochs"] = int(full["epoch"])
    config["data_dir"] = None
    out = {k: full[k] for k in KEEP}
    out["config"] = config
    for key in ("model", "guide"):
        state = {}
        for name, t in full[key].items():
            if t.is_floating_point() and t.dtype != torch.float32:
                raise SystemExit(f"{key}.{name} is {t.dtype}, expected float32")
            state[name] = t.detach().clone().contiguous()
        out[key] = state
    out["history"] = [dict(h) for h in full["history"]]
    # load_run builds the model for the recorded pixel count (runs of older commits lack it).
    out["pixels"] = int(full.get("pixels", 784))
    return out, provenance


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a `ppl-genmodels train vae` run folder")
    ap.add_argument("--data", type=Path, required=True, help="binarized_mnist.npz")
    ap.add_argument("--mnist", type=Path, default=None, help="mnist.npz, to cross-check labels")
    ap.add_argument("--evaluation", type=Path, default=None,
                    help="the run's evaluation.json (`ppl-genmodels evaluate`), copied into the manifest")
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    with np.load(args.data) as npz:
        x_test = npz["x_test"]
    if x_test.shape != (sum(MNIST_TEST_CLASS_COUNTS), 784) or not np.isin(x_test, (0, 1)).all():
        raise SystemExit(f"{args.data}: x_test is {x_test.shape}, expected (10000, 784) in {{0, 1}}")
    idx = select(args.per_class, args.seed)
    x, labels = x_test[idx].astype(np.uint8), sorted_test_labels()[idx]
    label_check = check_labels_against_mnist(x, labels, args.mnist) if args.mnist else None

    args.out.mkdir(parents=True, exist_ok=True)
    images = args.out / "test_images.npz"
    np.savez_compressed(images, bits=np.packbits(x, axis=1), labels=labels, test_indices=idx,
                        pixels=np.int64(784))
    checkpoint, provenance = slim_checkpoint(args.run_dir)
    checkpoint["provenance"] = {
        **provenance, "run_dir": str(args.run_dir.resolve()),
        "run_checkpoint_sha256": sha256(args.run_dir / "checkpoint.pt"),
        "packaged_by": "scripts/make_vae_mnist_package.py", "package_commit": git("rev-parse", "HEAD"),
    }
    ckpt = args.out / "checkpoint.pt"
    torch.save(checkpoint, ckpt)
    torch.load(ckpt, weights_only=True)  # loadable without unpickling arbitrary objects

    history = checkpoint["history"]
    manifest = {
        "files": {p.name: {"sha256": sha256(p), "bytes": p.stat().st_size} for p in (ckpt, images)},
        "source": {"binarized_mnist_npz": str(args.data.resolve()),
                   "binarized_mnist_npz_sha256": sha256(args.data)},
        "images": {"count": int(len(idx)), "per_class": args.per_class, "seed": args.seed,
                   "rule": "numpy.random.default_rng(seed).choice per class 0..9 without replacement, "
                           "interleaved so image j has class j % 10",
                   "class_counts": np.bincount(labels, minlength=10).tolist(),
                   "label_source": "binarized test set sorted by class in blocks of MNIST's test "
                                   f"class counts {list(MNIST_TEST_CLASS_COUNTS)}",
                   "label_check": label_check},
        "training": {"config": checkpoint["config"], "source_data_dir": provenance["source_data_dir"],
                     "epochs": int(checkpoint["epoch"]),
                     "all_epochs_complete": all(h.get("complete", True) for h in history),
                     "train_time_s": float(sum(h["time_s"] for h in history)),
                     "last_epoch": history[-1]},
        "evaluation": _evaluation(args.evaluation),
        "package_commit": git("rev-parse", "HEAD"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "pyro": _pyro_version(), "numpy": np.__version__},
        "machine": {"platform": platform.platform(), "processor": _cpu()},
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({k: manifest[k] for k in ("files", "images")}, indent=2))
    return 0


def _evaluation(path: Path | None):
    if path is None:
        return None
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else text


def _pyro_version() -> str:
    import pyro

    return pyro.__version__


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
