"""Command line: ``sbc``."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from ._argtypes import _FRACTION, _POSITIVE, _SEED
from .io import recording
from .models.registry import SBC_ENGINE_NAMES, list_models
from ._cli_common import _prepare_out, _refuse_non_empty


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
