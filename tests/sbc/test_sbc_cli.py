"""``ppl-genmodels sbc`` end to end: files, verdict, refusal to overwrite, resume."""

import pandas as pd

from ppl_genmodels.cli import main
from ppl_genmodels.sbc import SBCResult


def test_sbc_cli_writes_report_then_refuses_overwrite_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["sbc", "normal_normal", "--engine", "amortized", "--simulations", "20", "--quick",
            "--out", str(out), "--no-progress", "--seed", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "verdict:" in printed and "loc[0]" in printed and "report:" in printed
    files = {p.name for p in out.iterdir()}
    assert {"sbc.nc", "ranks.csv", "tests.csv", "rank_hist.png", "ecdf_diff.png", "sbc.md",
            "checkpoints"} <= files
    report = (out / "sbc.md").read_text()
    assert "Verdict:" in report and "Bonferroni" in report and "| loc[1]" in report
    tests = pd.read_csv(out / "tests.csv", index_col="parameter")
    assert set(tests.index) == {"loc[0]", "loc[1]"} and set(tests["verdict"]) <= {"pass", "fail"}
    result = SBCResult.load(out / "sbc.nc")
    assert result.ranks.shape == (20, 2) and result.engine == "amortized(rws)"

    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before

    # --resume with more simulations keeps the finished batches and the trained guide.
    batches = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("batch_*.npz")}
    assert main([*argv[:5], "30", *argv[6:], "--resume"]) == 0
    assert {p: p.stat().st_mtime_ns for p in batches} == batches
    assert SBCResult.load(out / "sbc.nc").ranks[:20].tolist() == result.ranks.tolist()


def test_sbc_cli_bad_arguments(tmp_path, capsys):
    assert main(["sbc", "no_such_model", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["sbc", "normal_normal", "--engine", "hmc", "--out", str(tmp_path / "x")]) == 2
    assert "unknown engine" in capsys.readouterr().err
    assert main(["sbc", "normal_normal", "--simulations", "3", "--out", str(tmp_path / "x")]) == 2
    assert "num_simulations" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.npz"))
