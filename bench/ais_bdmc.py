"""Bidirectional Monte Carlo (Grosse, Ghahramani & Adams 2015; Wu et al. 2017) for the packaged
MNIST VAE: how far is AIS from log p(x) on data simulated from the model itself?

N images are drawn from the packaged VAE (z ~ N(0, I), x ~ Bernoulli(decoder(z))), so the z
that generated each x is an exact draw from p(z | x). For each T, forward AIS from the amortized
encoder gives a stochastic lower bound on log p(x) and reverse AIS from the generating z
(:func:`ppl_genmodels.learning.ais.annealed_importance_sampling` with ``posterior_samples``)
a stochastic upper bound; their paired difference bounds the forward estimator's error on
such data (nats per image, mean ± se over images).

Usage: ``OMP_NUM_THREADS=1 python bench/ais_bdmc.py [--images 20] [--chains 16]
[--steps 100,1000]``; prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from ppl_genmodels.learning.ais import annealed_importance_sampling
from ppl_genmodels.learning.trainer import load_run
from ppl_genmodels.models.vae_mnist import packaged_checkpoint_dir


def _ms(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.2f} ± {values.std(ddof=1) / np.sqrt(len(values)):.2f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--steps", default="100,1000", help="comma-separated T values")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = load_run(packaged_checkpoint_dir())
    vae = run.model
    g = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        z = torch.randn(args.images, vae.latent_dim, generator=g)
        x = torch.bernoulli(torch.sigmoid(vae.decoder(z)), generator=g)
    rows = []
    for steps in [int(s) for s in args.steps.split(",")]:
        kw = dict(num_steps=steps, num_chains=args.chains, seed=args.seed)
        low = annealed_importance_sampling(vae.model, run.guide, x, **kw)
        up = annealed_importance_sampling(vae.model, run.guide, x, posterior_samples={"z": z[None]},
                                          **{**kw, "seed": args.seed + 1})
        rows.append(f"| {steps} | {args.chains} | {_ms(low.log_evidence)} | {_ms(up.log_evidence)} | "
                    f"{_ms(up.log_evidence - low.log_evidence)} | {low.acceptance.mean():.2f} / "
                    f"{up.acceptance.mean():.2f} | {low.seconds:.0f} + {up.seconds:.0f} |")
    print(f"{args.images} images simulated from the packaged VAE (seed {args.seed}); nats per image\n")
    print("| T | M | forward AIS (lower) | reverse AIS (upper) | BDMC gap (paired) | acceptance fwd / rev | seconds fwd + rev |")
    print("|---:|---:|:---|:---|:---|:---|:---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
