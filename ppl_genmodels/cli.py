"""Command line: ``ppl-genmodels list`` and ``ppl-genmodels compare``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

DEFAULT_MODELS = ("eight_schools", "vae_digits")
ENGINE_NAMES = ("svi", "rws", "nuts")


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
    cmp_.add_argument("--engines", default=",".join(ENGINE_NAMES),
                      help="comma-separated engines (default: svi,rws,nuts)")
    cmp_.add_argument("--out", default="results", type=Path, help="output folder (default: results)")
    cmp_.add_argument("--seed", default=0, type=int, help="seed for data splits, training and engines")
    cmp_.add_argument("--quick", action="store_true", help="small budgets (a smoke test, not a verdict)")
    group = cmp_.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    group.add_argument("--resume", action="store_true",
                       help="continue in an existing output folder, reusing finished engine runs")
    cmp_.add_argument("--threads", default=1, type=int,
                      help="torch CPU threads (default 1: faster than 2 for these small models)")
    cmp_.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _list() -> int:
    from .models import get_model, list_models

    for name in list_models():
        print(f"{name:15s} {get_model(name).description}")
    return 0


def _compare(args) -> int:
    from .models import list_models

    unknown = [m for m in args.models if m not in list_models()]
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    bad = [e for e in engines if e not in ENGINE_NAMES]
    if unknown or bad or not engines:
        what = f"unknown model(s) {unknown}" if unknown else f"unknown engine(s) {bad or engines}"
        print(f"error: {what}; models: {list_models()}, engines: {list(ENGINE_NAMES)}", file=sys.stderr)
        return 2
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not (args.force or args.resume):
        print(f"error: {out} exists and is not empty; pass --force to overwrite it or "
              "--resume to continue the run in it", file=sys.stderr)
        return 2

    import pandas as pd
    import torch

    from . import compare
    from .models import get_model
    from .io import write_text

    torch.set_num_threads(args.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)  # "Guessed max_plate_nesting" per engine
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    start = time.perf_counter()
    reports = []
    for name in args.models:
        spec = get_model(name)
        print(f"\n=== {name}: {spec.description}", flush=True)
        posterior = spec.posterior(quick=args.quick, seed=args.seed)
        comparison = compare(
            posterior, engines=engines, seed=args.seed, reference=spec.reference(posterior),
            engine_config=spec.engine_config(args.quick), progress=not args.no_progress,
            checkpoint_dir=out / name, resume=args.resume,
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ppl-genmodels`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list()
    return _compare(args)


if __name__ == "__main__":
    sys.exit(main())
