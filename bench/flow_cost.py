"""Per-SVI-step cost of flow guides vs the fully factorized Gaussian (FFG), same latent size.

Two settings, each family timed side by side in one process, round-robin (so machine load
hits every family alike), median over rounds:

- ``vae``: one ``pyro.infer.Trace_ELBO`` training step (loss, backward, Adam) of the MNIST VAE
  (MLP 2x200, L = 50 latents, 784 pixels) on a batch of 100 binarized MNIST images (the
  packaged test images), with the FFG encoder vs the amortized IAF / spline flow encoder
  (each family's default depth, ``flows.DEFAULT_NUM_FLOWS``: 2 IAF layers, 1 rational-quadratic
  spline layer of 8 bins; :mod:`ppl_genmodels.models.vae_flows`);
- ``funnel``: one ``pyro.infer.SVI`` step (Trace_ELBO, 8 vectorized particles) of a
  per-posterior autoguide on the 10-d Neal's funnel: ``AutoDiagonalNormal`` vs
  ``AutoNormalizingFlow`` with 2 IAF layers / 1 spline layer (:mod:`ppl_genmodels.models.flows`).

Usage: ``OMP_NUM_THREADS=1 python bench/flow_cost.py [--rounds 5] [--steps 20]``; prints
seconds per step and the ratio to FFG. Target (issue 11): ratio <= 3.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pyro
import pyro.optim
import torch

from ppl_genmodels.models import neals_funnel
from ppl_genmodels.models import vae_flows as vae
from ppl_genmodels.models.flows import auto_guide
from ppl_genmodels.models.vae_mnist import packaged_mnist_images

FAMILIES = ("ffg", "iaf", "spline")


def vae_stepper(family: str, x: torch.Tensor):
    model, encoder = vae.build(784, latent_dim=50, guide=family)
    params = list(model.parameters()) + list(encoder.parameters())
    optimizer = torch.optim.Adam(params, lr=1e-3)
    elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)

    def step():
        optimizer.zero_grad()
        elbo.loss_and_grads(model.model, encoder, x)
        optimizer.step()
    return step


def funnel_stepper(family: str):
    guide = auto_guide(neals_funnel.model, family)
    svi = pyro.infer.SVI(neals_funnel.model, guide, pyro.optim.Adam({"lr": 0.01}),
                         pyro.infer.Trace_ELBO(num_particles=8, vectorize_particles=True,
                                               max_plate_nesting=0))
    return lambda: svi.step()


def time_side_by_side(steppers: dict, rounds: int, steps: int) -> dict:
    """Median seconds per step of each stepper, timed round-robin; each stepper keeps its own
    Pyro param store (``ParamStoreDict.scope``), so same-named parameters never collide."""
    store = pyro.get_param_store()
    states = {name: {"params": {}, "constraints": {}} for name in steppers}
    for name, step in steppers.items():  # warm-up (autoguide setup, allocator)
        with store.scope(states[name]):
            for _ in range(3):
                step()
    times = {name: [] for name in steppers}
    for _ in range(rounds):
        for name, step in steppers.items():
            with store.scope(states[name]):
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    x = packaged_mnist_images(100)[0]
    settings = {"vae (L=50, batch 100, train step)": {f: vae_stepper(f, x) for f in FAMILIES},
                "funnel (D=10, SVI step, 8 particles)": {f: funnel_stepper(f) for f in FAMILIES}}
    for setting, steppers in settings.items():
        seconds = time_side_by_side(steppers, args.rounds, args.steps)
        print(f"\n{setting}: time per step (median of {args.rounds} rounds x {args.steps} steps)")
        for name, s in seconds.items():
            print(f"  {name:7s} {s * 1e3:8.2f} ms   ratio to ffg {s / seconds['ffg']:.2f}")


if __name__ == "__main__":
    main()
