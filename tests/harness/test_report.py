"""report.md and the self-contained report.html: verdicts first, warnings, PSIS columns,
Inference Gym checks, embedded figures, caller-supplied sections."""

import base64
import io
import re

import numpy as np
import pytest

from harness_data import regression_reference
from ppl_genmodels._arviz import psislw
from ppl_genmodels.harness import Comparison, plots
from ppl_genmodels.harness.report import write_report
from ppl_genmodels.plotting import pyplot


def _with_reference(comparison, **extra_idata):
    return Comparison(comparison.posterior_name, {**comparison.idata, **extra_idata},
                      regression_reference())


def _stuck_copy(idata):
    """NUTS's result with chain 1 moved 3 sd away: chains that disagree."""
    stuck = idata.copy()
    for var in stuck.posterior.data_vars:
        values = stuck.posterior[var].values.copy()
        values[1] += 3 * values.std()
        stuck.posterior[var] = (stuck.posterior[var].dims, values)
    return stuck


def test_html_report_is_self_contained_with_verdicts_first(tmp_path, regression_comparison):
    comparison = _with_reference(regression_comparison)
    extra_png = tmp_path / "extra_figure.png"
    extra_png.write_bytes(_tiny_png())
    extra = [("Extra checks", "A caller's section with `code` and a table:\n\n| a | b |\n"
                              "|---|---|\n| 1 | 2 |\n", [extra_png])]
    md_path = write_report(comparison, tmp_path / "out", extra_sections=extra)
    out = tmp_path / "out"
    md, page = md_path.read_text(), (out / "report.html").read_text()
    engines = comparison.engine_table

    # report.md: the verdict per engine comes first, then warnings, then the tables
    headings = re.findall(r"^## (.+)$", md, flags=re.M)
    assert headings[:4] == ["Verdicts", "Warnings", "Engines", "Parameters"]
    assert md.index("## Verdicts") < md.index("## Warnings") < md.index("## Engines")
    for name, row in engines.iterrows():
        line = f"- **{name}: {row.verdict}** — {row.because}"
        assert line in md and md.index(line) < md.index("## Warnings")
        # report.html: a coloured badge with the same label, next to the same reason
        badge = re.search(rf"<b>{name}</b></td><td[^>]*><span class=\"badge\" style=\"background:"
                          rf"#[0-9a-f]{{6}}\">([a-z ]+)</span></td><td[^>]*>([^<]*)</td>", page)
        assert badge and badge.group(1) == row.verdict
        assert badge.group(2).replace("&lt;", "<").replace("&gt;", ">") == row.because
    assert page.index("<h2>Verdicts</h2>") < page.index("<h2>Warnings</h2>") < page.index("<h2>Engines</h2>")

    # nothing outside the file: no stylesheet, script or link; every image is a PNG data URI
    assert not re.search(r"<(script|link|iframe)\b", page, flags=re.I)
    assert not re.search(r"\bhref\s*=", page, flags=re.I)
    sources = re.findall(r"\bsrc\s*=\s*\"([^\"]*)\"", page)
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)  # the figures report.md links
    assert len(sources) == len(linked) >= 7 and "../extra_figure.png" in linked
    assert "psis_means.png" in linked and "nuts_rank.png" in linked
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<h2>Extra checks</h2>" in page and "<code>code</code>" in page and "<td>1</td>" in page
    assert "## Extra checks" in md

    # PSIS-corrected moments and Inference Gym's check are in the parameter table
    for column in ("psis_mean", "psis_sd", "psis_std_mean_error", "gym_passed"):
        assert column in md and f"<th>{column}</th>" in page


