"""Write an SBC result to a folder: netCDF, CSV tables, PNG plots and ``sbc.md``."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_path, write_text
from ..plotting import save_figure
from . import plots
from .run import SBCResult

__all__ = ["write_report"]


def write_report(result: SBCResult, out: str | Path) -> Path:
    """Write ``sbc.nc`` (the result), ``ranks.csv``, ``tests.csv``, ``rank_hist.png``,
    ``ecdf_diff.png`` and ``sbc.md`` (verdict per parameter, the decision rule, sources)
    into ``out``; every file is written atomically.

    :returns: path of ``sbc.md``.
    :raises ValueError: ``result`` is not an :class:`SBCResult`.
    """
    if not isinstance(result, SBCResult):
        raise ValueError(f"write_report needs an SBCResult, not {type(result).__name__}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "sbc.nc")
    tests = result.tests()
    with atomic_path(out / "ranks.csv") as tmp:
        result.to_dataframe().to_csv(tmp)
    with atomic_path(out / "tests.csv") as tmp:
        tests.to_csv(tmp)
    save_figure(plots.rank_histograms(result), out / "rank_hist.png")
    save_figure(plots.ecdf_difference(result), out / "ecdf_diff.png")

    p = len(result.param_names)
    failed = list(tests.index[tests["verdict"] == "fail"])
    verdict = "PASS" if not failed else f"FAIL ({len(failed)} of {p} parameters)"
    under = int(result.sim_stats["under_thinned"].sum())
    lines = [
        f"# SBC: {result.model}, engine {result.engine}",
        "",
        f"**Verdict: {verdict}.** N = {result.num_simulations} simulations, "
        f"L = {result.num_draws} draws per rank, {p} scalar parameters.",
        "",
        "Rule: a parameter fails when the simultaneous ECDF test of rank uniformity "
        f"(Säilynoja et al. 2022) gives p < alpha / P = {result.alpha} / {p} "
        f"= {result.alpha / p:.3g} (Bonferroni); the engine passes when no parameter fails, "
        f"so a calibrated engine fails with probability <= {result.alpha}. The chi-square "
        "test of binned ranks (Talts et al. 2018) is reported, not used for the verdict.",
    ]
    if result.engine.startswith("amortized"):
        lines += ["", "Amortized path: the guide was trained once and evaluated on every "
                  "simulated data set, so this measures the calibration of q(z | x) averaged "
                  "over the prior predictive p(x), not its quality at the observed data."]
    if under:
        lines += ["", f"Warning: {under} simulations kept fewer than L draws after ESS "
                  "thinning; their draws are autocorrelated, which can fake a U shape."]
    table = tests.copy()
    lines += ["", "## Parameters", "", table.to_markdown(floatfmt=".3g"), ""]
    if result.variational:
        flagged = list(tests.index[tests["vsbc_flag"]])
        lines += [
            "## VSBC (Yao et al. 2018, sec. 3)",
            "",
            "p_i = P_q(z < z_i), z_i the simulated (true) value; a symmetric-unbiased "
            "approximation gives p "
            "symmetric about 0.5 (two-sample KS test of p against 1 - p, same Bonferroni "
            "level). Flagged: " + (", ".join(flagged) if flagged else "none") + ".",
            "",
        ]
    lines += [
        "## Figures",
        "",
        "![rank histograms](rank_hist.png)",
        "",
        "![ECDF difference](ecdf_diff.png)",
        "",
        "Sources: Talts et al. (2018) arXiv:1804.06788; Säilynoja, Bürkner & Vehtari (2022) "
        "Stat. Comput. 32:32; Yao, Vehtari, Simpson & Gelman (2018) ICML.",
        "",
    ]
    path = out / "sbc.md"
    write_text(path, "\n".join(lines))
    return path
