"""Command line: ``ppl-genmodels list``, ``compare``, ``guides``, ``gaps``, ``sbc``, ``train`` and ``evaluate``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ._argtypes import _POSITIVE, _SEED
from ._cli_common import _device_problem, _prepare_out, _refuse_non_empty
from ._cli_em import _em, add_em_parser
from ._cli_flows import _gaps, _guides, add_flow_parsers
from ._cli_grid import _grid, add_grid_parser
from ._cli_images import _add_image_parsers, _compare_checkpoint, _compare_packaged, _evaluate, _train
from ._cli_sbc import _add_sbc_parser, _sbc
from ._cli_modes import _latent, _modes, add_modes_parsers
from .io import FileProblem, recording, write_text
from .models.registry import (DEFAULT_MODELS, ENGINE_NAMES, MODELS, list_models)


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
    cmp_.add_argument("--device", default="cpu",
                      help="torch device for the engines: cpu (default) or cuda[:N]")
    cmp_.add_argument("--jobs", default=_default_jobs(), type=_POSITIVE,
                      help="models compared at once, one process each (default: CPU cores, at "
                           "most 2)")
    cmp_.add_argument("--no-progress", action="store_true", help="hide progress bars")
    cmp_.add_argument("--checkpoint", type=Path, default=None, metavar="RUN_DIR",
                      help="vae/sbn/gan: compare at the theta of this `ppl-genmodels train` run "
                           "(amortized encoder, per-image refit SVI/RWS guides, NUTS)")
    cmp_.add_argument("--images", type=_POSITIVE, default=4,
                      help="with --checkpoint: number of test images (default 4)")
    cmp_.add_argument("--num-samples", type=_POSITIVE, default=5000,
                      help="with --checkpoint: importance samples per image (default 5000)")
    cmp_.add_argument("--guide", default=None, choices=("ffg", "iaf", "spline"),
                      help="replace the model's guide by a per-posterior autoguide of this family "
                           "(ffg: AutoDiagonalNormal; iaf/spline: AutoNormalizingFlow)")
    add_flow_parsers(sub)
    add_grid_parser(sub)
    add_em_parser(sub)
    _add_sbc_parser(sub)
    _add_image_parsers(sub)
    add_modes_parsers(sub)
    return parser


def _default_jobs() -> int:
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(2, cores or 1))


def _list() -> int:
    for name in list_models():
        print(f"{name:15s} {MODELS[name].description}")
    return 0


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
    no_latents = [m for m in args.models if not MODELS[m].latent]
    if no_latents:  # autoregressive: exact likelihood, no posterior to compare engines on
        print(f"error: {', '.join(no_latents)}: no latent variables, nothing to infer; use "
              "`ppl-genmodels train ... --method mle` and `evaluate`", file=sys.stderr)
        return 2
    no_cavi = [m for m in args.models if "cavi" in (engines or ()) and "cavi" not in MODELS[m].engines]
    if no_cavi:  # CAVI needs a conditionally conjugate model (infer/cavi.py)
        print(f"error: engine cavi runs only on {[m for m in MODELS if 'cavi' in MODELS[m].engines]}, "
              f"not {no_cavi}", file=sys.stderr)
        return 2
    problem = _device_problem(args.device)
    if problem:
        print(f"error: --device {args.device}: {problem}", file=sys.stderr)
        return 2
    out: Path = args.out
    if _refuse_non_empty(out, args, "overwrite it"):
        return 2
    _prepare_out(out, args.force)
    with recording(out):
        return _compare_models(args, engines, out)


def _compare_models(args, engines, out: Path) -> int:
    """Run each model's comparison, in ``--jobs`` worker processes (``spawn``; torch's
    thread count is set per process) or in this one, and print their tables in the models'
    order."""
    start = time.perf_counter()
    jobs = min(args.jobs, len(args.models))
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_die_with_parent) as pool:
            futures = [pool.submit(_compare_captured, name, args, engines, out)
                       for name in args.models]
            outcomes = []
            for future in futures:  # in the models' order, each as soon as it is done
                status, text, report = future.result()
                print(text, end="", flush=True)
                outcomes.append((status, report))
    else:
        outcomes = [_compare_one(name, args, engines, out) for name in args.models]
    for status, report in outcomes:
        if status and report is None:
            return status
    reports = [report for _, report in outcomes]
    wall = time.perf_counter() - start
    index = ["# ppl-genmodels compare", "", f"Total wall time: {wall:.1f} s.", ""]
    index += [f"- [{r.parent.name}]({r.parent.name}/report.md)" for r in reports]
    write_text(out / "index.md", "\n".join(index) + "\n")
    print(f"\nwrote {out / 'index.md'} ({len(reports)} report(s)); total wall time {wall:.1f} s")
    return max(status for status, _ in outcomes)  # 1: some engine failed (its report says which)


def _die_with_parent() -> None:
    """Worker initializer: on Linux, ask the kernel to kill this worker when the parent
    dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``), so a killed ``compare`` leaves no worker
    writing into its folder."""
    import ctypes
    import signal

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
        except OSError:  # no glibc: workers then finish their model
            pass


def _compare_captured(name: str, args, engines, out: Path):
    """:func:`_compare_one` in a worker process: its printout is returned, not printed, so
    that the parent prints each model's tables whole; its files join ``out``'s manifest
    (updated under a folder lock)."""
    import contextlib
    import io

    buffer = io.StringIO()
    with recording(out), contextlib.redirect_stdout(buffer):
        status, report = _compare_one(name, args, engines, out)
    return status, buffer.getvalue(), report


def _compare_one(name: str, args, engines, out: Path):
    """Compare the engines on one built-in model, write its report under ``out/name`` and
    print its tables. :returns: ``(exit status, report path or None)``."""
    import pandas as pd
    import torch

    from . import compare
    from .models import get_model

    torch.set_num_threads(args.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)  # "Guessed max_plate_nesting" per engine
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    spec = get_model(name)
    print(f"\n=== {name}: {spec.description}", flush=True)
    if spec.info.fixed_theta:
        return 0, _compare_packaged(spec, args, out / name)
    try:
        posterior = spec.posterior(quick=args.quick, seed=args.seed)
        if args.guide:
            from .models.flows import with_guide

            posterior = with_guide(posterior, args.guide)
    except ValueError as exc:  # e.g. vae/sbn without --checkpoint; discrete latents
        print(f"error: {name}: {exc}", file=sys.stderr)
        return 2, None
    reference = spec.reference(posterior)
    with torch.device(args.device):  # constants a model creates follow the device
        comparison = compare(
            posterior.to(args.device), engines=engines or spec.engines, seed=args.seed,
            reference=reference, engine_config=spec.engine_config(args.quick),
            progress=not args.no_progress, checkpoint_dir=out / name, resume=args.resume,
            strict_resume=True,
        )
    report = comparison.save(out / name)
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
    for engine, message in comparison.failures.items():
        print(f"error: {name}: engine {engine} failed (the others' results are in the report; "
              f"--resume retries only it): {message}", file=sys.stderr)
    return (1 if comparison.failures else 0), report


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ppl-genmodels`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list()
    commands = {"sbc": _sbc, "train": _train, "evaluate": _evaluate, "compare": _compare,
                "gaps": _gaps, "guides": _guides, "grid": _grid, "modes": _modes,
                "latent": _latent, "em": _em}
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
