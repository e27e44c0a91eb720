"""ppl-genmodels em and compare with the cavi engine: refusals before any work; the whole
command in quick mode (slow)."""

import pytest

from ppl_genmodels.cli import main


@pytest.mark.parametrize("argv,message", [
    (["em", "--engines", "rws"], "--engines 'rws': use some of"),
    (["em", "--engines", ","], "use some of"),
    (["compare", "normal_normal", "--engines", "cavi"], "engine cavi runs only on ['bayes_gauss_mix']"),
])
def test_refused_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(argv + ["--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_em_refuses_a_non_empty_folder(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep")
    assert main(["em", "--out", str(tmp_path)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "mine.txt").read_text() == "keep"


@pytest.mark.slow
def test_em_quick_writes_the_report(tmp_path, capsys):
    out = tmp_path / "em"
    assert main(["em", "--quick", "--out", str(out), "--no-progress", "--engines", "cavi,svi"]) == 0
    text = capsys.readouterr().out
    assert "k-means limit" in text and "label switching" in text
    report = (out / "report.md").read_text()
    for name in ("em_loglik.png", "kmeans_limit.png", "aligned_marginals.png"):
        assert (out / name).is_file() and name in report
    assert "Label switching" in report
