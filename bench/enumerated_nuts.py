"""Ensemble NUTS on models with enumerated discrete sites: vectorized vs chain by chain.

Pyro sums enumerated sites out with a log-space einsum; its ``safe_log`` is an
``autograd.Function`` that ``torch.func`` refuses, so such models used to fall back to the
``"loop"`` potential (one autograd call per chain). The potential now swaps in a
``torch.func``-ready ``safe_log`` while it evaluates (``ppl_genmodels/infer/_potential.py``)
and runs them in ``"vmap"`` mode. This script runs both modes side by side in one process,
same model, seed and settings, and prints wall time, min bulk ESS, min-ESS/s, the speed-up
and the largest difference between the two runs' draws (the same chains up to float error).

    OMP_NUM_THREADS=1 python bench/enumerated_nuts.py [--num-samples 200] [--warmup-steps 200]
"""

from __future__ import annotations

import argparse
import time

import arviz as az
import numpy as np
import torch

from ppl_genmodels.infer import NUTS
from ppl_genmodels.models import get_model


def run(model: str, potential: str, args) -> tuple[float, float, dict]:
    posterior = get_model(model).posterior()
    engine = NUTS(num_samples=args.num_samples, warmup_steps=args.warmup_steps,
                  num_chains=args.num_chains, potential=potential)
    start = time.perf_counter()
    idata = engine.run(posterior, seed=args.seed, progress=False).idata
    wall = time.perf_counter() - start
    assert idata.attrs["potential_mode"] == potential, idata.attrs["potential_mode"]
    ess = float(az.ess(idata, method="bulk").to_array().min())
    draws = {k: v.values for k, v in idata.posterior.data_vars.items()}
    return wall, ess, draws


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="enum_mixture,bayes_gauss_mix")
    parser.add_argument("--num-samples", type=int, default=200)
    parser.add_argument("--warmup-steps", type=int, default=200)
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("| model | potential | wall (s) | min bulk ESS | min-ESS/s | speed-up | max abs draw difference |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        results = {mode: run(model, mode, args) for mode in ("loop", "vmap")}
        diff = max(float(np.max(np.abs(results["loop"][2][k] - results["vmap"][2][k])))
                   for k in results["loop"][2])
        for mode, (wall, ess, _) in results.items():
            speed = results["loop"][0] / wall
            print(f"| {model} | {mode} | {wall:.1f} | {ess:.0f} | {ess / wall:.1f} | "
                  f"{speed:.2f}x | {diff:.2g} |", flush=True)


if __name__ == "__main__":
    main()
