"""Command line: ``ppl-genmodels list``, ``compare``, ``guides``, ``gaps``, ``sbc``, ``train`` and ``evaluate``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ._argtypes import _COUNT, _FRACTION, _POSITIVE, _POSITIVE_FLOAT, _SEED, _UNIT
from .io import FileProblem, check_writable, recording, remove_recorded, write_text
from .models.registry import (DEFAULT_MODELS, ENGINE_NAMES, IMAGE_MODELS, MODELS, SBC_ENGINE_NAMES,
                              list_models)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppl-genmodels",
        description="Compare SVI, reweighted wake-sleep and NUTS on the same posterior.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the built-in models")
    cmp_ = sub.add_parser("compare", help="run engines on built-in models and write a report")
    cmp_.add_argument("models", nargs="*", default=list(DEFAULT_MODELS), metavar="MODEL",
                      help=f"built-in model names (default: {' '.join(DEFAULT_MODELS)})")
    cmp_.add_argument("--engines", default=None,
                      help="comma-separated engines (default: those each model supports, "
                           "svi,rws,nuts for most)")
    cmp_.add_argument("--out", default="results", type=Path, help="output folder (default: results)")
    cmp_.add_argument("--seed", default=0, type=_SEED, help="seed for data splits, training and engines")
    cmp_.add_argument("--quick", action="store_true", help="small budgets (a smoke test, not a verdict)")
    group = cmp_.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    group.add_argument("--resume", action="store_true",
                       help="continue in an existing output folder, reusing finished engine runs")
    cmp_.add_argument("--threads", default=1, type=_POSITIVE,
                      help="torch CPU threads (default 1: faster than 2 for these small models)")
    cmp_.add_argument("--no-progress", action="store_true", help="hide progress bars")
    cmp_.add_argument("--checkpoint", type=Path, default=None, metavar="RUN_DIR",
                      help="vae/sbn: compare at the theta of this `ppl-genmodels train` run "
                           "(amortized encoder, per-image refit SVI/RWS guides, NUTS)")
    cmp_.add_argument("--images", type=_POSITIVE, default=4,
                      help="with --checkpoint: number of test images (default 4)")
    cmp_.add_argument("--num-samples", type=_POSITIVE, default=5000,
                      help="with --checkpoint: importance samples per image (default 5000)")
    cmp_.add_argument("--guide", default=None, choices=("ffg", "iaf", "spline"),
                      help="replace the model's guide by a per-posterior autoguide of this family "
                           "(ffg: AutoDiagonalNormal; iaf/spline: AutoNormalizingFlow)")
    gd = sub.add_parser("guides", help="PSIS k-hat and reference checks of ffg / iaf / spline "
                                       "guides on the toy posteriors")
    gd.add_argument("models", nargs="*", default=None, metavar="MODEL",
                    help="default: neals_funnel banana eight_schools_centered eight_schools")
    gd.add_argument("--guides", default="ffg,iaf,spline", help="comma-separated families")
    gd.add_argument("--steps", default=None, type=_POSITIVE, help="SVI steps (default 3000; --quick 300)")
    gd.add_argument("--quick", action="store_true", help="small budgets (a smoke test)")
    gd.add_argument("--seed", default=0, type=_SEED)
    gd.add_argument("--out", default=None, type=Path, help="also write the table as CSV here")
    gp = sub.add_parser("gaps", help="approximation and amortization gaps per guide family "
                                     "(Cremer et al. 2018 Table 2) of trained vae runs")
    gp.add_argument("runs", nargs="+", metavar="RUN_DIR",
                    help="`ppl-genmodels train vae` run folders; `vae_mnist` = the packaged run")
    gp.add_argument("--families", default="ffg,iaf", help="refit families (default ffg,iaf)")
    gp.add_argument("--images", default=100, type=_POSITIVE, help="packaged binarized MNIST test images")
    gp.add_argument("--refit-steps", default=500, type=_POSITIVE, help="SVI steps per refit")
    gp.add_argument("--num-samples", default=1000, type=_POSITIVE, help="importance samples per image")
    gp.add_argument("--seed", default=0, type=_SEED)
    gp.add_argument("--out", default=None, type=Path, help="write gaps.md and per-image CSVs here")
    _add_sbc_parser(sub)
    _add_image_parsers(sub)
    return parser


def _gaps(args) -> int:
    import torch

    from .harness.gaps import gap_table, inference_gaps
    from .models.vae_mnist import packaged_checkpoint_dir, packaged_mnist_images

    torch.set_num_threads(1)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    x = packaged_mnist_images(args.images)[0]
    results = []
    try:
        for run in args.runs:
            label = "vae_mnist (packaged)" if run == "vae_mnist" else None
            path = packaged_checkpoint_dir() if run == "vae_mnist" else Path(run)
            result = inference_gaps(path, x, families=args.families.split(","), seed=args.seed,
                                    refit_steps=args.refit_steps, num_samples=args.num_samples)
            if label:
                result.label = f"{label} ({result.family} encoder)"
            results.append(result)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = gap_table(results).to_markdown()
    note = (f"{args.images} packaged binarized MNIST test images; nats per image, mean ± se over "
            f"images (paired); IW bound S={args.num_samples}; refits {args.refit_steps} SVI steps.")
    print(table + "\n\n" + note)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gaps.md").write_text(table + "\n\n" + note + "\n")
        for i, r in enumerate(results):
            r.per_image.to_csv(args.out / f"per_image_{i}.csv", index=False)
    return 0


def _guides(args) -> int:
    import torch

    from .harness.guide_table import TOY_MODELS, guide_table, k_hat_pivot

    torch.set_num_threads(1)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    models = args.models or list(TOY_MODELS)
    kwargs = {"num_steps": args.steps} if args.steps else {}
    try:
        table = guide_table(models, [g.strip() for g in args.guides.split(",")], quick=args.quick,
                            seed=args.seed, **kwargs)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\nPSIS k-hat (Yao et al. 2018: > 0.7 unreliable); flow_fixes: a flow < 0.7 where ffg > 0.7")
    print(k_hat_pivot(table).to_string(float_format=lambda v: f"{v:.2f}"))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out)
    return 0


def _list() -> int:
    for name in list_models():
        print(f"{name:15s} {MODELS[name].description}")
    return 0


def _refuse_non_empty(out: Path, args, force_does: str, resume: bool = True) -> bool:
    """Print an error and return True when ``out`` holds files and neither ``--force`` nor
    ``--resume`` was given; the caller then exits with status 2, having touched nothing."""
    if not out.is_dir() or not any(out.iterdir()) or args.force or args.resume:
        return False
    resume_hint = " or --resume to continue the run in it" if resume else ""
    print(f"error: {out} exists and is not empty; pass --force to {force_does}{resume_hint}",
          file=sys.stderr)
    return True


def _compare(args) -> int:
    unknown = [m for m in args.models if m not in list_models()]
    engines = None
    if args.engines is not None:
        engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines or () if e not in ENGINE_NAMES]
    if engines == []:
        print(f"error: --engines {args.engines!r} names no engine; engines: {list(ENGINE_NAMES)}",
              file=sys.stderr)
        return 2
    if unknown or bad:
        what = f"unknown model(s) {unknown}" if unknown else f"unknown engine(s) {bad}"
        print(f"error: {what}; models: {list_models()}, engines: {list(ENGINE_NAMES)}", file=sys.stderr)
        return 2
    out: Path = args.out
    if _refuse_non_empty(out, args, "overwrite it"):
        return 2
    _prepare_out(out, args.force)
    with recording(out):
        return _compare_models(args, engines, out)


def _prepare_out(out: Path, force: bool) -> None:
    """Check that ``out`` can be written (before any engine runs) and, with ``--force``,
    delete the files the previous run listed in its manifest (and nothing else).

    :raises OutputFolderError, DamagedFileError: printed by :func:`main` as one line.
    """
    check_writable(out)
    if force:
        remove_recorded(out)


def _compare_models(args, engines, out: Path) -> int:
    import pandas as pd
    import torch

    from . import compare
    from .models import get_model

    torch.set_num_threads(args.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)  # "Guessed max_plate_nesting" per engine
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    start = time.perf_counter()
    reports = []
    for name in args.models:
        spec = get_model(name)
        print(f"\n=== {name}: {spec.description}", flush=True)
        if spec.info.fixed_theta:
            reports.append(_compare_packaged(spec, args, out / name))
            continue
        try:
            posterior = spec.posterior(quick=args.quick, seed=args.seed)
            if args.guide:
                from .models.flows import with_guide

                posterior = with_guide(posterior, args.guide)
        except ValueError as exc:  # e.g. vae/sbn without --checkpoint; discrete latents
            print(f"error: {name}: {exc}", file=sys.stderr)
            return 2
        comparison = compare(
            posterior, engines=engines or spec.engines, seed=args.seed, reference=spec.reference(posterior),
            engine_config=spec.engine_config(args.quick), progress=not args.no_progress,
            checkpoint_dir=out / name, resume=args.resume, strict_resume=True,
        )
        report = comparison.save(out / name)
        reports.append(report)
        engine_table = comparison.engine_table
        print(f"\n{name}: verdicts")
        for engine, row in engine_table.iterrows():
            print(f"  {engine:6s} {row.verdict:13s} {row.because}")
        print(f"\n{name}: engines (wall time s, ELBO/log-evidence nats, PSIS k-hat)")
        print(engine_table.drop(columns=["verdict", "because"]).to_string(float_format=lambda v: f"{v:.4g}"))
        print(f"\n{name}: parameters (distances to {comparison.baseline})")
        cols = ["mean", "sd", "ess_bulk", "r_hat", "std_mean_error", "sd_ratio", "wasserstein"]
        table = comparison.table
        print(table[[c for c in cols if c in table]].to_string(float_format=lambda v: f"{v:.3g}"))
        print(f"\nreport: {report}", flush=True)
    wall = time.perf_counter() - start
    index = ["# ppl-genmodels compare", "", f"Total wall time: {wall:.1f} s.", ""]
    index += [f"- [{r.parent.name}]({r.parent.name}/report.md)" for r in reports]
    write_text(out / "index.md", "\n".join(index) + "\n")
    print(f"\nwrote {out / 'index.md'} ({len(reports)} report(s)); total wall time {wall:.1f} s")
    return 0


def _add_sbc_parser(sub) -> None:
    sbc_ = sub.add_parser("sbc", help="simulation-based calibration of one engine on a model")
    sbc_.add_argument("model", metavar="MODEL", help="built-in model name")
    sbc_.add_argument("--engine", default="nuts",
                      help="nuts, svi, rws (refit per simulation) or amortized (guide trained "
                           "once by RWS sleep, then only evaluated); default nuts")
    sbc_.add_argument("--simulations", default=200, type=_POSITIVE, help="N simulated data sets (>= 10)")
    sbc_.add_argument("--draws", default=99, type=_POSITIVE, help="L posterior draws per rank (default 99)")
    sbc_.add_argument("--out", default=None, type=Path,
                      help="output folder (default: results/sbc/MODEL-ENGINE)")
    sbc_.add_argument("--seed", default=0, type=_SEED, help="seed of simulations and engines")
    sbc_.add_argument("--alpha", default=0.05, type=_FRACTION,
                      help="family-wise error rate of the verdict (Bonferroni); default 0.05")
    sbc_.add_argument("--quick", action="store_true", help="the model's small engine budgets")
    group = sbc_.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="discard an existing run in the folder")
    group.add_argument("--resume", action="store_true",
                       help="continue an existing run, keeping finished simulations")
    sbc_.add_argument("--threads", default=1, type=_POSITIVE, help="torch CPU threads (default 1)")
    sbc_.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _sbc(args) -> int:
    engines = SBC_ENGINE_NAMES
    if args.model not in list_models() or args.engine not in engines:
        what = (f"unknown model {args.model!r}" if args.model not in list_models()
                else f"unknown engine {args.engine!r}")
        print(f"error: {what}; models: {list_models()}, engines: {list(engines)}", file=sys.stderr)
        return 2
    out: Path = args.out or Path("results") / "sbc" / f"{args.model}-{args.engine}"
    if _refuse_non_empty(out, args, "start over"):
        return 2
    _prepare_out(out, args.force)
    with recording(out):
        return _sbc_run(args, out)


def _sbc_run(args, out: Path) -> int:
    import torch

    from .sbc import sbc, write_report

    torch.set_num_threads(args.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    start = time.perf_counter()
    try:
        result = sbc(args.model, args.engine, num_simulations=args.simulations,
                     num_draws=args.draws, seed=args.seed, progress=not args.no_progress,
                     quick=args.quick, alpha=args.alpha, checkpoint_dir=out / "checkpoints",
                     resume=not args.force)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = write_report(result, out)
    tests = result.tests()
    cols = [c for c in ("ecdf_p", "chi2_p", "mean_rank_frac", "extreme_frac", "vsbc_p", "verdict")
            if c in tests]
    print(f"\nSBC {args.model} / {result.engine}: N={result.num_simulations}, L={result.num_draws}")
    print(tests[cols].to_string(float_format=lambda v: f"{v:.3g}"))
    failed = int((tests["verdict"] == "fail").sum())
    print(f"\nverdict: {'PASS' if not failed else f'FAIL ({failed} of {len(tests)} parameters)'} "
          f"(ECDF test, Bonferroni alpha={args.alpha}/{len(tests)})")
    print(f"report: {report}; wall time {time.perf_counter() - start:.1f} s", flush=True)
    return 0


def _add_image_parsers(sub) -> None:
    from .learning.methods import DEFAULT_PARTICLES, METHODS

    tr = sub.add_parser("train", help=f"learn theta of an image model ({', '.join(IMAGE_MODELS)}) "
                                      "on binary images")
    tr.add_argument("model", choices=IMAGE_MODELS, metavar="MODEL", help=" or ".join(IMAGE_MODELS))
    tr.add_argument("--data", default="binarized_mnist",
                    help="binarized_mnist (fixed), mnist or fashion_mnist (dynamic), digits")
    tr.add_argument("--data-dir", default=None, type=Path, help="folder with the data set's files")
    tr.add_argument("--method", default="svi", choices=METHODS,
                    help="svi, iwae, rws, wake_sleep or nvil (default svi)")
    tr.add_argument("--epochs", default=10, type=_POSITIVE)
    tr.add_argument("--batch-size", default=100, type=_POSITIVE)
    tr.add_argument("--num-particles", default=None, type=_POSITIVE,
                    help=f"K (default per method: {DEFAULT_PARTICLES})")
    tr.add_argument("--lr", default=1e-3, type=_POSITIVE_FLOAT, help="Adam learning rate")
    tr.add_argument("--latent-dim", default=None, type=_POSITIVE, help="vae: latent size (default 50)")
    tr.add_argument("--arch", default=None, choices=("mlp", "conv"), help="vae: architecture")
    tr.add_argument("--guide", default=None, choices=("ffg", "iaf", "spline"),
                    help="vae: encoder family: ffg (default), iaf or spline (conditional flows)")
    tr.add_argument("--num-flows", default=None, type=_POSITIVE, help="vae with a flow guide: layers (default 2)")
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
    tr.add_argument("--no-progress", action="store_true")
    ev = sub.add_parser("evaluate", help="test log-likelihood, samples and reconstructions of a run")
    ev.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    ev.add_argument("--num-samples", default=5000, type=_POSITIVE, help="importance samples S (default 5000)")
    ev.add_argument("--num-test", default=1000, type=_COUNT,
                    help="seeded random test images (default 1000; 0 = all)")
    ev.add_argument("--data-dir", default=None, type=Path, help="override the run's data folder")
    ev.add_argument("--seed", default=0, type=_SEED)
    ev.add_argument("--threads", default=1, type=_POSITIVE)
    ev.add_argument("--no-progress", action="store_true")


def _train(args) -> int:
    import torch

    from .learning import train

    torch.set_num_threads(args.threads)
    model_kwargs = {}
    if args.model == "vae":
        model_kwargs.update({k: v for k, v in (("latent_dim", args.latent_dim), ("arch", args.arch),
                                               ("guide", args.guide), ("num_flows", args.num_flows))
                             if v is not None})
    elif args.layers:
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
                        progress=not args.no_progress)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    last = run.history[-1] if run.history else {}
    print(f"trained {args.model} by {args.method}: {len(run.history)} epoch(s); last epoch loss "
          f"{last.get('loss', float('nan')):.2f} nats/image, test ELBO "
          f"{last.get('test_elbo', float('nan')):.2f}; run folder {args.out}")
    return 0


def _evaluate(args) -> int:
    import torch

    from .learning.evaluate import evaluate_run

    torch.set_num_threads(args.threads)
    try:
        with recording(args.run_dir):  # its files join the run's manifest (train --force)
            out = evaluate_run(args.run_dir, num_samples=args.num_samples,
                               num_test=args.num_test or None, data_dir=args.data_dir,
                               seed=args.seed, progress=not args.no_progress)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{out['model']} ({out['method']}, {out['data']}, {out['binarization']} binarization): "
          f"test log-likelihood {out['log_likelihood']:.2f} ± {out['log_likelihood_se']:.2f} "
          f"nats/image (IW bound, S={out['num_samples']}, {out['num_images']} images); "
          f"ELBO {out['elbo']:.2f}; wrote {args.run_dir / 'evaluation.md'}")
    return 0


def _print_fixed_theta(result) -> None:
    print(result.note)
    print("\nimages each engine can be trusted on:")
    print(result.trust.to_string())
    print("\nper guide, averaged over images (nats; k_hat; mean error in NUTS sds):")
    print(result.summary().to_string(float_format=lambda v: f"{v:.3f}"))
    print("\ngaps over images (nats):")
    print(result.gaps.describe().T.to_string(float_format=lambda v: f"{v:.3f}"))


def _compare_packaged(spec, args, out: Path) -> Path:
    """The fixed-theta comparison of a packaged image model (``vae_mnist``)."""
    from .harness.fixed_theta import compare_fixed_theta
    from .learning import load_run

    module = spec.module
    x = module.make_posterior(quick=args.quick).data["x"]
    result = compare_fixed_theta(load_run(module.packaged_checkpoint_dir()), images=x,
                                 seed=args.seed, num_samples=module.NUM_SAMPLES,
                                 engine_config=spec.engine_config(args.quick),
                                 progress=not args.no_progress)
    report = result.save(out)
    _print_fixed_theta(result)
    print(f"\nreport: {report}", flush=True)
    return report


def _compare_checkpoint(args) -> int:
    bad = [m for m in args.models if m not in IMAGE_MODELS]
    if bad or len(args.models) != 1:
        print(f"error: --checkpoint compares one image model ({' or '.join(IMAGE_MODELS)}) at a "
              f"trained theta; got {args.models}", file=sys.stderr)
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
                                     progress=not args.no_progress)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ppl-genmodels`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list()
    commands = {"sbc": _sbc, "train": _train, "evaluate": _evaluate, "compare": _compare,
                "gaps": _gaps, "guides": _guides}
    command = commands[args.command]
    if getattr(args, "checkpoint", None) is not None:
        command = _compare_checkpoint
    try:
        return command(args)
    except FileProblem as exc:  # damaged, stale or unwritable files: the message names them
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # every file written so far is complete (atomic writes)
        print("\ninterrupted; finished work is saved: rerun with --resume to continue",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
