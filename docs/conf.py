"""Sphinx configuration: myst-nb (Markdown pages and the tutorials with their stored
outputs, never executed here), autodoc (the API reference from the docstrings), furo.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (README, "Documentation").
The tutorials are copied from ``../tutorials`` into ``_tutorials/`` on every build, so a
notebook added there is in the site (and its toctree, a glob) without editing this folder.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

project = "ppl_genmodels"
author = "ppl_genmodels developers"
copyright = "2026, ppl_genmodels developers"
release = "0.1.0"

extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = "ppl_genmodels"

# Notebooks are rendered with the outputs stored by scripts/render_tutorials.py.
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = False
# ArviZ, xarray and torch types named in signatures are not cross-referenced here.
nitpicky = False
suppress_warnings = ["myst.header"]

TUTORIALS = sorted((ROOT / "tutorials").glob("*.ipynb"))


def copy_tutorials(target: Path = HERE / "_tutorials") -> list[Path]:
    """Copy ``tutorials/*.ipynb`` into ``target`` (stale copies removed); :returns: the copies."""
    target.mkdir(exist_ok=True)
    for old in target.glob("*.ipynb"):
        if old.name not in {p.name for p in TUTORIALS}:
            old.unlink()
    copies = []
    for path in TUTORIALS:
        copy = target / path.name
        if not copy.exists() or copy.read_bytes() != path.read_bytes():
            shutil.copyfile(path, copy)
        copies.append(copy)
    return copies


copy_tutorials()


# --- docstrings as RST ----------------------------------------------------------------
# The package's docstrings are reStructuredText field lists (:param:, :returns:, :raises:)
# written for reading in the source. Three habits of that style are not valid RST; they are
# mended here, on the docstring text autodoc reads, rather than in every module:
# ``|x - y|`` (absolute values, read by RST as substitutions), a field's continuation line
# at the field's own indentation (after autodoc's dedent), and a list or field list
# directly after a paragraph line with no blank line between.
import re  # noqa: E402

_FIELD = re.compile(r"^:(param|returns?|raises|ivar|cvar|var|type|rtype|yields?)\b")
_LITERAL = re.compile(r"(``.*?``)")


def _escape_pipes(line: str) -> str:
    parts = _LITERAL.split(line)
    return "".join(p if p.startswith("``") else p.replace("|", r"\|") for p in parts)


def mend_docstring(lines: list[str]) -> list[str]:
    """The docstring's lines with the three habits above made valid RST (in place too)."""
    out: list[str] = []
    in_field = False
    for line in lines:
        line = _escape_pipes(line)
        stripped = line.strip()
        indented = line[:1].isspace()
        if _FIELD.match(line):
            if out and out[-1].strip() and not in_field:
                out.append("")
            in_field = True
        elif not stripped:
            in_field = False
        elif in_field and not indented:
            line = "    " + line
        elif stripped.startswith("- ") and out and out[-1].strip() \
                and not out[-1].lstrip().startswith("- ") and not out[-1][:1].isspace():
            out.append("")
        out.append(line)
    lines[:] = out
    return out


def _process_docstring(app, what, name, obj, options, lines):
    mend_docstring(lines)


def setup(app):
    app.connect("autodoc-process-docstring", _process_docstring)
