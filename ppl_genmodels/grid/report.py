"""The grid report: verdict counts per model x engine across seeds, error vs budget, SBC
pooled across batches, training runs; ``report.md`` with CSV tables and one PNG figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_text
from .store import load_results, task_dir
from .spec import GridSpec

__all__ = ["write_grid_report", "compare_table", "verdict_counts", "sbc_tables"]

VERDICTS = ("trust", "caution", "do not trust")


def _budget_label(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(settings["engine_settings"].items())) or "default"


def compare_table(results: list[dict]) -> pd.DataFrame:
    """One row per finished compare task: model, engine, budget (index and label), seed,
    verdict, ``grad_evals``, ``wall_time_s`` (s), ``mean_std_mean_error`` (mean over
    parameters of |mean - baseline mean| / baseline sd), ``mean_sd_ratio``, ``k_hat``."""
    rows = []
    for r in results:
        task = r["task"]
        if task["kind"] != "compare":
            continue
        s, summ = task["settings"], r["summary"]
        rows.append({"model": s["model"], "engine": s["engine"], "budget": s["budget"],
                     "budget_label": _budget_label(s), "seed": task["seed"],
                     "verdict": summ.get("verdict"),
                     **{k: summ.get(k) for k in ("grad_evals", "wall_time_s",
                                                 "mean_std_mean_error", "mean_sd_ratio", "k_hat")}})
    columns = ["model", "engine", "budget", "budget_label", "seed", "verdict", "grad_evals",
               "wall_time_s", "mean_std_mean_error", "mean_sd_ratio", "k_hat"]
    table = pd.DataFrame(rows, columns=columns)
    for col in columns[6:]:
        table[col] = pd.to_numeric(table[col], errors="coerce")
    return table


def verdict_counts(table: pd.DataFrame) -> pd.DataFrame:
    """How often each verdict comes out, per model x engine x budget, across seeds; with
    the mean error and gradient evaluations over seeds."""
    keys = ["model", "engine", "budget", "budget_label"]
    counts = pd.crosstab([table[k] for k in keys], table["verdict"])
    counts = counts.reindex(columns=list(VERDICTS), fill_value=0)
    counts["seeds"] = counts.sum(axis=1)
    means = table.groupby(keys)[["grad_evals", "mean_std_mean_error"]].mean()
    return counts.join(means).reset_index().drop(columns="budget")


def _error_figure(table: pd.DataFrame, path: Path) -> Path | None:
    from matplotlib.ticker import NullFormatter

    from ..plotting import pyplot, save_figure

    table = table.dropna(subset=["mean_std_mean_error", "grad_evals"])
    if table.empty:
        return None
    plt = pyplot()
    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        sub = table[table["model"] == model]
        for engine, rows in sub.groupby("engine", sort=False):
            mean = rows.groupby("budget")[["grad_evals", "mean_std_mean_error"]].mean().sort_values("grad_evals")
            line, = ax.plot(mean["grad_evals"], mean["mean_std_mean_error"], "-o", label=engine)
            ax.scatter(rows["grad_evals"], rows["mean_std_mean_error"], s=10, alpha=0.5,
                       color=line.get_color())
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # minor log ticks unlabelled: they overlap
            axis.set_minor_formatter(NullFormatter())
        ax.set_title(model)
        ax.set_xlabel("gradient evaluations")
        ax.set_ylabel("mean |mean error| / posterior sd")
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def sbc_tables(out: str | Path, results: list[dict]) -> list[tuple[str, pd.DataFrame, pd.DataFrame]]:
    """Per SBC entry (model, engine, settings): a per-batch table (seed, simulations,
    passed, min ECDF p) and the tests of the ranks pooled over all its batches
    (:meth:`ppl_genmodels.sbc.SBCResult.tests`)."""
    from dataclasses import replace

    from ..sbc.result import SBCResult
    from .spec import Task

    groups: dict[str, list[dict]] = {}
    for r in results:
        if r["task"]["kind"] == "sbc":
            key = repr(sorted(r["task"]["settings"].items()))
            groups.setdefault(key, []).append(r)
    out_tables = []
    for rs in groups.values():
        batches, parts = [], []
        for r in sorted(rs, key=lambda r: r["task"]["seed"]):
            task = Task(**{k: v for k, v in r["task"].items() if k != "id"})
            part = SBCResult.load(task_dir(out, task) / "sbc.nc")
            parts.append(part)
            batches.append({"batch seed": task.seed, "simulations": part.num_simulations,
                            "passed": r["summary"]["passed"],
                            "min_ecdf_p": r["summary"]["min_ecdf_p"]})
        first = parts[0]
        pooled = replace(first, ranks=np.concatenate([p.ranks for p in parts]),
                         true_values=np.concatenate([p.true_values for p in parts]),
                         sim_stats=pd.concat([p.sim_stats for p in parts], ignore_index=True))
        s = rs[0]["task"]["settings"]
        title = f"{s['model']} / {s['engine']} ({len(parts)} batches, {pooled.num_simulations} simulations)"
        out_tables.append((title, pd.DataFrame(batches), pooled.tests()))
    return out_tables


def _train_table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        task = r["task"]
        if task["kind"] == "train":
            s = task["settings"]
            rows.append({"model": s["model"], "data": s["data"], "method": s["method"],
                         "seed": task["seed"], **r["summary"], "task_wall_s": r["wall_s"]})
    return pd.DataFrame(rows)


def _md(table: pd.DataFrame, index: bool = False) -> str:
    return table.to_markdown(index=index, floatfmt=".3g")


def write_grid_report(spec: GridSpec, out: str | Path) -> Path:
    """Write ``report.md`` (and ``compare.csv``, ``verdict_counts.csv``,
    ``error_vs_budget.png``) from the finished tasks under ``out``.

    :returns: the path of ``report.md``.
    """
    out = Path(out)
    results = load_results(out, spec.tasks)
    lines = [f"# {spec.title}", "",
             f"Spec: `{spec.source}`. {len(results)} of {len(spec.tasks)} task(s) finished; "
             f"task wall time {sum(r['wall_s'] for r in results):.1f} s in all.", ""]
    table = compare_table(results)
    if not table.empty:
        write_text(out / "compare.csv", table.to_csv(index=False))
        counts = verdict_counts(table)
        write_text(out / "verdict_counts.csv", counts.to_csv(index=False))
        lines += ["## Verdicts per model x engine across seeds", "",
                  "How often each verdict comes out over the seeds, per budget; mean error "
                  "(mean over parameters of |mean - reference mean| / reference sd) and "
                  "gradient evaluations averaged over seeds.", "", _md(counts), ""]
        figure = _error_figure(table, out / "error_vs_budget.png")
        if figure:
            lines += ["## Error vs budget", "", f"![error vs budget]({figure.name})", ""]
    sbc = sbc_tables(out, results)
    if sbc:
        lines += ["## SBC across batches", ""]
        for title, batches, pooled in sbc:
            lines += [f"### {title}", "", _md(batches), "", "Ranks pooled over the batches:", "",
                      _md(pooled, index=True), ""]
    train = _train_table(results)
    if not train.empty:
        lines += ["## Training runs", "", "Last epoch: loss and test ELBO in nats per image.",
                  "", _md(train), ""]
    missing = [t.name for t in spec.tasks if t.id not in {r["task"]["id"] for r in results}]
    if missing:
        lines += ["## Unfinished tasks", ""] + [f"- {m}" for m in missing] + [""]
    path = out / "report.md"
    write_text(path, "\n".join(lines))
    return path
