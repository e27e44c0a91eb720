"""The documentation site: its configuration, toctree and docstring mending (cheap), and a
full Sphinx build with warnings as errors and no notebook execution (slow)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def conf():
    return runpy.run_path(str(DOCS / "conf.py"))


def test_conf_imports_and_never_executes_notebooks(conf):
    assert conf["nb_execution_mode"] == "off"
    assert {"myst_nb", "sphinx.ext.autodoc"} <= set(conf["extensions"])
    assert conf["html_theme"] == "furo"


def test_every_tutorial_is_in_the_toctree(conf, tmp_path):
    # the tutorials toctree is a glob over the copies conf.py makes of tutorials/*.ipynb
    index = (DOCS / "index.md").read_text()
    block = index.split(":caption: Tutorials", 1)[1].split("```", 1)[0]
    assert ":glob:" in block and "_tutorials/*" in block
    tutorials = sorted(p.name for p in (ROOT / "tutorials").glob("*.ipynb"))
    assert len(tutorials) >= 3
    stale = tmp_path / "old_removed.ipynb"
    stale.write_text("{}")
    copies = conf["copy_tutorials"](tmp_path)
    assert sorted(p.name for p in copies) == tutorials
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == tutorials  # the stale copy is gone


def test_every_api_page_names_importable_modules_and_every_page_is_linked():
    pages = sorted((DOCS / "api").glob("*.md"))
    index = (DOCS / "api" / "index.md").read_text()
    modules = []
    for page in pages:
        if page.stem != "index":
            assert re.search(rf"^{page.stem}$", index, flags=re.M), page.name
        modules += re.findall(r"\.\. automodule:: ([\w.]+)", page.read_text())
    assert "ppl_genmodels.grid.spec" in modules and "ppl_genmodels.harness.compare" in modules
    # the module's file exists (importing them would import torch and Pyro: seconds)
    def exists(name):
        path = ROOT.joinpath(*name.split("."))
        return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()

    assert [m for m in modules if not exists(m)] == []
    for page in ("getting_started", "concepts", "scaling_out", "api/index"):
        assert page in (DOCS / "index.md").read_text()


@pytest.mark.parametrize("lines, expected", [
    # absolute values are not RST substitutions; literals keep their pipes
    (["mean of |x - y| and ``a|b``"], [r"mean of \|x - y\| and ``a|b``"]),
    # a field's continuation line at the field's indentation is indented
    ([":raises ValueError: before sampling,", "as the constructor."],
     [":raises ValueError: before sampling,", "    as the constructor."]),
    # a field list straight after a paragraph gets a blank line
    (["Samples are detached.", ":returns: the loss"], ["Samples are detached.", "", ":returns: the loss"]),
    # a list straight after a paragraph line gets a blank line; list items stay together
    (["Accepts", "- a file;", "  more", "- a folder"], ["Accepts", "", "- a file;", "  more", "- a folder"]),
    # negative control: valid RST is left as it was
    (["Text.", "", ":param x: a", "    value", "", "Tail."], ["Text.", "", ":param x: a", "    value", "", "Tail."]),
])
def test_docstring_mending(conf, lines, expected):
    assert conf["mend_docstring"](list(lines)) == expected


@pytest.mark.slow
def test_docs_build_without_warnings(tmp_path):
    """The one command in README ("Documentation"), with warnings as errors."""
    pytest.importorskip("myst_nb")
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    tutorial = (out / "_tutorials" / "01_your_own_model.html").read_text()
    assert "<img" in tutorial  # stored outputs rendered, not executed
    api = (out / "api" / "grid.html").read_text()
    assert "run_grid" in api and "GridSpecError" in api
