"""Benchmark: test log-likelihood of image models on binarized MNIST at a fixed wall-clock budget.

Trains six (model, method) pairs, each for the same wall-clock budget on one CPU thread:

    vae by svi (K=1), iwae (K=5), rws (K=5);  sbn 200-200 by rws (K=5), wake_sleep, nvil

each into its own run folder under ``--out`` (default ``bench/runs/``, git-ignored), then
evaluates every run on the same seeded subset of ``--num-test`` test images with the
importance-weighted bound with ``--num-samples`` samples (IWAE-5000, Burda et al. 2016) and
prints one table beside the published anchors. Not run in CI:

    python bench/mnist_loglik.py --budget 180            # about 6 x 3 min + evaluation
    python bench/mnist_loglik.py --budget 180 --markdown bench/runs/table.md

Resumable: a run whose ``evaluation.json`` exists is skipped (``--force`` redoes it); a run
whose training finished but was not evaluated is only evaluated; an interrupted training run
is resumed for the rest of its budget. A run that diverges (NaN loss or non-finite log
weights) is reported as such in the table, not dropped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (model, method, K): the six runs.
RUNS = [("vae", "svi", 1), ("vae", "iwae", 5), ("vae", "rws", 5),
        ("sbn", "rws", 5), ("sbn", "wake_sleep", 1), ("sbn", "nvil", 1)]

# Published anchors: (figure in nats, binarization, source). Only figures the lead checked.
ANCHORS = {
    ("vae", "svi"): [(-86.76, "dynamic", "Burda et al. 2016, VAE k=1")],
    ("vae", "iwae"): [(-85.54, "dynamic", "Burda et al. 2016, IWAE k=5"),
                      (-84.78, "dynamic", "Burda et al. 2016, IWAE k=50"),
                      (-87.10, "fixed", "Burda et al. 2016, IWAE k=50")],
}
ANCHOR_NOTE = ("Burda et al. (2016): one stochastic layer of 50 latents, 2x200 tanh, 3280 epochs, "
               "IW bound S=5000 on all 10000 test images. SBN anchors (Bornschein & Bengio 2015) "
               "are not quoted here: see bench/RESULTS.md.")

DONE = "bench_train_done.json"
STATUS = "bench_status.json"


def run_name(model: str, method: str, k: int) -> str:
    return f"{model}-{method}-k{k}"


def _finite(v) -> bool:
    return v is not None and isinstance(v, (int, float)) and math.isfinite(v)


def _history(run_dir: Path) -> list[dict]:
    import torch

    ckpt = run_dir / "checkpoint.pt"
    if not ckpt.exists():
        return []
    return list(torch.load(ckpt, weights_only=False)["history"])


def train_one(args, model: str, method: str, k: int, run_dir: Path) -> dict:
    """Train (or resume) one run for the rest of its budget; returns the training summary."""
    import ppl_genmodels as pg

    done = run_dir / DONE
    if done.exists() and not args.force:
        return json.loads(done.read_text())
    history = [] if args.force else _history(run_dir)
    used = sum(h["time_s"] for h in history)
    remaining = args.budget - used
    diverged = any(not _finite(h["loss"]) for h in history)
    if remaining > 0 and not diverged:
        print(f"[{run_name(model, method, k)}] training for {remaining:.0f} s "
              f"({'resuming' if history else 'fresh'})", flush=True)
        run = pg.train(model, "binarized_mnist", data_dir=args.data_dir, method=method,
                       epochs=args.max_epochs, batch_size=args.batch_size, num_particles=k,
                       lr=args.lr, seed=args.seed, out=run_dir, resume=bool(history),
                       force=args.force or not history, max_time_s=remaining,
                       progress=not args.no_progress)
        history = run.history
    seen = sum(h["images_per_s"] * h["time_s"] for h in history)
    seconds = sum(h["time_s"] for h in history)
    summary = {
        "model": model, "method": method, "K": k, "budget_s": args.budget,
        "train_seconds": seconds, "images_seen": seen,
        "epochs_completed": sum(1 for h in history if h.get("complete", True)),
        "epochs": seen / 50000.0, "images_per_s": seen / seconds if seconds else float("nan"),
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
        "final_test_elbo_1sample": history[-1]["test_elbo"] if history else float("nan"),
        "diverged": any(not _finite(h["loss"]) or not _finite(h["test_elbo"]) for h in history),
        "lr": args.lr, "batch_size": args.batch_size, "seed": args.seed,
    }
    done.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate_one(args, run_dir: Path) -> dict:
    from ppl_genmodels.learning.evaluate import evaluate_run

    path = run_dir / "evaluation.json"
    if path.exists() and not args.force:
        return json.loads(path.read_text())
    print(f"[{run_dir.name}] evaluating: IW bound S={args.num_samples} on {args.num_test} "
          "test images", flush=True)
    try:
        return evaluate_run(run_dir, num_samples=args.num_samples, num_test=args.num_test,
                            data_dir=args.data_dir, seed=args.eval_seed,
                            progress=not args.no_progress)
    except ValueError as exc:  # non-finite log weights: the run diverged
        return {"error": str(exc)}


def _fmt(v, spec=".2f"):
    return format(v, spec) if _finite(v) else "nan"


def table(rows: list[dict], args) -> str:
    head = ("| model | method | K | epochs (complete) | images/s | test log-lik. (nats) ± SE "
            "| test ELBO (nats) ± SE | status | published (binarization) |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        tr, ev = r["train"], r["eval"]
        anchors = "; ".join(f"{v:.2f} ({b}; {src})" for v, b, src in
                            ANCHORS.get((tr["model"], tr["method"]), [])) or "—"
        if "error" in ev or "error" in tr:
            status = "failed: " + (ev.get("error") or tr.get("error"))[:60]
            ll = elbo = "—"
        else:
            status = "DIVERGED (NaN loss)" if tr["diverged"] else "ok"
            ll = f"{_fmt(ev['log_likelihood'])} ± {_fmt(ev['log_likelihood_se'])}"
            elbo = f"{_fmt(ev['elbo'])} ± {_fmt(ev['elbo_se'])}"
        model = "sbn 200-200" if tr["model"] == "sbn" else "vae 50-d"
        lines.append(f"| {model} | {tr['method']} | {tr['K']} | {tr['epochs']:.2f} "
                     f"({tr['epochs_completed']}) | {tr['images_per_s']:.0f} | {ll} | {elbo} | "
                     f"{status} | {anchors} |")
    lines += ["", f"Training: {args.budget:.0f} s wall clock per run, 1 torch thread, Adam lr "
              f"{args.lr:g}, batch {args.batch_size}, seed {args.seed}, binarized MNIST (fixed "
              "binarization, 50000 training images). 'epochs' = images seen / 50000 (the "
              "last epoch is cut by the budget; 'complete' counts whole epochs).",
              f"Test: IW bound with S={args.num_samples} (guide as proposal) on the same "
              f"{args.num_test} test images (seeded subset, seed {args.eval_seed}); SE over "
              "images. Test ELBO: the mean of the same S log weights.",
              ANCHOR_NOTE]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data",
                   help="folder with binarized_mnist.npz (default: ../shared/data from the repo root)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "runs", help="run folders go here")
    p.add_argument("--budget", type=float, default=240.0, help="training seconds per run (wall clock)")
    p.add_argument("--num-test", type=int, default=500, help="test images (seeded subset)")
    p.add_argument("--num-samples", type=int, default=5000, help="S of the IW bound")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--eval-seed", type=int, default=0, help="seed of the test subset and samples")
    p.add_argument("--max-epochs", type=int, default=3280, help="cap; the budget stops runs first")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default="", help="comma-separated run names, e.g. vae-svi-k1,sbn-nvil-k1")
    p.add_argument("--force", action="store_true", help="retrain and re-evaluate finished runs")
    p.add_argument("--markdown", type=Path, help="also write the table to this file")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    if not (args.data_dir / "binarized_mnist.npz").exists() and \
            not (args.data_dir / "binarized_mnist_train.amat").exists():
        print(f"error: no binarized_mnist.npz in {args.data_dir} (pass --data-dir)", file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    runs = [r for r in RUNS if not only or run_name(*r) in only]
    if not runs:
        print(f"error: --only matched none of {[run_name(*r) for r in RUNS]}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows = []
    for model, method, k in runs:
        run_dir = args.out / run_name(model, method, k)
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            tr = train_one(args, model, method, k, run_dir)
        except Exception as exc:  # report, keep going with the other runs
            traceback.print_exc()
            tr = {"model": model, "method": method, "K": k, "epochs": float("nan"),
                  "epochs_completed": 0, "images_per_s": float("nan"), "diverged": False,
                  "error": f"{type(exc).__name__}: {exc}"}
        ev = evaluate_one(args, run_dir) if "error" not in tr else {}
        (run_dir / STATUS).write_text(json.dumps({"train": tr, "eval": ev}, indent=2) + "\n")
        if "error" not in ev and "error" not in tr:
            print(f"[{run_dir.name}] {tr['epochs']:.2f} epochs, {tr['images_per_s']:.0f} img/s, "
                  f"log-lik {ev['log_likelihood']:.2f} ± {ev['log_likelihood_se']:.2f}, "
                  f"ELBO {ev['elbo']:.2f}", flush=True)
        rows.append({"train": tr, "eval": ev})
    text = table(rows, args)
    print()
    print(text)
    print(f"\ntotal wall time of this invocation: {time.perf_counter() - started:.0f} s")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
