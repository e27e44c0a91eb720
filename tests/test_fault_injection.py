"""Interrupts: SIGKILL / SIGINT a real ``ppl-genmodels`` process (``python -m
ppl_genmodels.cli``) while it writes, then check that no file is partial, that the next run
leaves no temporary file, and that ``--resume`` gives exactly the uninterrupted run's draws.

Each test starts the run to be interrupted, runs the uninterrupted reference in this process
meanwhile (``main``: the same code path, without a second interpreter start), and kills the
subprocess as soon as its first result file appears (polled, not a fixed sleep), so the kill
lands mid-run. Budgets are tiny; every process has a timeout.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ppl_genmodels.cli import main
from ppl_genmodels.io import load_netcdf

TIMEOUT = 240  # s, per process: generous for a loaded two-core machine


def _default_sigint() -> None:
    # A child inherits an ignored SIGINT (SIG_IGN survives exec), and Python then installs
    # no KeyboardInterrupt handler: whatever ignored it in this test process, the CLI under
    # test gets the terminal's default, as a user's Ctrl-C would find it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*argv: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ppl_genmodels.cli", *argv, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
                            preexec_fn=_default_sigint)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out
    return out


def _reference(argv: list[str], out: Path) -> None:
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0


class _Interrupter(threading.Thread):
    """Send ``sig`` to ``proc`` once ``appears`` exists (polled every 10 ms); the tests
    run the uninterrupted reference only after it, so nothing competes with the poller."""

    def __init__(self, proc: subprocess.Popen, appears: Path, sig: int):
        super().__init__(daemon=True)
        self.proc, self.appears, self.sig, self.sent = proc, appears, sig, False

    def run(self):
        deadline = time.monotonic() + TIMEOUT
        while self.proc.poll() is None and time.monotonic() < deadline:
            if self.appears.exists():
                self.proc.send_signal(self.sig)
                self.sent = True
                return
            time.sleep(0.01)

    def output(self) -> str:
        """Wait for the interrupted process; :returns: its output."""
        self.join(TIMEOUT)
        out, _ = self.proc.communicate(timeout=TIMEOUT)
        assert self.sent, f"{self.appears} never appeared before the end: {out}"
        assert self.proc.returncode != 0, "the run finished before the signal: budgets too small"
        return out


def _temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.tmp"))


@pytest.mark.slow  # ~40 s on a loaded two-core machine; the interrupt paths are the same
def test_compare_killed_after_first_engine_resumes_to_the_same_draws(tmp_path):
    argv = ["compare", "normal_normal", "--quick", "--engines", "svi,rws"]
    out_b = tmp_path / "b" / "normal_normal"
    victim = _Interrupter(_start(*argv, "--out", str(tmp_path / "b")), out_b / "svi.nc",
                          signal.SIGKILL)
    victim.start()
    victim.output()
    _reference(argv, tmp_path / "a")
    for nc in out_b.glob("*.nc"):  # whatever is there under its own name is complete
        load_netcdf(nc)
    assert not (out_b / "report.md").exists()
    _finish(_start(*argv, "--resume", "--out", str(tmp_path / "b")))
    assert _temporaries(tmp_path / "b") == []
    for engine in ("svi", "rws"):
        a = load_netcdf(tmp_path / "a" / "normal_normal" / f"{engine}.nc").posterior
        b = load_netcdf(out_b / f"{engine}.nc").posterior
        for site in a.data_vars:
            np.testing.assert_array_equal(a[site].values, b[site].values, err_msg=engine)
    assert (out_b / "report.md").exists()


def test_sbc_interrupted_by_sigint_resumes_to_the_same_ranks(tmp_path):
    from ppl_genmodels.sbc import SBCResult

    # Amortized SBC trains its guide once, then a batch of 10 simulations takes ~0.1 s: 12
    # batches leave ~1 s between the first batch file and the end for the SIGINT to land
    # (with 4 batches a fast machine finished first).
    argv = ["sbc", "normal_normal", "--engine", "amortized", "--simulations", "120", "--quick",
            "--seed", "2"]
    victim = _Interrupter(_start(*argv, "--out", str(tmp_path / "b")),
                          tmp_path / "b" / "checkpoints" / "batch_00000.npz", signal.SIGINT)
    victim.start()
    printed = victim.output()
    _reference(argv, tmp_path / "a")
    assert "interrupted" in printed and "--resume" in printed and "Traceback" not in printed
    assert victim.proc.returncode == 130
    assert _temporaries(tmp_path / "b") == []  # Ctrl-C removes the temporary being written
    for batch in (tmp_path / "b" / "checkpoints").glob("batch_*.npz"):
        with np.load(batch) as f:
            assert len(f["seed"]) == 10
    _finish(_start(*argv, "--resume", "--out", str(tmp_path / "b")))
    a = SBCResult.load(tmp_path / "a" / "sbc.nc")
    b = SBCResult.load(tmp_path / "b" / "sbc.nc")
    np.testing.assert_array_equal(a.ranks, b.ranks)
    np.testing.assert_array_equal(a.true_values, b.true_values)
    assert _temporaries(tmp_path / "b") == []


def test_train_killed_after_first_checkpoint_resumes_bit_for_bit(tmp_path):
    argv = ["train", "sbn", "--data", "digits", "--epochs", "30", "--num-train", "300",
            "--layers", "10,5", "--batch-size", "50", "--method", "rws", "--seed", "7"]
    victim = _Interrupter(_start(*argv, "--out", str(tmp_path / "b")),
                          tmp_path / "b" / "checkpoint.pt", signal.SIGKILL)
    victim.start()
    victim.output()
    _reference(argv, tmp_path / "a")
    partial = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)  # complete
    assert 1 <= partial["epoch"] < 30
    # a kill can leave a temporary file; the next run into the folder removes it
    (tmp_path / "b" / f".checkpoint.pt.{_dead_pid()}-x.tmp").write_bytes(b"")
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
