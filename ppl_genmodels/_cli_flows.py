"""Command line for guide families: ``guides`` (toy k-hat table) and ``gaps`` (Cremer et al.
2018 Table 2 of trained vae runs)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from .io import FileProblem, check_writable, write_text
from ._argtypes import _COUNT, _POSITIVE, _SEED


def add_flow_parsers(sub) -> None:
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
    gp.add_argument("--ais-steps", default=0, type=_COUNT,
                    help="T annealing steps of AIS with HMC from the ffg refit (default 0: no AIS)")
    gp.add_argument("--ais-chains", default=16, type=_POSITIVE, help="AIS chains per image (default 16)")
    gp.add_argument("--seed", default=0, type=_SEED)
    gp.add_argument("--out", default=None, type=Path, help="write gaps.md and per-image CSVs here")


def _gaps(args) -> int:
    import torch

    from ._cli_images import run_without_latents
    from .harness.gaps import gap_table, inference_gaps
    from .learning.trainer import load_run
    from .models.flows import GUIDE_FAMILIES
    from .models.vae_mnist import packaged_checkpoint_dir, packaged_mnist_images

    torch.set_num_threads(1)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    for run in args.runs:  # before any work: autoregressive runs have no latents, no gaps
        problem = run_without_latents(run) if run != "vae_mnist" else None
        if problem:
            print(f"error: {run}: {problem}", file=sys.stderr)
            return 2
    families = [f.strip() for f in args.families.split(",")]
    try:
        # every run is loaded and checked before any refit starts
        try:
            x = packaged_mnist_images(args.images)[0]
        except ValueError as exc:
            raise ValueError(f"--images {args.images}: {exc}") from exc
        runs = [load_run(packaged_checkpoint_dir() if run == "vae_mnist" else Path(run))
                for run in args.runs]
        bad = [str(r.directory) for r in runs if r.config.model != "vae"]
        if bad:
            raise ValueError(f"the gap table needs vae runs (continuous latents); not vae: {bad}")
        unknown = [f for f in families if f not in GUIDE_FAMILIES]
        if unknown:
            raise ValueError(f"unknown refit families {unknown}; known: {list(GUIDE_FAMILIES)}")
        if args.out:
            check_writable(args.out)
        results = []
        for name, run in zip(args.runs, runs):
            result = inference_gaps(run, x, families=families, seed=args.seed,
                                    refit_steps=args.refit_steps, num_samples=args.num_samples,
                                    ais_steps=args.ais_steps, ais_chains=args.ais_chains,
                                    progress=args.ais_steps > 0)
            if name == "vae_mnist":
                result.label = f"vae_mnist (packaged) ({result.family} encoder)"
            results.append(result)
    except (ValueError, FileProblem, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = gap_table(results).to_markdown()
    note = (f"{args.images} packaged binarized MNIST test images; nats per image, mean ± se over "
            f"images (paired); IW bound S={args.num_samples}; refits {args.refit_steps} SVI steps.")
    if args.ais_steps:
        note += (f" AIS: {args.ais_chains} chains per image, {args.ais_steps} HMC steps (5 leapfrog,"
                 " pilot-tuned step sizes) from the ffg refit; log p^(x) = AIS (the"
                 " best IW bound is its own row); AIS time " + ", ".join(f"{r.ais_seconds:.0f} s" for r in results) + ".")
    print(table + "\n\n" + note)
    if args.out:
        write_text(args.out / "gaps.md", table + "\n\n" + note + "\n")
        for i, r in enumerate(results):
            write_text(args.out / f"per_image_{i}.csv", r.per_image.to_csv(index=False))
            if r.ais is not None:
                write_text(args.out / f"ais_{i}.csv", r.ais.to_csv(index=False))
    return 0


def _guides(args) -> int:
    import torch

    from .harness.guide_table import TOY_MODELS, guide_table, k_hat_pivot

    torch.set_num_threads(1)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    if args.out:
        check_writable(args.out.parent)
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
        write_text(args.out, table.to_csv())
    return 0
