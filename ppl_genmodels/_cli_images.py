"""Command line for image models: ``train``, ``evaluate`` and ``compare --checkpoint`` /
the packaged fixed-theta comparison."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ._argtypes import _COUNT, _POSITIVE, _POSITIVE_FLOAT, _SEED, _UNIT
from .io import recording
from .models.registry import AUTOREGRESSIVE_MODELS, IMAGE_MODELS, LATENT_IMAGE_MODELS
from ._cli_common import _device_problem, _prepare_out, _print_fixed_theta, _refuse_non_empty


def _add_image_parsers(sub) -> None:
    from .learning.methods import DEFAULT_LR, DEFAULT_PARTICLES, METHODS

    tr = sub.add_parser("train", help=f"learn theta of an image model ({', '.join(IMAGE_MODELS)}) "
                                      "on binary images")
    tr.add_argument("model", choices=IMAGE_MODELS, metavar="MODEL", help=" or ".join(IMAGE_MODELS))
    tr.add_argument("--data", default="binarized_mnist",
                    help="binarized_mnist (fixed), mnist or fashion_mnist (dynamic), digits")
    tr.add_argument("--data-dir", default=None, type=Path, help="folder with the data set's files")
    tr.add_argument("--method", default=None, choices=METHODS,
                    help="svi, iwae, rws, wake_sleep or nvil (default svi) for vae and sbn; "
                         "gan for the gan model (its default); mle for fvbn, made, pixelcnn "
                         "(no latents: exact likelihood; their default)")
    tr.add_argument("--epochs", default=10, type=_POSITIVE)
    tr.add_argument("--batch-size", default=100, type=_POSITIVE)
    tr.add_argument("--num-particles", default=None, type=_POSITIVE,
                    help=f"K (default per method: {DEFAULT_PARTICLES})")
    tr.add_argument("--lr", default=None, type=_POSITIVE_FLOAT,
                    help=f"Adam learning rate (default 1e-3; per method: {DEFAULT_LR})")
    tr.add_argument("--latent-dim", default=None, type=_POSITIVE,
                    help="vae, gan: latent size (default 50 for vae, 64 for gan)")
    tr.add_argument("--arch", default=None, choices=("mlp", "conv", "dcgan"),
                    help="vae: mlp or conv; gan: dcgan (default) or mlp")
    tr.add_argument("--width", default=None, type=_POSITIVE,
                    help="gan (dcgan): base channels of G and D (default 64)")
    tr.add_argument("--no-straight-through", action="store_true",
                    help="gan: D sees the fakes' pixel probabilities rather than binary draws "
                         "with straight-through gradients (the default)")
    tr.add_argument("--flip", default=None, type=_UNIT,
                    help="gan: pixel-flip probability of the observation model (default 0.05)")
    tr.add_argument("--guide", default=None, choices=("ffg", "iaf", "spline"),
                    help="vae: encoder family: ffg (default), iaf or spline (conditional flows)")
    tr.add_argument("--num-flows", default=None, type=_POSITIVE, help="vae with a flow guide: layers (default: 2 for iaf, 1 for spline)")
    tr.add_argument("--layers", default=None,
                    help="sbn: comma-separated binary layer sizes, bottom up (default 200,200)")
    tr.add_argument("--insomnia", default=1.0, type=_UNIT,
                    help="rws: weight of wake-phi vs sleep-phi (default 1: wake only)")
    tr.add_argument("--num-train", default=None, type=_POSITIVE, help="use the first N training images")
    tr.add_argument("--max-time", default=None, type=_POSITIVE_FLOAT, help="wall-clock budget in seconds")
    tr.add_argument("--seed", default=0, type=_SEED)
    tr.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, config)")
    group = tr.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run in --out")
    group.add_argument("--force", action="store_true", help="start afresh in --out")
    tr.add_argument("--threads", default=1, type=_POSITIVE, help="torch CPU threads (default 1)")
    tr.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda[:N]")
    tr.add_argument("--no-progress", action="store_true")
    ev = sub.add_parser("evaluate", help="test log-likelihood, samples and reconstructions of a run")
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    ev.add_argument("--num-samples", default=5000, type=_POSITIVE, help="importance samples S (default 5000)")
    ev.add_argument("--num-test", default=1000, type=_COUNT,
                    help="seeded random test images (default 1000; 0 = all)")
    ev.add_argument("--data-dir", default=None, type=Path, help="override the run's data folder")
    ev.add_argument("--seed", default=0, type=_SEED)
    ev.add_argument("--threads", default=1, type=_POSITIVE)
    ev.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda[:N]")
    ev.add_argument("--no-progress", action="store_true")


def _train(args) -> int:
    import torch

    from .learning import train

    torch.set_num_threads(args.threads)
    problem = _device_problem(args.device)
    if problem:
        print(f"error: --device {args.device}: {problem}", file=sys.stderr)
        return 2
    if args.method is None:  # each model's own method
        args.method = ("mle" if args.model in AUTOREGRESSIVE_MODELS
                       else "gan" if args.model == "gan" else "svi")
    if (args.method == "mle") != (args.model in AUTOREGRESSIVE_MODELS):
        print(f"error: --method {args.method} does not train {args.model}: mle is the method of "
              f"{', '.join(AUTOREGRESSIVE_MODELS)} (no latent variables) and only theirs",
              file=sys.stderr)
        return 2
    model_kwargs = {}
    if args.model == "vae":
        model_kwargs.update({k: v for k, v in (("latent_dim", args.latent_dim), ("arch", args.arch),
                                               ("guide", args.guide), ("num_flows", args.num_flows))
                             if v is not None})
    elif args.model == "gan":
        model_kwargs.update({k: v for k, v in (("latent_dim", args.latent_dim), ("arch", args.arch),
                                               ("flip", args.flip), ("width", args.width))
                             if v is not None})
        if args.no_straight_through:
            model_kwargs["straight_through"] = False
    elif args.layers and args.model == "sbn":
        model_kwargs["layers"] = [int(h) for h in args.layers.split(",")]
    if args.force:
        _prepare_out(args.out, True)
    try:
        with recording(args.out):
            run = train(args.model, args.data, data_dir=args.data_dir, method=args.method,
                        epochs=args.epochs, batch_size=args.batch_size,
                        num_particles=args.num_particles, lr=args.lr, seed=args.seed,
                        num_train=args.num_train, insomnia=args.insomnia,
                        model_kwargs=model_kwargs, out=args.out, resume=args.resume,
                        force=args.force, max_time_s=args.max_time,
                        progress=not args.no_progress, device=args.device)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = run.history[-1] if run.history else {}
    print(f"trained {args.model} by {run.config.method}: {len(run.history)} epoch(s); last epoch loss "
          f"{last.get('loss', float('nan')):.2f} nats/image, test ELBO "
          f"{last.get('test_elbo', float('nan')):.2f}; run folder {args.out}")
    return 0


def _evaluate(args) -> int:
    import torch

    from .learning.evaluate import evaluate_run

    torch.set_num_threads(args.threads)
    problem = _device_problem(args.device)
    if problem:
        print(f"error: --device {args.device}: {problem}", file=sys.stderr)
        return 2
    try:
        with recording(args.run_dir):  # its files join the run's manifest (train --force)
            out = evaluate_run(args.run_dir, num_samples=args.num_samples,
                               num_test=args.num_test or None, data_dir=args.data_dir,
                               seed=args.seed, progress=not args.no_progress,
                               device=args.device)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    how = "exact" if out["method"] == "mle" else f"IW bound, S={out['num_samples']}"
    print(f"{out['model']} ({out['method']}, {out['data']}, {out['binarization']} binarization): "
          f"test log-likelihood {out['log_likelihood']:.2f} ± {out['log_likelihood_se']:.2f} "
          f"nats/image ({how}, {out['num_images']} images); "
          f"ELBO {out['elbo']:.2f}; wrote {args.run_dir / 'evaluation.md'}")
    return 0


def _compare_packaged(spec, args, out: Path) -> Path:
    """The fixed-theta comparison of a packaged image model (``vae_mnist``)."""
    from .harness.fixed_theta import compare_fixed_theta
    from .learning import load_run

    module = spec.module
    x = module.make_posterior(quick=args.quick).data["x"]
    result = compare_fixed_theta(load_run(module.packaged_checkpoint_dir()), images=x,
                                 seed=args.seed, num_samples=module.NUM_SAMPLES,
                                 engine_config=spec.engine_config(args.quick),
                                 progress=not args.no_progress,
                                 device=None if args.device == "cpu" else args.device)
    report = result.save(out)
    _print_fixed_theta(result)
    print(f"\nreport: {report}", flush=True)
    return report


def _compare_checkpoint(args) -> int:
    bad = [m for m in args.models if m not in LATENT_IMAGE_MODELS]
    if bad or len(args.models) != 1:
        print(f"error: --checkpoint compares one image model with latent variables "
              f"({' or '.join(LATENT_IMAGE_MODELS)}) at a trained theta; got {args.models}"
              + (f" ({', '.join(AUTOREGRESSIVE_MODELS)} have no latent variables: nothing to "
                 "infer)" if set(args.models) & set(AUTOREGRESSIVE_MODELS) else ""),
              file=sys.stderr)
        return 2
    problem = run_without_latents(args.checkpoint)
    if problem:
        print(f"error: --checkpoint {args.checkpoint}: {problem}", file=sys.stderr)
        return 2
    problem = _device_problem(args.device)
    if problem:
        print(f"error: --device {args.device}: {problem}", file=sys.stderr)
        return 2
    if _refuse_non_empty(args.out, args, "overwrite it", resume=False):
        return 2
    _prepare_out(args.out, args.force)
    with recording(args.out):
        return _compare_checkpoint_run(args)


def _compare_checkpoint_run(args) -> int:
    import pandas as pd
    import torch

    from .harness.fixed_theta import compare_fixed_theta
    from .models import get_model

    torch.set_num_threads(args.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    try:
        result = compare_fixed_theta(args.checkpoint, num_images=args.images, seed=args.seed,
                                     num_samples=args.num_samples,
                                     engine_config=get_model(args.models[0]).engine_config(args.quick),
                                     progress=not args.no_progress,
                                     device=None if args.device == "cpu" else args.device)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = result.save(args.out)
    pd.set_option("display.width", 200)
    _print_fixed_theta(result)
    for engine, row in result.comparison.engine_table.iterrows():
        print(f"  {engine:10s} {row.verdict:13s} {row.because}")
    print(f"\nreport: {report}")
    return 0


def run_without_latents(run_dir) -> str | None:
    """Why a ``train`` run folder cannot be compared at fixed theta (its model has no latent
    variables), read from its ``config.json`` without loading anything; ``None`` otherwise
    (also when the folder or its config is missing: later checks name that)."""
    import json

    try:
        model = json.loads((Path(run_dir) / "config.json").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return None
    if model in AUTOREGRESSIVE_MODELS:
        return (f"a {model} run: no latent variables (exact likelihood), nothing to infer; "
                "use `ppl-genmodels evaluate` for its log-likelihood")
    return None
