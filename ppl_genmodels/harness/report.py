"""Write a comparison to a folder: netCDF per engine, CSV tables, PNG figures, ``report.md``
and a self-contained ``report.html`` (figures embedded as base64 data URIs, inline CSS, no
scripts), so the report opens in a browser from a single file with no server.

The report is rendered once, as Markdown, and converted to HTML with ``mistune``, so both
hold the same content: the verdict per engine first, then the warnings, the tables, the
figures, any caller-supplied sections, the run configurations and the reference.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from .. import diagnostics
from ..io import atomic_path, save_netcdf, write_text
from ..plotting import save_figure
from . import plots

log = logging.getLogger(__name__)

__all__ = ["write_report"]

VERDICT_COLOURS = {"trust": "#1a7f37", "caution": "#b35900", "do not trust": "#c62828"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; max-width: 72rem;
       margin: 2rem auto; padding: 0 1rem; color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2rem; }
code { background: #f3f4f6; padding: 0 .25rem; border-radius: 3px; font-size: 90%; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 85%; margin: .5rem 0; }
th, td { border: 1px solid #d0d7de; padding: .2rem .5rem; text-align: right; }
th { background: #f6f8fa; }
td.text, th.text, td:first-child, th:first-child { text-align: left; }
.badge { display: inline-block; min-width: 7.5rem; text-align: center; color: #fff;
         font-weight: 600; border-radius: 1rem; padding: .1rem .7rem; }
ul.warnings li { margin: .2rem 0; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { font-style: italic; color: #57606a; }
"""


# A report is a list of sections (title, blocks); a block is one of
# ("md", text) | ("table", DataFrame) | ("verdicts", engine table) |
# ("warnings", {engine: [message]}) | ("figure", png path, caption).
Block = tuple
Section = tuple[str, list[Block]]


def _figures(comparison, directory: Path) -> list[tuple[str, str]]:
    """Draw and save every figure; :returns: (file name, caption) pairs."""
    made = []

    def save(fig, fname, caption):
        save_figure(fig, directory / fname)
        made.append((fname, caption))

    save(plots.forest(comparison), "forest.png",
         "Forest plot: every engine against the reference (black: reference mean ± sd, and "
         "its 94% interval when it has draws)")
    save(plots.densities(comparison), "densities.png", "Marginal densities, engines overlaid")
    if "nuts" in comparison.idata:
        for name in comparison.idata:
            if name != "nuts":
                save(plots.pair_overlay(comparison, name), f"pair_{name}_vs_nuts.png",
                     f"{name} draws over NUTS draws")
        save(plots.nuts_trace(comparison.idata["nuts"]), "nuts_trace_rank.png",
             "NUTS trace: per-chain densities and rank bars")
        if comparison.idata["nuts"].posterior.sizes["chain"] > 1:
            save(plots.rank_plot(comparison.idata["nuts"]), "nuts_rank.png",
                 "NUTS rank plots per chain (bars flat at the dashed line: chains agree)")
    with_weights = any(_has(d, "log_weight") for d in comparison.idata.values())
    if with_weights and comparison.baseline is not None:
        save(plots.psis_means(comparison), "psis_means.png",
             f"VI means before and after PSIS correction, in {comparison.baseline} sds")
    vi = {n: d for n, d in comparison.idata.items()
          if "sample_stats" in d.groups() and "step" in d.sample_stats.dims}
    if vi:
        save(plots.loss_curves(vi), "loss.png", "SVI/RWS loss traces")
    return made


def _has(idata, stat: str) -> bool:
    return "sample_stats" in idata.groups() and stat in idata.sample_stats