def _tiny_png():
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(1, 1))
    ax.set_title("extra")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_tables_carry_psis_moments_and_gym_checks(regression_comparison):
    comparison = _with_reference(regression_comparison)
    table, engines = comparison.table, comparison.engine_table
    ref = comparison.reference
    for engine in ("svi", "rws"):
        idata = comparison.idata[engine]
        lw = idata.sample_stats["log_weight"].values.ravel()
        w = np.exp(psislw(lw)[0])
        w_draws = idata.posterior["w"].values.ravel().astype(np.float64)
        row = table.loc[(engine, "w")]
        assert row["psis_mean"] == pytest.approx(np.sum(w * w_draws))
        assert row["psis_std_mean_error"] == pytest.approx(
            abs(row["psis_mean"] - ref.mean["w"]) / ref.sd["w"])
        # 150 steps leave the guide too wide; reweighting its draws recovers the mean
        assert row["psis_std_mean_error"] < row["std_mean_error"]
        assert engines.loc[engine, "mean_psis_std_mean_error"] == pytest.approx(
            table.loc[engine, "psis_std_mean_error"].mean())
    assert table.loc["nuts", "psis_mean"].isna().all()
    # Inference Gym's test, recomputed: |mean - ref| < 5 * mcse (closed-form reference)
    for (engine, param), row in table.iterrows():
        assert row["gym_passed"] == float(abs(row["mean"] - ref.mean[param]) < 5 * row["mcse_mean"])
    assert engines.loc["nuts", "gym_pass_fraction"] == table.loc["nuts", "gym_passed"].mean()
    # without a reference there is no Gym test, and PSIS distances are to NUTS
    plain = regression_comparison.table
    assert "gym_passed" not in plain
    nuts_w = regression_comparison.idata["nuts"].posterior["w"].values.ravel().astype(np.float64)
    assert plain.loc[("svi", "w"), "psis_std_mean_error"] == pytest.approx(
        abs(plain.loc[("svi", "w"), "psis_mean"] - nuts_w.mean()) / nuts_w.std(ddof=1))


def test_report_lists_what_fired_for_a_bad_engine(tmp_path, regression_comparison):
    bad = _stuck_copy(regression_comparison.idata["nuts"])
    comparison = _with_reference(regression_comparison, stuck=bad)
    assert comparison.engine_table.loc["stuck", "verdict"] == "do not trust"
    warnings = comparison.warnings["stuck"]
    assert any(w.startswith("R-hat > 1.01 for 2 parameter(s)") for w in warnings)
    write_report(comparison, tmp_path, figures=False)
    md, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    assert "- **stuck: do not trust** — max R-hat" in md
    warnings_md = md[md.index("## Warnings"):md.index("## Engines")]
    assert all(f"- {w}" in warnings_md for w in warnings) and "**nuts**: none" in warnings_md
    assert re.search(r'<span class="badge" style="background:#c62828">do not trust</span>', page)
    assert "<img" not in page  # figures=False


def test_forest_plot_shows_the_reference_interval(regression_comparison):
    comparison = _with_reference(regression_comparison)
    fig = plots.forest(comparison)
    ref = comparison.reference
    black = [line.get_xdata() for line in fig.axes[0].lines
             if line.get_color() == "k" and len(line.get_xdata()) == 2]
    for p in ("w", "b"):
        lo, hi = np.quantile(ref.draws[p], [0.03, 0.97])
        assert any(np.allclose(x, [lo, hi]) for x in black)  # 94% interval
        assert any(np.allclose(x, [ref.mean[p] - ref.sd[p], ref.mean[p] + ref.sd[p]]) for x in black)
    assert "reference" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    pyplot().close(fig)


def test_bad_extra_sections_are_rejected_before_writing(tmp_path, regression_comparison):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="not an existing .png file"):
        write_report(regression_comparison, out, extra_sections=[("SBC", "text", [tmp_path / "no.png"])])
    with pytest.raises(ValueError, match=r"must be \(title, markdown_text, png_paths\)"):
        write_report(regression_comparison, out, extra_sections=[("SBC", "text")])
    with pytest.raises(ValueError, match="list of PNG paths"):
        write_report(regression_comparison, out, extra_sections=[("SBC", "text", "a.png")])
    assert not out.exists()
