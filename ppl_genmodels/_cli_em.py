"""Command line: ``ppl-genmodels em`` -- EM, k-means and mean-field CAVI vs NUTS vs SVI on a
Gaussian mixture (:func:`ppl_genmodels.harness.mixture.em_story`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from ._argtypes import _SEED
from ._cli_common import _prepare_out, _refuse_non_empty
from .io import recording


def add_em_parser(sub) -> None:
    em = sub.add_parser("em", help="EM and k-means on a Gaussian mixture; mean-field CAVI vs NUTS "
                                   "vs SVI on the same posterior, with label switching and "
                                   "under-dispersion")
    em.add_argument("--engines", default="cavi,nuts,svi",
                    help="comma-separated engines for the posterior comparison (default cavi,nuts,svi)")
    em.add_argument("--out", default=Path("results/em"), type=Path, help="output folder (default results/em)")
    em.add_argument("--seed", default=0, type=_SEED)
    em.add_argument("--quick", action="store_true", help="small budgets (a smoke test, not a verdict)")
    group = em.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="overwrite an existing output folder")
    group.add_argument("--resume", action="store_true", help="reuse finished engine runs in the folder")
    em.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _em(args) -> int:
    from .models.registry import model_info

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    allowed = model_info("bayes_gauss_mix").engines
    bad = [e for e in engines if e not in allowed]
    if not engines or bad:
        print(f"error: --engines {args.engines!r}: use some of {list(allowed)}", file=sys.stderr)
        return 2
    if _refuse_non_empty(args.out, args, "overwrite it"):
        return 2
    _prepare_out(args.out, args.force)
    import pandas as pd
    import torch

    from .harness.mixture import em_story

    torch.set_num_threads(1)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    pd.set_option("display.width", 200)
    with recording(args.out):
        story = em_story(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress,
                         engines=engines, resume=args.resume, strict_resume=True)
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    print("EM on low_dim_gauss_mix (K=2): log-likelihood in nats")
    print(story.em_table.to_string(float_format=fmt))
    print("\nk-means limit on iris petals (K=3): EM with fixed sd sigma vs sklearn KMeans")
    print(story.kmeans_table.to_string(float_format=fmt))
    table = story.comparison.engine_table
    print("\nbayes_gauss_mix: verdicts")
    for engine, row in table.iterrows():
        print(f"  {engine:6s} {row.verdict:13s} {row.because}")
    cols = [c for c in ("wall_time_s", "elbo", "k_hat", "max_r_hat", "min_ess_bulk", "mean_sd_ratio")
            if c in table]
    print("\nbayes_gauss_mix: engines (wall time s, ELBO nats, PSIS k-hat; sd ratio vs pooled NUTS)")
    print(table[cols].to_string(float_format=fmt))
    print("\nlabel switching: each chain's labelling")
    print(story.modes.to_string())
    print("\nafter sorting components by location: sd ratio to NUTS")
    print(story.aligned[["mean", "sd", "sd_ratio", "std_mean_error"]].unstack("engine")["sd_ratio"]
          .to_string(float_format=fmt))
    print(f"\nreport: {story.report}")
    return 0