def _check_extra_sections(extra_sections) -> list[tuple[str, str, list[Path]]]:
    checked = []
    for i, section in enumerate(extra_sections or ()):
        if not isinstance(section, (tuple, list)) or len(section) != 3:
            raise ValueError(f"extra_sections[{i}] must be (title, markdown_text, png_paths), "
                             f"got {section!r}")
        title, text, paths = section
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"extra_sections[{i}]: the title must be a non-empty string")
        if not isinstance(text, str):
            raise ValueError(f"extra_sections[{i}] ({title!r}): the text must be a string")
        if isinstance(paths, (str, Path)):
            raise ValueError(f"extra_sections[{i}] ({title!r}): give a list of PNG paths, "
                             "not a single path")
        paths = [Path(p) for p in paths]
        for path in paths:
            if path.suffix.lower() != ".png" or not path.is_file():
                raise ValueError(f"extra_sections[{i}] ({title!r}): {path} is not an existing "
                                 ".png file")
        checked.append((title, text, paths))
    return checked


def _display(table: pd.DataFrame) -> pd.DataFrame:
    """The table as shown in a report: index as columns, ``gym_passed`` as pass/fail."""
    table = table.reset_index()
    if "gym_passed" in table:
        table["gym_passed"] = table["gym_passed"].map(
            lambda v: "" if pd.isna(v) else "pass" if v else "fail")
    return table


def _engines_display(engines: pd.DataFrame) -> pd.DataFrame:
    """Engines as columns, diagnostics as rows (readable with ~20 diagnostics and few
    engines); rows that are NaN for every engine are dropped."""
    numbers = engines.drop(columns=["verdict", "because"]).select_dtypes(["number", "bool"]).astype(float)
    numbers = numbers.loc[:, numbers.notna().any()]
    out = numbers.T
    out.index.name = "diagnostic"
    out.columns.name = None
    return out.reset_index()


def _failed_note(comparison) -> str:
    failures = getattr(comparison, "failures", {})
    if not failures:
        return ""
    return (" Failed, no result (see Warnings; rerun with --resume to retry only them): "
            + ", ".join(failures) + ".")


def _sections(comparison, params, engines, made, extra, directory: Path) -> list[Section]:
    warnings = comparison.warnings
    ref = comparison.reference
    baseline = {
        "reference": f"the reference posterior ({ref.source})" if ref else "",
        "nuts": "NUTS (no reference given)",
        None: "nothing (no reference and no NUTS run)",
    }[comparison.baseline]
    sections: list[Section] = [
        ("Verdicts", [
            ("md", "*trust* / *caution* / *do not trust* per engine, and the diagnostics that "
                   "decided (MCMC: R-hat, ESS, divergences, E-BFMI, tree depth; VI: PSIS "
                   "k-hat)."),
            ("verdicts", engines),
        ]),
        ("Warnings", [("warnings", warnings)]),
        ("Engines", [
            ("md", f"Engines: {', '.join(comparison.idata)}.{_failed_note(comparison)} "
                   f"Distances are measured to "
                   f"{baseline}. Wall time in seconds; `elbo`, `log_evidence` "
                   "(importance-weighted bound over the stored draws) and their standard "
                   "errors in nats; `k_hat` is the PSIS Pareto shape of the guide's importance "
                   "weights (Yao et al. 2018: < 0.5 good, 0.5-0.7 usable, > 0.7 the guide is "
                   "far from the posterior). MCMC: `max_r_hat` (rank-normalized), "
                   "`min_ess_bulk`/`min_ess_tail` (draws), `min_e_bfmi` (over chains), "
                   "`tree_depth_saturation` (fraction of transitions at the maximum depth). "
                   "`std_mean_error` = |mean - baseline mean| / baseline sd, averaged (mean_) "
                   "and worst (max_) over parameters; `mean_psis_std_mean_error` the same for "
                   "the PSIS-corrected VI means; `gym_pass_fraction` the share of parameters "
                   "passing Inference Gym's test. Rows that apply to no engine are left out "
                   "(all are in `engines.csv`)."),
            ("table", _engines_display(engines)),
        ]),
        ("Parameters", [
            ("md", "`az.summary` columns (R-hat is undefined for the single-chain VI draws) and "
                   "the distance of each marginal to the baseline (`wasserstein`: "
                   "1-Wasserstein, model units). VI engines: `psis_mean`, `psis_sd` are the "
                   "self-normalized Pareto-smoothed importance-sampling estimates (Vehtari et "
                   "al. 2024; reliable when k-hat < 0.7) and `psis_std_mean_error` their "
                   "distance to the baseline. `gym_passed`: Inference Gym's test |mean - ref "
                   "mean| < 5 sqrt(mcse² + ref mcse²)."),
            ("table", _display(params)),
        ]),
    ]
    if made:
        sections.append(("Figures", [("figure", directory / f, c) for f, c in made]))
    for title, text, paths in extra:
        sections.append((title, [("md", text)] + [("figure", p, p.stem) for p in paths]))
    configs = "\n".join(
        f"- **{name}**: `{diagnostics.run_attrs(idata).get('config')}` "
        f"(seed {diagnostics.run_attrs(idata).get('seed')})"
        for name, idata in comparison.idata.items()
    )
    sections.append(("Runs", [("md", configs)]))
    if ref is not None and ref.citation:
        sections.append(("Reference", [("md", f"{ref.source}. {ref.citation}")]))
    sections.append(("Files", [("md", "One ArviZ InferenceData per engine (`<engine>.nc`, open "
                                      "with `arviz.from_netcdf`), `summary.csv` (parameters), "
                                      "`engines.csv` (engines), `report.md` and `report.html` "
                                      "(this report; the HTML file embeds its figures).")]))
    return sections


