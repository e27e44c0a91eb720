"""The ensemble NUTS sampler's own progress bar is live (one tick per iteration; postfix with
chains, phase, divergences, step size and tree depth), Pyro's ``pyro_nuts`` bar advances, and
ArviZ's import banner does not print when the package (CLI included) imports ArviZ."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppl_genmodels.infer import NUTS, get_engine
from ppl_genmodels.infer import nuts as nuts_module
from ppl_genmodels.models import get_model

ROOT = Path(__file__).resolve().parents[2]


class RecordingBar:
    """Stands in for tqdm: records ticks and postfixes."""

    bars = []

    def __init__(self, total=None, disable=False, **kwargs):
        self.total, self.disable, self.n, self.postfixes = total, disable, 0.0, []
        self.mininterval = 0.0  # refresh the postfix at every tick
        RecordingBar.bars.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix(self, refresh=True, **kwargs):
        self.postfixes.append((self.n, kwargs))

    def close(self):
        pass


@pytest.mark.parametrize("schedule", ["lockstep", "async"])
def test_nuts_bar_ticks_every_iteration_with_a_full_postfix(schedule, monkeypatch):
    RecordingBar.bars = []
    monkeypatch.setattr(nuts_module, "tqdm", RecordingBar)
    engine = NUTS(num_samples=20, warmup_steps=20, num_chains=2, schedule=schedule, compile="none")
    engine.run(get_model("normal_normal").posterior(), seed=0, progress=True)
    (bar,) = RecordingBar.bars
    assert bar.total == 40 and bar.n == pytest.approx(40)
    ticks = [n for n, _ in bar.postfixes]
    assert len(ticks) >= 20 and ticks == sorted(ticks)  # refreshed as it goes, not at the end
    phases = [p["phase"] for _, p in bar.postfixes]
    assert phases[0] == "warmup" and phases[-1] == "sampling"
    last = bar.postfixes[-1][1]
    assert set(last) == {"chains", "phase", "divergences", "step", "depth"}
    assert last["chains"] == "1x2" and float(last["step"]) > 0 and 1 <= last["depth"] <= 10
    assert last["divergences"] >= 0


def test_nuts_bar_is_silent_without_progress(monkeypatch):
    RecordingBar.bars = []
    monkeypatch.setattr(nuts_module, "tqdm", RecordingBar)
    NUTS(num_samples=5, warmup_steps=5, num_chains=2, compile="none").run(
        get_model("normal_normal").posterior(), seed=0, progress=False)
    (bar,) = RecordingBar.bars
    assert bar.disable and bar.n == 0 and not bar.postfixes


@pytest.mark.parametrize("progress", [True, False])
def test_pyro_nuts_bar_advances_with_pyro_logging_quieted(progress, capfd, monkeypatch):
    """Pyro's own bar reaches N/N, not 0/N, even with the ``pyro`` logger at WARNING as the
    CLI sets it (Pyro advances the bar from INFO records, which that level drops).
    Pyro hides its bar whenever ``CI`` is set (pyro/infer/mcmc/logger.py), as on our CI."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    pyro_logger = logging.getLogger("pyro")
    level = pyro_logger.level
    pyro_logger.setLevel(logging.WARNING)
    try:
        get_engine("pyro_nuts", num_samples=15, warmup_steps=15, num_chains=1).run(
            get_model("normal_normal").posterior(), seed=0, progress=progress)
    finally:
        pyro_logger.setLevel(level)
    err = capfd.readouterr().err
    assert ("30/30" in err) is progress, err[-300:]
    assert logging.getLogger("pyro.infer.mcmc").level == logging.NOTSET  # restored


@pytest.mark.slow  # two interpreters importing torch, Pyro and ArviZ: ~4 s
def test_no_arviz_banner_on_cli_start(tmp_path):
    """With a fresh cache ArviZ 0.2x warns once a day on import; the package filters it.
    The stamp file ArviZ writes right after warning shows the warning's code path ran."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "PYTHONWARNINGS": "default"}
    code = ("import sys, ppl_genmodels.harness, ppl_genmodels.sbc; from ppl_genmodels.cli import main;"
            " sys.exit(main(['list']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and "eight_schools" in out.stdout
    assert "undergoing a major refactor" not in out.stderr, out.stderr
    assert list(tmp_path.rglob("daily_warning")), "ArviZ's banner code did not run"
    # positive control: plain `import arviz` with a fresh cache prints the banner
    fresh = tmp_path / "fresh"
    out = subprocess.run([sys.executable, "-c", "import arviz"], capture_output=True, text=True,
                         env={**env, "XDG_CACHE_HOME": str(fresh)}, timeout=300)
    assert "undergoing a major refactor" in out.stderr
