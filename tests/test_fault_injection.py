"""Interrupts: SIGKILL / SIGINT a real ``ppl-genmodels`` process (``python -m
ppl_genmodels.cli``) while it writes, then check that no file is partial, that the next run
leaves no temporary file, and that ``--resume`` gives exactly the uninterrupted run's draws.

Each test starts the uninterrupted reference and the run to be interrupted side by side, and
kills the latter as soon as its first result file appears (polled, not a fixed sleep), so the
kill lands mid-run. Budgets are tiny; every process has a timeout.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_genmodels.io import load_netcdf

TIMEOUT = 240  # s, per process: generous for a loaded two-core machine


def _start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ppl_genmodels.cli", *argv, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out
    return out


def _interrupt_when(proc: subprocess.Popen, appears: Path, sig: int) -> str:
    """Send ``sig`` once ``appears`` exists; :returns: the process's output."""
    deadline = time.monotonic() + TIMEOUT
    while not appears.exists():
        assert proc.poll() is None, f"finished before {appears} appeared: {proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"{appears} never appeared"
        time.sleep(0.01)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0, "the run finished before the signal: budgets too small"
    return out


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


def test_compare_killed_after_first_engine_resumes_to_the_same_draws(tmp_path):
    argv = ["compare", "normal_normal", "--quick", "--engines", "svi,rws,nuts"]
    reference = _start(*argv, "--out", str(tmp_path / "a"))
    victim = _start(*argv, "--out", str(tmp_path / "b"))
    out_b = tmp_path / "b" / "normal_normal"
    _interrupt_when(victim, out_b / "svi.nc", signal.SIGKILL)
    for nc in out_b.glob("*.nc"):  # whatever is there under its own name is complete
        load_netcdf(nc)
    assert not (out_b / "report.md").exists()
    _finish(reference)
    _finish(_start(*argv, "--resume", "--out", str(tmp_path / "b")))
    assert _temporaries(tmp_path / "b") == []
    for engine in ("svi", "rws", "nuts"):
        a = load_netcdf(tmp_path / "a" / "normal_normal" / f"{engine}.nc").posterior
        b = load_netcdf(out_b / f"{engine}.nc").posterior
        for site in a.data_vars:
            np.testing.assert_array_equal(a[site].values, b[site].values, err_msg=engine)
    assert (out_b / "report.md").exists()


def test_sbc_interrupted_by_sigint_resumes_to_the_same_ranks(tmp_path):
    from ppl_genmodels.sbc import SBCResult

    argv = ["sbc", "normal_normal", "--engine", "amortized", "--simulations", "60", "--quick",
            "--seed", "2"]
    reference = _start(*argv, "--out", str(tmp_path / "a"))
    victim = _start(*argv, "--out", str(tmp_path / "b"))
    printed = _interrupt_when(victim, tmp_path / "b" / "checkpoints" / "batch_00000.npz",
                              signal.SIGINT)
    assert "interrupted" in printed and "--resume" in printed and "Traceback" not in printed
    assert victim.returncode == 130
    assert _temporaries(tmp_path / "b") == []  # Ctrl-C removes the temporary being written
    for batch in (tmp_path / "b" / "checkpoints").glob("batch_*.npz"):
        with np.load(batch) as f:
            assert len(f["seed"]) == 10
    _finish(reference)
    _finish(_start(*argv, "--resume", "--out", str(tmp_path / "b")))
    a = SBCResult.load(tmp_path / "a" / "sbc.nc")
    b = SBCResult.load(tmp_path / "b" / "sbc.nc")
    np.testing.assert_array_equal(a.ranks, b.ranks)
    np.testing.assert_array_equal(a.true_values, b.true_values)
    assert _temporaries(tmp_path / "b") == []


def test_train_killed_after_first_checkpoint_resumes_bit_for_bit(tmp_path):
    argv = ["train", "sbn", "--data", "digits", "--epochs", "100", "--num-train", "300",
            "--layers", "10,5", "--batch-size", "50", "--method", "rws", "--seed", "7"]
    reference = _start(*argv, "--out", str(tmp_path / "a"))
    victim = _start(*argv, "--out", str(tmp_path / "b"))
    _interrupt_when(victim, tmp_path / "b" / "checkpoint.pt", signal.SIGKILL)
    partial = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)  # complete
    assert 1 <= partial["epoch"] < 100
    # a kill can leave a temporary file; the next run into the folder removes it
    (tmp_path / "b" / f".checkpoint.pt.{_dead_pid()}-x.tmp").write_bytes(b"")
    _finish(reference)
    _finish(_start(*argv, "--resume", "--out", str(tmp_path / "b")))
    assert _temporaries(tmp_path / "b") == []
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    for part in ("model", "guide"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
