"""``ppl-genmodels list`` and ``--help`` answer without importing torch or Pyro (seconds)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import contextlib, io, sys
from ppl_genmodels.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    for argv in {argvs!r}:
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse exits after printing --help
            status = exit_.code
        assert status == 0, (argv, status)
assert 'torch' not in sys.modules and 'pyro' not in sys.modules, sorted(
    m for m in ("torch", "pyro") if m in sys.modules)
print(out.getvalue())
"""


@pytest.mark.parametrize("argvs, printed", [
    ([["list"]], "vae_digits"),
    ([["--help"]], "compare"),
    ([["compare", "--help"], ["sbc", "--help"], ["train", "--help"], ["evaluate", "--help"]],
     "RUN_DIR"),
])
def test_list_and_help_import_neither_torch_nor_pyro(argvs, printed):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", _PROBE.format(argvs=argvs)], capture_output=True,
                            text=True, check=True, env=env, cwd=ROOT)
    assert printed in result.stdout
