"""One binarized-MNIST table for every family: latent-variable models and autoregressive ones.

Rows (each trained by ``ppl_genmodels.train`` for a wall-clock budget, into its own run folder
under ``--out``):

    vae 50-d        by svi (K=1) and iwae (K=5)
    sbn 200-200     by rws (K=5), wake_sleep and nvil
    fvbn, made, pixelcnn   by mle (exact likelihood, no latents)

Every row is scored on the **same** test images (all 10,000 by default; ``--num-test N`` a
seeded subset): the exact log-likelihood for the autoregressive models, the
importance-weighted bound with ``--num-samples`` (default 5000: IWAE-5000, Burda et al. 2016)
for the latent-variable models (a stochastic lower bound). Per-image values are saved, so the
table also gives each row's paired difference to the best latent-variable row.

    python bench/mnist_table.py --budget 120 --num-test 1000 --num-samples 1000   # CPU check
    python bench/mnist_table.py --device cuda --batch-size 100 --budget 50          # GPU

Resumable: a row whose ``table_eval.json`` exists is skipped (``--force`` redoes it, or
``--num-test``/``--num-samples``/``--eval-seed`` differing from the stored ones re-evaluates
it); a finished training is only evaluated; an interrupted training resumes for the rest of its
budget (``--budget`` per row, ``--budgets made=300,pixelcnn=600`` per model overrides). A row
that fails or diverges is reported, not dropped. Published figures appear only where a lead
checked them in the paper; every other row says "not verified". Not run in CI.
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

# (row name, model, method, K)
ROWS = [("vae-svi", "vae", "svi", 1), ("vae-iwae", "vae", "iwae", 5),
        ("sbn-rws", "sbn", "rws", 5), ("sbn-wake_sleep", "sbn", "wake_sleep", 1),
        ("sbn-nvil", "sbn", "nvil", 1),
        ("fvbn", "fvbn", "mle", 1), ("made", "made", "mle", 1), ("pixelcnn", "pixelcnn", "mle", 1)]
LABEL = {"vae": "VAE 50-d (2x200 tanh)", "sbn": "SBN 200-200", "fvbn": "FVBN (logistic)",
         "made": "MADE (1x500)", "pixelcnn": "gated PixelCNN"}

# Published figures, only those checked in the paper (here: by the lead, bench/mnist_loglik.py).
PUBLISHED = {
    "vae-iwae": "−87.10 (IWAE k=50, fixed binarization; Burda et al. 2016 Table 1 — k=5 on the "
                "fixed binarization not quoted)",
    "vae-svi": "−86.76 is for *dynamic* binarization (Burda et al. 2016, VAE k=1): not comparable",
}
NOT_VERIFIED = "not verified"

TRAIN_DONE = "table_train_done.json"
EVAL = "table_eval.json"
PER_IMAGE = "table_per_image.npy"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _budgets(args) -> dict:
    out = {}
    for item in filter(None, (s.strip() for s in args.budgets.split(","))):
        name, _, value = item.partition("=")
        if name not in {r[0] for r in ROWS} | {r[1] for r in ROWS} or not value:
            raise SystemExit(f"error: --budgets {item!r}: use ROW_OR_MODEL=SECONDS")
        out[name] = float(value)
    return out


def _model_kwargs(args, model: str) -> dict:
    if model == "pixelcnn":
        return {"channels": args.pixelcnn_channels, "layers": args.pixelcnn_layers}
    if model == "made":
        return {"hidden": [args.made_hidden]}
    return {}


def _history(run_dir: Path) -> list[dict]:
    import torch

    ckpt = run_dir / "checkpoint.pt"
    return list(torch.load(ckpt, weights_only=False)["history"]) if ckpt.exists() else []


def train_row(args, row, run_dir: Path, budget: float) -> dict:
    """Train (or resume) one row for the rest of its budget; returns its training summary."""
    import ppl_genmodels as pg
    from ppl_genmodels.io import write_text

    name, model, method, k = row
    done = run_dir / TRAIN_DONE
    if done.exists() and not args.force:
        summary = json.loads(done.read_text())
        if summary.get("budget_s", budget) >= budget:
            return summary
    history = [] if args.force else _history(run_dir)
    remaining = budget - sum(h["time_s"] for h in history)
    if remaining > 0 and not any(not _finite(h["loss"]) for h in history):
        print(f"[{name}] training for {remaining:.0f} s ({'resuming' if history else 'fresh'}, "
              f"{args.device})", flush=True)
        run = pg.train(model, "binarized_mnist", data_dir=args.data_dir, method=method,
                       epochs=args.max_epochs, batch_size=args.batch_size, num_particles=k,
                       lr=args.lr, seed=args.seed, model_kwargs=_model_kwargs(args, model),
                       out=run_dir, resume=bool(history), force=args.force or not history,
                       max_time_s=remaining, progress=not args.no_progress, device=args.device)
        history = run.history
    seconds = sum(h["time_s"] for h in history)
    seen = sum(h["images_per_s"] * h["time_s"] for h in history)
    summary = {"row": name, "model": model, "method": method, "K": k, "budget_s": budget,
               "train_seconds": seconds, "images_seen": seen, "epochs": seen / 50000.0,
               "epochs_completed": sum(1 for h in history if h.get("complete", True)),
               "images_per_s": seen / seconds if seconds else float("nan"),
               "diverged": any(not _finite(h["loss"]) for h in history),
               "device": args.device, "batch_size": args.batch_size, "lr": args.lr,
               "model_kwargs": _model_kwargs(args, model)}
    write_text(done, json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate_row(args, row, run_dir: Path) -> dict:
    """Per-image test log-likelihood (exact or IW bound) on the shared test images; figures."""
    import numpy as np
    import torch

    from ppl_genmodels.data import load_image_dataset
    from ppl_genmodels.io import atomic_path, write_text
    from ppl_genmodels.learning import load_run
    from ppl_genmodels.learning.evaluate import exact_log_likelihood, log_likelihood

    name, model, method, _ = row
    protocol = {"num_test": args.num_test, "num_samples": args.num_samples if method != "mle" else 0,
                "eval_seed": args.eval_seed}
    path = run_dir / EVAL
    if path.exists() and (run_dir / PER_IMAGE).exists() and not args.force:
        stored = json.loads(path.read_text())
        if {k: stored.get(k) for k in protocol} == protocol:
            return stored
    run = load_run(run_dir)
    device = torch.device(args.device)
    run.model.to(device), run.guide.to(device)
    dataset = load_image_dataset("binarized_mnist", args.data_dir)
    x, y = dataset.test_subset(args.num_test or None, seed=args.eval_seed)
    x = torch.as_tensor(x, dtype=torch.float32)
    how = "exact" if method == "mle" else f"IW bound S={args.num_samples}"
    print(f"[{name}] evaluating ({how}) on {len(x)} test images", flush=True)
    torch.manual_seed(args.eval_seed)
    start = time.perf_counter()
    if method == "mle":
        result = exact_log_likelihood(run.model, x, batch_size=args.eval_batch_size,
                                      progress=not args.no_progress)
    else:
        result = log_likelihood(run.model.model, run.guide, x.to(device),
                                num_samples=args.num_samples, batch_size=args.eval_batch_size,
                                progress=not args.no_progress)
    seconds = time.perf_counter() - start
    with atomic_path(run_dir / PER_IMAGE) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, result.per_image)
    out = {**protocol, "row": name, **result.as_dict(), "eval_seconds": seconds,
           "estimator": "exact" if method == "mle" else
           f"importance-weighted bound, guide as proposal, S={args.num_samples}"}
    if not args.no_figures:
        from ppl_genmodels.learning.figures import write_run_figures

        if method != "mle":
            run.model.cpu(), run.guide.cpu()
        out["figures"] = write_run_figures(run, dataset, x, y, run_dir, seed=args.eval_seed)
    write_text(path, json.dumps(out, indent=2) + "\n")
    return out


def _fmt(v, spec=".2f"):
    return format(v, spec).replace("-", "−") if _finite(v) else "nan"


def table(results: list[dict], args) -> str:
    import numpy as np

    ok = [r for r in results if "error" not in r["eval"] and "error" not in r["train"]]
    latent = [r for r in ok if r["train"]["method"] != "mle"]
    best = max(latent, key=lambda r: r["eval"]["log_likelihood"]) if latent else None
    head = ("| family | model | method | K | epochs (complete) | train s | images/s | device "
            "| test log-lik. ± SE (nats) | estimator | − best latent row: mean ± paired SE "
            "(% images higher) | published (source) |")
    lines = [head, "|" + "---|" * 12]
    for r in results:
        tr, ev, row = r["train"], r["eval"], r["row"]
        model, method = row[1], row[2]
        family = "autoregressive" if method == "mle" else "latent variable"
        if "error" in tr or "error" in ev:
            err = (tr.get("error") or ev.get("error"))[:70]
            lines.append(f"| {family} | {LABEL[model]} | {method} | {row[3]} | — | — | — | — | "
                         f"failed: {err} | — | — | — |")
            continue
        ll = f"{_fmt(ev['log_likelihood'])} ± {_fmt(ev['log_likelihood_se'])}"
        if tr.get("diverged"):
            ll += " (DIVERGED)"
        diff = "—"
        if best is not None and r is not best:
            d = r["per_image"] - best["per_image"]
            diff = (f"{_fmt(d.mean(), '+.2f')} ± {_fmt(d.std(ddof=1) / np.sqrt(len(d)))} "
                    f"({100 * (d > 0).mean():.0f} %)")
        elif r is best:
            diff = "(best latent row)"
        est = "exact" if method == "mle" else f"IW S={ev['num_samples']}"
        lines.append(f"| {family} | {LABEL[model]} | {method} | {row[3]} | {tr['epochs']:.2f} "
                     f"({tr['epochs_completed']}) | {tr['train_seconds']:.0f} | "
                     f"{tr['images_per_s']:.0f} | {tr.get('device', 'cpu')} | {ll} | {est} | {diff} | "
                     f"{PUBLISHED.get(row[0], NOT_VERIFIED)} |")
    n = results[0]["eval"].get("num_images", "?") if results else "?"
    lines += ["", f"Binarized MNIST, fixed binarization (Larochelle & Murray 2011), 50000 training "
              f"images; the same {n} test images for every row "
              f"({'all' if not args.num_test else f'seeded subset, seed {args.eval_seed}'}). "
              f"Training: Adam lr {args.lr:g}, batch {args.batch_size}, seed {args.seed}, budget "
              f"{args.budget:.0f} s per row{' (' + args.budgets + ')' if args.budgets else ''}; "
              "'epochs' = images seen / 50000. Latent rows: importance-weighted bound (a lower "
              "bound on log p(x)); autoregressive rows: exact log p(x). SE over images; paired "
              "differences on the same images."]
    return "\n".join(lines)


def _curve(run_dir: Path):
    """(cumulative training seconds, per-epoch test ELBO) from the run's ``history.csv``."""
    import csv

    path = run_dir / "history.csv"
    if not path.exists():
        return [], []
    rows = list(csv.DictReader(path.open()))
    seconds, total = [], 0.0
    for r in rows:
        total += float(r["time_s"])
        seconds.append(total)
    return seconds, [float(r["test_elbo"]) for r in rows]


