"""Execute the tutorial notebooks and store them with their outputs and a source stamp.

    python scripts/render_tutorials.py                 # every tutorials/*.ipynb, quick mode
    python scripts/render_tutorials.py --full          # the tutorials' full budgets
    python scripts/render_tutorials.py tutorials/04_inference_gaps.ipynb
    python scripts/render_tutorials.py --check         # only report stale stamps (exit 1)

Each notebook is cleared, executed top to bottom by nbclient in a temporary folder (quick
mode sets ``PPL_GENMODELS_TUTORIAL_QUICK=1``, as ``tests/test_tutorials.py`` does) and
written back atomically with its outputs and ``metadata["ppl_genmodels"]``:
``{"source_sha256": <hash of the cells' types and sources>, "mode": "quick" | "full"}``.
The test suite checks that every notebook's stamp matches its current source, so a
notebook edited (or added) without rerunning this script fails with a message naming it.
Figures are PNGs at the inline backend's dpi (``figure.dpi`` 72 below), re-encoded with a
small palette (:func:`shrink_images`), to keep notebooks small. Needs the ``test`` extra (nbformat, nbclient, ipykernel).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
STAMP_KEY = "ppl_genmodels"
QUICK_ENV = "PPL_GENMODELS_TUTORIAL_QUICK"
# Run before the notebook's own cells (not stored): modest PNGs; no tqdm notice about
# ipywidgets and no Pyro INFO lines in the stored outputs.
_SETUP = ("import logging, warnings\n"
          "import matplotlib\n"
          "import pyro\n"
          "matplotlib.rcParams['figure.dpi'] = 72\n"
          "warnings.filterwarnings('ignore', message='IProgress not found')\n"
          "logging.getLogger('pyro').setLevel(logging.WARNING)\n")


def source_hash(notebook) -> str:
    """SHA-256 (hex) of the notebook's cell types and sources, outputs and metadata aside."""
    cells = [[cell["cell_type"], "".join(cell["source"]) if isinstance(cell["source"], list)
              else cell["source"]] for cell in notebook["cells"]]
    return hashlib.sha256(json.dumps(cells).encode("utf-8")).hexdigest()


def stamp(notebook) -> dict | None:
    """The notebook's stored stamp, or ``None``."""
    return notebook.get("metadata", {}).get(STAMP_KEY)


def stale_reason(path: Path) -> str | None:
    """Why ``path``'s stored outputs do not belong to its source, or ``None`` when they do."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    found = stamp(notebook)
    if not found:
        return "has no render stamp (stored without outputs?)"
    if found.get("source_sha256") != source_hash(notebook):
        return "was edited after its outputs were rendered"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
        return "stores an error output"
    if code and not any(c.get("execution_count") for c in code):
        return "has a stamp but no executed cells"
    return None


def shrink_images(notebook, colors: int = 96) -> int:
    """Re-encode every PNG output with an adaptive palette of ``colors`` colours (Pillow's
    fast octree quantizer, which keeps transparency), where that is smaller: plots have few
    colours, and the notebooks stay small in the repository. :returns: bytes saved."""
    import base64
    import io

    from PIL import Image

    saved = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            raw = base64.b64decode(data["image/png"])
            image = Image.open(io.BytesIO(raw)).convert("RGBA")
            buffer = io.BytesIO()
            image.quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(
                buffer, format="PNG", optimize=True)
            if buffer.tell() < len(raw):
                saved += len(raw) - buffer.tell()
                data["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    return saved


def render(path: Path, full: bool = False, timeout: int = 1800) -> float:
    """Execute ``path`` and write it back with outputs and its stamp. :returns: seconds."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    start = time.perf_counter()
    env = dict(os.environ)
    env.pop(QUICK_ENV, None)
    if not full:
        env[QUICK_ENV] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as cwd:
        setup = nbformat.v4.new_code_cell(_SETUP)
        notebook.cells.insert(0, setup)
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                record_timing=False, resources={"metadata": {"path": cwd}})
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)  # the kernel inherits this process's environment
        try:
            client.execute()
        finally:
            os.environ.clear()
            os.environ.update(old)
            notebook.cells.pop(0)
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "error"]
    if errors:
        raise RuntimeError(f"{path.name}: a cell raised {errors[0].get('ename')}: {errors[0].get('evalue')}")
    # renumber from 1 (the setup cell took 1)
    for cell in notebook.cells:
        if cell.cell_type == "code" and cell.execution_count:
            cell.execution_count -= 1
            for output in cell.outputs:
                if "execution_count" in output and output["execution_count"]:
                    output["execution_count"] -= 1
    shrink_images(notebook)
    notebook.metadata[STAMP_KEY] = {"source_sha256": source_hash(notebook),
                                    "mode": "full" if full else "quick"}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        nbformat.write(notebook, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path,
                        help="notebooks (default: every tutorials/*.ipynb)")
    parser.add_argument("--full", action="store_true", help="full budgets (default: quick mode)")
    parser.add_argument("--check", action="store_true",
                        help="render nothing; list notebooks whose stamp is stale (exit 1 if any)")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(TUTORIALS.glob("*.ipynb"))
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(f"error: no such notebook(s): {missing}", file=sys.stderr)
        return 2
    if args.check:
        stale = [(p, stale_reason(p)) for p in paths]
        for p, why in stale:
            print(f"{p.name}: {why or 'ok'}")
        return 1 if any(why for _, why in stale) else 0
    for path in paths:
        seconds = render(path, full=args.full)
        size = path.stat().st_size / 1024
        print(f"{path.name}: rendered in {seconds:.1f} s ({'full' if args.full else 'quick'}), "
              f"{size:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
