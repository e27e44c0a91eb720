"""Trainer overhead: images/s of ``ppl_genmodels.train`` against a hand-written PyTorch loop of
the same network, loss and optimiser, on binarized MNIST, one CPU thread.

Cases: ``made`` by mle (the exact -log p(x), one masked hidden layer of 500), ``vae`` by svi
(Pyro's Trace_ELBO; the hand loop writes the reparameterized one-sample ELBO by hand) and
``vae`` by iwae K=5 (Pyro's RenyiELBO(alpha=0); the hand loop the IWAE bound). Each side
trains for ``--seconds`` of wall clock; the runs alternate (trainer, hand, trainer, hand, ...)
``--repeats`` times so that a busy machine slows both alike. The issue's target: the trainer
stays at or above 0.8x the hand loop.

    python bench/trainer_throughput.py --seconds 20 --repeats 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def trainer_rate(case: str, args) -> float:
    import ppl_genmodels as pg

    model, method = case.split("-")
    kwargs = {"hidden": [500]} if model == "made" else {}
    run = pg.train(model, "binarized_mnist", data_dir=args.data_dir, method=method, epochs=1000,
                   batch_size=args.batch_size, num_train=args.num_train, seed=0,
                   model_kwargs=kwargs, max_time_s=args.seconds, progress=False)
    seen = sum(h["images_per_s"] * h["time_s"] for h in run.history)
    return seen / sum(h["time_s"] for h in run.history)


def hand_rate(case: str, args) -> float:
    import torch
    from torch.nn import functional as F

    from ppl_genmodels.data import load_image_dataset
    from ppl_genmodels.models import autoregressive, vae

    model, method = case.split("-")
    x_train = torch.as_tensor(load_image_dataset("binarized_mnist", args.data_dir)
                              .x_train[: args.num_train])
    torch.manual_seed(0)
    if model == "made":
        gen, guide = autoregressive.build(784, "made", hidden=[500])
    else:
        gen, guide = vae.build(784)
    opt = torch.optim.Adam(list(gen.parameters()) + list(guide.parameters()), lr=1e-3)
    k = 5 if method == "iwae" else 1

    def loss_fn(x):
        if model == "made":
            return F.binary_cross_entropy_with_logits(gen.logits(x), x, reduction="none").sum(-1).mean()
        loc, scale = guide.params(x)
        z = loc + scale * torch.randn((k,) + loc.shape)
        log_px = -F.binary_cross_entropy_with_logits(gen.decoder(z), x.expand(k, -1, -1),
                                                     reduction="none").sum(-1)
        log_pz = -0.5 * (z ** 2).sum(-1) - 0.5 * z.shape[-1] * math.log(2 * math.pi)
        log_q = (-0.5 * ((z - loc) / scale) ** 2 - scale.log()).sum(-1) \
            - 0.5 * z.shape[-1] * math.log(2 * math.pi)
        log_w = log_px + log_pz - log_q
        return -(torch.logsumexp(log_w, 0) - math.log(k)).mean()

    gen_data = torch.Generator().manual_seed(0)
    seen, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        for idx in torch.randperm(len(x_train), generator=gen_data).split(args.batch_size):
            xb = x_train[idx].float()
            opt.zero_grad()
            loss_fn(xb).backward()
            opt.step()
            seen += len(idx)
            if time.perf_counter() - start >= args.seconds:
                break
    return seen / (time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--cases", default="made-mle,vae-svi,vae-iwae")
    p.add_argument("--seconds", type=float, default=20.0, help="training seconds per run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--num-train", type=int, default=10000)
    args = p.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(1)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    print("| case | trainer images/s | hand loop images/s | ratio (median of runs) | runs |")
    print("|---|---|---|---|---|")
    worst = math.inf
    for case in args.cases.split(","):
        ratios, tr_rates, hand_rates = [], [], []
        for _ in range(args.repeats):
            tr_rates.append(trainer_rate(case, args))
            hand_rates.append(hand_rate(case, args))
            ratios.append(tr_rates[-1] / hand_rates[-1])
        ratio = statistics.median(ratios)
        worst = min(worst, ratio)
        print(f"| {case} | {statistics.median(tr_rates):.0f} | {statistics.median(hand_rates):.0f} "
              f"| {ratio:.2f} | {', '.join(f'{r:.2f}' for r in ratios)} |", flush=True)
    print(f"\nworst median ratio {worst:.2f} ({'meets' if worst >= 0.8 else 'BELOW'} the 0.8 target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