def figure(results: list[dict], path: Path) -> None:
    """``path``: test log-likelihood (± SE, markers) against training wall time, one colour
    per family, with each row's training curve (the trainer's per-epoch test figure on 1000
    test images: exact log-likelihood for autoregressive rows, a one-sample ELBO -- below the
    IW bound -- for latent rows)."""
    from ppl_genmodels.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    seen = set()
    for r in results:
        tr, ev = r["train"], r["eval"]
        if "error" in tr or "error" in ev or not tr or not ev:
            continue
        auto = tr["method"] == "mle"
        label = "autoregressive (exact)" if auto else "latent variable (IW bound)"
        ax.errorbar(tr["train_seconds"], ev["log_likelihood"], yerr=ev["log_likelihood_se"],
                    fmt="s" if auto else "o", color="C1" if auto else "C0",
                    label=None if label in seen else label)
        seen.add(label)
        t, v = _curve(path.parent / r["row"][0])
        ax.plot(t, v, "-" if auto else ":", color="C1" if auto else "C0", alpha=0.6, lw=1)
        ax.annotate(r["row"][0], (tr["train_seconds"], ev["log_likelihood"]),
                    textcoords="offset points", xytext=(5, 3), fontsize=8)
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("test log-likelihood (nats per image)")
    ax.set_title("binarized MNIST, same test images (lines: per-epoch test exact LL / "
                 "1-sample ELBO)", fontsize=9)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "runs" / "table",
                   help="row folders go here (default bench/runs/table, git-ignored)")
    p.add_argument("--budget", type=float, default=180.0, help="training seconds per row")
    p.add_argument("--budgets", default="", help="overrides, e.g. made=300,pixelcnn=600")
    p.add_argument("--num-test", type=int, default=0, help="test images (0 = all 10000)")
    p.add_argument("--num-samples", type=int, default=5000, help="S of the IW bound (latent rows)")
    p.add_argument("--eval-batch-size", type=int, default=100)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=100, help="training batch size")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-seed", type=int, default=0)
    p.add_argument("--max-epochs", type=int, default=3280)
    p.add_argument("--made-hidden", type=int, default=500)
    p.add_argument("--pixelcnn-channels", type=int, default=16)
    p.add_argument("--pixelcnn-layers", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default="", help=f"comma-separated rows of {[r[0] for r in ROWS]}")
    p.add_argument("--force", action="store_true", help="retrain and re-evaluate")
    p.add_argument("--no-figures", action="store_true",
                   help="skip the rows' samples/completions PNGs and loglik_vs_time.png")
    p.add_argument("--markdown", type=Path, help="also write the table here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    import logging

    import numpy as np
    import torch

    from ppl_genmodels._cli_common import _device_problem

    budgets = _budgets(args)
    problem = _device_problem(args.device)
    if problem:
        print(f"error: --device {args.device}: {problem}", file=sys.stderr)
        return 2
    if not (args.data_dir / "binarized_mnist.npz").exists():
        print(f"error: no binarized_mnist.npz in {args.data_dir} (pass --data-dir)", file=sys.stderr)
        return 2
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rows = [r for r in ROWS if not only or r[0] in only]
    if not rows:
        print(f"error: --only matched none of {[r[0] for r in ROWS]}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    logging.getLogger("pyro").setLevel(logging.WARNING)
    started = time.perf_counter()
    results = []
    for row in rows:
        run_dir = args.out / row[0]
        run_dir.mkdir(parents=True, exist_ok=True)
        budget = budgets.get(row[0], budgets.get(row[1], args.budget))
        tr, ev, per_image = {}, {}, None
        try:
            tr = train_row(args, row, run_dir, budget)
            ev = evaluate_row(args, row, run_dir)
            per_image = np.load(run_dir / PER_IMAGE)
            print(f"[{row[0]}] {tr['epochs']:.2f} epochs, {tr['images_per_s']:.0f} img/s, "
                  f"log-lik {ev['log_likelihood']:.2f} ± {ev['log_likelihood_se']:.2f}", flush=True)
        except Exception as exc:  # report it in the table, go on with the other rows
            traceback.print_exc()
            (tr if not tr else ev)["error"] = f"{type(exc).__name__}: {exc}"
        results.append({"row": row, "train": tr, "eval": ev, "per_image": per_image})
    text = table(results, args)
    print("\n" + text)
    print(f"\ntotal wall time of this invocation: {time.perf_counter() - started:.0f} s")
    if args.markdown:
        from ppl_genmodels.io import write_text

        write_text(args.markdown, text + "\n")
    if not args.no_figures:
        figure(results, args.out / "loglik_vs_time.png")
        print(f"figure: {args.out / 'loglik_vs_time.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
