"""Command line: ``grid SPEC.toml`` (comparisons, SBC batches and training runs on Dask)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ._argtypes import _POSITIVE


def add_grid_parser(sub) -> None:
    gr = sub.add_parser("grid", help="run a grid (TOML spec) of comparisons, SBC batches and "
                                     "training runs as tasks on a Dask cluster")
    gr.add_argument("spec", type=Path, metavar="SPEC.toml", help="grid spec (see examples/grid.toml)")
    gr.add_argument("--out", type=Path, default=None,
                    help="output folder (default: results/grid/SPEC-NAME); finished tasks "
                         "there are not rerun")
    where = gr.add_mutually_exclusive_group()
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="a running Dask scheduler (default: an embedded LocalCluster)")
    where.add_argument("--serial", action="store_true", help="no Dask: run the tasks here, in order")
    gr.add_argument("--workers", type=_POSITIVE, default=2,
                    help="LocalCluster worker processes, one thread each (default 2)")
    gr.add_argument("--dashboard", default=":8787", metavar="[HOST]:PORT",
                    help="LocalCluster dashboard address (default :8787)")
    gr.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _grid(args) -> int:
    from .grid import GridSpecError, load_spec, run_grid
    from .grid.run import GridTaskError

    start = time.perf_counter()
    try:
        spec = load_spec(args.spec)
    except GridSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or Path("results") / "grid" / args.spec.stem
    try:
        result = run_grid(spec, out, scheduler=args.scheduler, workers=args.workers,
                          serial=args.serial, dashboard_address=args.dashboard,
                          progress=not args.no_progress)
    except GridSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GridTaskError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished tasks are saved under {out}: rerun the same command to "
              "continue", file=sys.stderr)
        return 130
    print(f"grid: ran {result['ran']} task(s), reused {result['skipped']}; "
          f"wall time {time.perf_counter() - start:.1f} s")
    return 0