def _fmt(table: pd.DataFrame) -> str:
    # None (not NaN) so that tabulate prints missing figures as blanks
    table = table.astype(object).where(table.notna(), None)
    return table.to_markdown(index=False, floatfmt=".4g", missingval="")


def _render_markdown(title: str, sections: list[Section], directory: Path) -> str:
    lines = [f"# {title}", ""]
    for heading, blocks in sections:
        lines += [f"## {heading}", ""]
        for block in blocks:
            kind = block[0]
            if kind == "md":
                lines += [block[1], ""]
            elif kind == "table":
                lines += [_fmt(block[1]), ""]
            elif kind == "verdicts":
                lines += [f"- **{name}: {row.verdict}** — {row.because}"
                          for name, row in block[1].iterrows()] + [""]
            elif kind == "warnings":
                for name, messages in block[1].items():
                    lines += [f"**{name}**: none" if not messages else f"**{name}**:", ""]
                    lines += [f"- {m}" for m in messages] + ([""] if messages else [])
            elif kind == "figure":
                rel = Path(os.path.relpath(block[1], directory)).as_posix()
                lines += [f"### {block[2]}", "", f"![{block[2]}]({rel})", ""]
    return "\n".join(lines)


def _html_renderer(directory: Path):
    """A ``mistune.HTMLRenderer`` for a report's Markdown: images become embedded
    ``<figure>`` elements (PNG read from ``directory``, as a data URI), pipe tables get a
    scrolling wrapper and plain cells (CSS aligns them), and the verdict list
    (``- **engine: verdict** — because``) becomes a table with coloured badges."""
    import mistune

    class Renderer(mistune.HTMLRenderer):
        def image(self, text, url, title=None):
            caption = re.sub(r"<[^>]+>", "", text)  # alt text, already escaped by mistune
            return (f'<figure><img alt="{caption}" src="{_png_data_uri(directory / url)}">'
                    f"<figcaption>{caption}</figcaption></figure>")

        def paragraph(self, text):
            return text + "\n" if text.startswith("<figure>") else super().paragraph(text)

        def table(self, text):
            return f'<div class="scroll"><table>\n{text}</table></div>\n'

        def table_cell(self, text, align=None, head=False):
            tag = "th" if head else "td"
            return f"<{tag}>{text}</{tag}>\n"

        def list_item(self, text):
            match = _VERDICT_ITEM.match(text.strip())
            if match is None:
                return super().list_item(text)
            name, label, because = match.groups()
            colour = VERDICT_COLOURS.get(label, "#57606a")
            return (f'<tr><td class="text"><b>{name}</b></td><td class="text">'
                    f'<span class="badge" style="background:{colour}">{label}</span></td>'
                    f'<td class="text">{because}</td></tr>\n')

        def list(self, text, ordered, **attrs):
            if not text.startswith("<tr>"):
                return super().list(text, ordered, **attrs)
            return ('<table class="verdicts"><thead><tr><th class="text">engine</th>'
                    '<th class="text">verdict</th><th class="text">because</th></tr>'
                    f"</thead><tbody>\n{text}</tbody></table>\n")

    return Renderer(escape=True)  # raw HTML in the text is shown, not interpreted


