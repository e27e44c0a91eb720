"""Write a comparison to a folder: netCDF per engine, CSV tables, PNG figures, report.md."""

from __future__ import annotations

import logging
from pathlib import Path

from .. import diagnostics
from ..io import atomic_path, save_netcdf, write_text
from . import plots

log = logging.getLogger(__name__)


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _figures(comparison, directory: Path) -> list[tuple[str, str]]:
    made = [("forest.png", "Forest plot: every engine against the reference"),
            ("densities.png", "Marginal densities, engines overlaid")]
    _save_figure(plots.forest(comparison), directory / "forest.png")
    _save_figure(plots.densities(comparison), directory / "densities.png")
    if "nuts" in comparison.idata:
        for name in comparison.idata:
            if name != "nuts":
                _save_figure(plots.pair_overlay(comparison, name), directory / f"pair_{name}_vs_nuts.png")
                made.append((f"pair_{name}_vs_nuts.png", f"{name} draws over NUTS draws"))
        _save_figure(plots.nuts_trace(comparison.idata["nuts"]), directory / "nuts_trace_rank.png")
        made.append(("nuts_trace_rank.png", "NUTS trace: per-chain densities and rank bars"))
    vi = {n: d for n, d in comparison.idata.items() if "step" in d.sample_stats.dims}
    if vi:
        _save_figure(plots.loss_curves(vi), directory / "loss.png")
        made.append(("loss.png", "SVI/RWS loss traces"))
    return made


def _fmt(table):
    return table.reset_index().to_markdown(index=False, floatfmt=".4g")


def write_report(comparison, directory: Path, figures: bool = True) -> Path:
    """Write everything; returns the path of ``report.md``. Files are replaced atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, idata in comparison.idata.items():
        save_netcdf(idata, directory / f"{name}.nc")
    params, engines = comparison.table, comparison.engine_table
    with atomic_path(directory / "summary.csv") as tmp:
        params.to_csv(tmp)
    with atomic_path(directory / "engines.csv") as tmp:
        engines.to_csv(tmp)
    made = _figures(comparison, directory) if figures else []
    ref = comparison.reference
    baseline = {
        "reference": f"the reference posterior ({ref.source})" if ref else "",
        "nuts": "NUTS (no reference given)",
        None: "nothing (no reference and no NUTS run)",
    }[comparison.baseline]
    configs = "\n".join(
        f"- **{name}**: `{diagnostics.run_attrs(idata).get('config')}` "
        f"(seed {diagnostics.run_attrs(idata).get('seed')})"
        for name, idata in comparison.idata.items()
    )
    lines = [
        f"# Posterior comparison: {comparison.posterior_name}",
        "",
        f"Engines: {', '.join(comparison.idata)}. Distances are measured to {baseline}.",
        "",
        "## Verdicts",
        "",
        *[f"- **{name}: {row.verdict}** — {row.because}" for name, row in engines.iterrows()],
        "",
        "## Engines",
        "",
        "Wall time in seconds; `elbo`, `log_evidence` (importance-weighted bound over the "
        "stored draws) and their standard errors in nats; `k_hat` is the PSIS Pareto shape "
        "of the guide's importance weights (Yao et al. 2018: < 0.5 good, 0.5-0.7 usable, "
        "> 0.7 the guide is far from the posterior). `std_mean_error` = |mean - ref mean| / "
        "ref sd, averaged (mean_) and worst (max_) over parameters.",
        "",
        _fmt(engines),
        "",
        "## Parameters",
        "",
        "`az.summary` columns (R-hat is undefined for the single-chain VI draws) and the "
        "distance of each marginal to the baseline (`wasserstein`: 1-Wasserstein, model units).",
        "",
        _fmt(params),
        "",
    ]
    if made:
        lines += ["## Figures", ""] + [f"### {caption}\n\n![{caption}]({fname})\n" for fname, caption in made]
    lines += ["## Runs", "", configs, ""]
    if ref is not None and ref.citation:
        lines += ["## Reference", "", f"{ref.source}. {ref.citation}", ""]
    lines += ["## Files", "", "One ArviZ InferenceData per engine (`<engine>.nc`, open with "
              "`arviz.from_netcdf`), `summary.csv` (parameters), `engines.csv` (engines).", ""]
    report = directory / "report.md"
    write_text(report, "\n".join(lines))
    return report
