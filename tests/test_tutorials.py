"""The tutorials run top to bottom (with small budgets)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.ipynb"))


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes(path, monkeypatch, tmp_path):
    monkeypatch.setenv("PPL_GENMODELS_TUTORIAL_QUICK", "1")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # a figure rendered (01: the forest plot; 03: sample grids, reconstructions, gaps)
    assert any("image/png" in o.get("data", {}) for o in outputs)


def _render_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "render_tutorials.py"
    spec = importlib.util.spec_from_file_location("render_tutorials", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_stored_outputs_carry_a_stamp_matching_the_source(path):
    # Notebooks are committed with the outputs scripts/render_tutorials.py produced (quick
    # mode), stamped with the hash of their cells' sources: a notebook edited or added
    # without rendering fails here.
    why = _render_script().stale_reason(path)
    assert why is None, (f"tutorials/{path.name} {why}: run `python scripts/render_tutorials.py "
                         f"tutorials/{path.name}` and commit the notebook with its outputs")


def test_the_stamp_check_catches_an_edit_and_a_notebook_without_outputs(tmp_path):
    # negative controls for the test above, on a copy of the first tutorial
    script = _render_script()
    notebook = nbformat.read(TUTORIALS[0], as_version=4)
    assert script.stale_reason(TUTORIALS[0]) is None
    edited = tmp_path / "edited.ipynb"
    code = next(c for c in notebook.cells if c.cell_type == "code")
    code.source += "\n# an edit"
    nbformat.write(notebook, edited)
    assert "edited after" in script.stale_reason(edited)
    del notebook.metadata[script.STAMP_KEY]
    bare = tmp_path / "bare.ipynb"
    nbformat.write(notebook, bare)
    assert "no render stamp" in script.stale_reason(bare)
