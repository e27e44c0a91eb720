"""The console script end to end: compare --quick, overwrite refusal, resume, list."""

import subprocess
import sys

import pytest

from ppl_genmodels.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("eight_schools", "normal_normal", "vae_digits"):
        assert name in out


def test_compare_quick_end_to_end_then_refuse_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["compare", "--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "eight_schools: engines" in printed and "images each engine can be trusted on" in printed
    assert "k_hat" in printed and "report:" in printed
    for model in ("eight_schools", "vae_mnist"):
        files = {p.name for p in (out / model).iterdir()}
        assert {"svi.nc", "rws.nc", "nuts.nc", "report.md", "summary.csv", "forest.png"} <= files
    assert {"per_image.csv", "nuts_per_image.csv", "active_dimensions.png"} <= {
        p.name for p in (out / "vae_mnist").iterdir()}
    assert (out / "index.md").exists()

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["compare", "eight_schools", "--quick", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing touched

    # --resume reuses every finished engine run: the .nc files are not rewritten by engines
    nc = out / "eight_schools" / "nuts.nc"
    wall = _wall_time(nc)
    assert main(["compare", "eight_schools", "--quick", "--resume", "--out", str(out),
                 "--no-progress"]) == 0
    assert _wall_time(nc) == wall


def _wall_time(path):
    from ppl_genmodels.io import load_netcdf

    return load_netcdf(path).posterior.attrs["wall_time_s"]


def test_bad_arguments(tmp_path, capsys):
    assert main(["compare", "no_such_model", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["compare", "eight_schools", "--engines", "svi,hmc", "--out", str(tmp_path / "x")]) == 2
    assert "unknown engine" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "ppl_genmodels.cli", "list"],
                            capture_output=True, text=True, check=True)
    assert "vae_digits" in result.stdout


def test_jobs_give_the_same_draws_as_one_process(tmp_path, capsys):
    args = ["compare", "normal_normal", "linear_regression", "--quick", "--engines", "svi,nuts",
            "--no-progress"]
    assert main(args + ["--jobs", "2", "--out", str(tmp_path / "two")]) == 0
    two = capsys.readouterr().out
    assert main(args + ["--jobs", "1", "--out", str(tmp_path / "one")]) == 0
    one = capsys.readouterr().out
    assert two.index("=== normal_normal") < two.index("=== linear_regression")  # models' order
    from ppl_genmodels.io import load_netcdf

    for model in ("normal_normal", "linear_regression"):
        for engine in ("svi", "nuts"):
            a = load_netcdf(tmp_path / "two" / model / f"{engine}.nc").posterior
            b = load_netcdf(tmp_path / "one" / model / f"{engine}.nc").posterior
            for var in a.data_vars:
                assert (a[var].values == b[var].values).all(), (model, engine, var)
    manifest = (tmp_path / "two" / ".ppl_genmodels_manifest.json").read_text()
    assert "normal_normal/nuts.nc" in manifest and "linear_regression/nuts.nc" in manifest
    assert one.count("report:") == two.count("report:") == 2


def test_compare_goes_on_when_an_engine_fails_and_exits_1(tmp_path, monkeypatch, capsys):
    """An engine that crashes mid-run costs only its own row: the report is written with the
    others' results, the error is named, the exit status is 1 and --resume retries only it."""
    from ppl_genmodels.infer import NUTS

    def crash(self, posterior, seed=0, *, progress=True):
        raise FloatingPointError("injected failure")

    monkeypatch.setattr(NUTS, "run", crash)
    out = tmp_path / "out"
    argv = ["compare", "normal_normal", "--quick", "--engines", "svi,nuts", "--jobs", "1",
            "--no-progress", "--out", str(out)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "engine nuts failed" in err and "injected failure" in err
    assert (out / "normal_normal" / "svi.nc").exists() and (out / "index.md").exists()
    assert "injected failure" in (out / "normal_normal" / "report.md").read_text()
    monkeypatch.undo()  # the engine works again: a resumed run redoes only NUTS
    assert main(argv[:-2] + ["--resume", "--out", str(out)]) == 0
    assert (out / "normal_normal" / "nuts.nc").exists()