_VERDICT_ITEM = re.compile(r"^<strong>(.+?): (" + "|".join(VERDICT_COLOURS) + r")</strong> — (.*)$",
                           re.S)


def _markdown_to_html(text: str, directory: Path) -> str:
    """The report's Markdown as a self-contained HTML page (``mistune`` with its table
    plugin); the first line (``# title``) also gives the page title."""
    import mistune

    title = text.splitlines()[0].lstrip("# ").strip()
    body = mistune.create_markdown(renderer=_html_renderer(directory), plugins=["table"])(text)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + body + "\n</body>\n</html>\n")


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def write_report(comparison, directory: str | Path, figures: bool = True,
                 extra_sections: Iterable[tuple[str, str, Sequence[str | Path]]] = ()) -> Path:
    """Write a comparison's files into ``directory`` (each replaced atomically).

    Files: ``<engine>.nc`` per engine, ``summary.csv`` (``Comparison.table``),
    ``engines.csv`` (``Comparison.engine_table``), the PNG figures, ``report.md`` (figures
    linked by relative path) and ``report.html`` (the same content in one self-contained
    file: figures as ``data:image/png;base64`` URIs, inline CSS, coloured verdict badges, no
    external resources). Both reports open with the verdict per engine and the diagnostics
    that decided it, then the warnings (``Comparison.warnings``), tables and figures.

    :param comparison: a :class:`ppl_genmodels.harness.Comparison`.
    :param directory: output folder (created if missing).
    :param figures: draw the PNG figures (the slow part).
    :param extra_sections: ``(title, markdown_text, png_paths)`` triples appended after the
        figures, e.g. ``[("SBC", "Rank ECDFs of ...", ["out/sbc_ecdf.png"])]``. The text is
        Markdown (pipe tables allowed; raw HTML is escaped in ``report.html``); each PNG is
        linked from ``report.md`` by its path relative to ``directory`` (keep it inside the
        folder for a portable report) and embedded in ``report.html``. Captions are the
        file names' stems.
    :returns: the path of ``report.md``.
    :raises ValueError: a malformed extra section or a PNG path that is not an existing
        ``.png`` file (checked before anything is written).
    """
    directory = Path(directory)
    extra = _check_extra_sections(extra_sections)
    directory.mkdir(parents=True, exist_ok=True)
    for name, idata in comparison.idata.items():
        save_netcdf(idata, directory / f"{name}.nc")
    params, engines = comparison.table, comparison.engine_table
    with atomic_path(directory / "summary.csv") as tmp:
        params.to_csv(tmp)
    with atomic_path(directory / "engines.csv") as tmp:
        engines.to_csv(tmp)
    made = _figures(comparison, directory) if figures else []
    sections = _sections(comparison, params, engines, made, extra, directory)
    title = f"Posterior comparison: {comparison.posterior_name}"
    report = directory / "report.md"
    text = _render_markdown(title, sections, directory)
    write_text(report, text)
    write_text(directory / "report.html", _markdown_to_html(text, directory))
    return report
