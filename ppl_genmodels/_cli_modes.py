"""Command line for trained generative models' samples: ``modes`` (mode coverage measured by
a digit classifier) and ``latent`` (spherical interpolation and attribute arithmetic)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ._argtypes import _POSITIVE, _SEED
from .io import check_writable, recording


def _default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ppl_genmodels" / "mnist_classifier"


def add_modes_parsers(sub) -> None:
    md = sub.add_parser("modes", help="mode coverage: class histograms of samples of trained "
                                      "runs, labelled by an MNIST classifier")
    md.add_argument("runs", nargs="+", metavar="RUN_DIR",
                    help="`ppl-genmodels train` run folders on 28x28 images; vae_mnist = the "
                         "packaged VAE")
    md.add_argument("--data-dir", default=None, type=Path,
                    help="folder with mnist.npz (default: the first run's data folder)")
    md.add_argument("--num-samples", default=10000, type=_POSITIVE, help="samples per model (default 10000)")
    md.add_argument("--cache-dir", default=None, type=Path,
                    help=f"classifier cache, reused only when its key matches (default {_default_cache()})")
    md.add_argument("--seed", default=0, type=_SEED)
    md.add_argument("--out", required=True, type=Path, help="folder for modes.md, modes.csv and figures")
    lt = sub.add_parser("latent", help="spherical interpolation and attribute-arithmetic figures "
                                       "of vae/gan runs")
    lt.add_argument("runs", nargs="+", metavar="RUN_DIR", help="vae or gan run folders; vae_mnist = packaged")
    lt.add_argument("--images", default=200, type=_POSITIVE,
                    help="packaged binarized MNIST test images for the attribute vector (80..500)")
    lt.add_argument("--seed", default=0, type=_SEED)
    lt.add_argument("--out", required=True, type=Path, help="folder for the figures")


def _first_data_dir(runs) -> Path | None:
    import json

    for run in runs:
        config = Path(run) / "config.json"
        if run != "vae_mnist" and config.is_file():
            data_dir = json.loads(config.read_text()).get("data_dir")
            if data_dir:
                return Path(data_dir)
    return None


def _modes(args) -> int:
    data_dir = args.data_dir or _first_data_dir(args.runs)
    if data_dir is None:
        print("error: no --data-dir given and no run names its data folder (mnist.npz is needed)",
              file=sys.stderr)
        return 2
    missing = [r for r in args.runs if r != "vae_mnist" and not (Path(r) / "checkpoint.pt").is_file()]
    if missing:
        print(f"error: not `ppl-genmodels train` run folders (no checkpoint.pt): {missing}", file=sys.stderr)
        return 2
    check_writable(args.out)
    import torch

    from .harness.modes import mode_coverage

    torch.set_num_threads(1)
    try:
        with recording(args.out):
            result = mode_coverage(args.runs, data_dir, num_samples=args.num_samples, seed=args.seed,
                                   out=args.out, cache_dir=args.cache_dir or _default_cache())
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.markdown())
    print(f"wrote {args.out / 'modes.md'}")
    return 0


def _latent(args) -> int:
    missing = [r for r in args.runs if r != "vae_mnist" and not (Path(r) / "checkpoint.pt").is_file()]
    if missing:
        print(f"error: not `ppl-genmodels train` run folders (no checkpoint.pt): {missing}", file=sys.stderr)
        return 2
    if not 80 <= args.images <= 500:
        print(f"error: --images must be in 80..500, got {args.images}", file=sys.stderr)
        return 2
    check_writable(args.out)
    import torch

    from .harness.latent import latent_figures

    torch.set_num_threads(1)
    try:
        with recording(args.out):
            made = latent_figures(args.runs, args.out, num_images=args.images, seed=args.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in made:
        print(f"wrote {path}")
    return 0
