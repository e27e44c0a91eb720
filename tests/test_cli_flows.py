"""``ppl-genmodels guides`` and ``gaps``: bad input is refused (exit 2, one-line error) before any
fit or refit starts, and a small run writes its table."""

import pandas as pd
import pytest

from ppl_genmodels.cli import main
from ppl_genmodels.harness import gaps as gaps_module
from ppl_genmodels.harness import guide_table as guide_module


@pytest.fixture
def no_work(monkeypatch):
    """Any fit or refit fails the test: a refusal must come before work."""
    def refuse(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(guide_module.SVI, "run", refuse)
    monkeypatch.setattr(gaps_module, "inference_gaps", refuse)


@pytest.mark.parametrize("argv, message", [
    (["guides", "banana", "--guides", "ffg,maf"], "unknown guide families"),
    (["guides", "banana", "no_such_model"], "no_such_model"),
    (["guides", "banana", "enum_mixture"], "continuous latents"),
    (["gaps", "vae_mnist", "no/such/run"], "not found"),
    (["gaps", "vae_mnist", "--families", "ffg,maf"], "unknown refit families"),
    (["gaps", "vae_mnist", "--images", "100000"], "--images 100000"),
])
def test_bad_input_refused_before_work(argv, message, no_work, capsys, tmp_path):
    out = tmp_path / ("t.csv" if argv[0] == "guides" else "gaps")
    assert main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err
    assert not out.exists()


def test_guides_writes_table(tmp_path, capsys):
    out = tmp_path / "toy.csv"
    assert main(["guides", "banana", "--guides", "ffg,iaf", "--quick", "--steps", "30",
                 "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["guide"]) == ["ffg", "iaf"] and set(table["model"]) == {"banana"}
    assert table["k_hat"].notna().all() and (table["iw_bound"] >= table["elbo"]).all()
    assert table["ref_passed"].str.fullmatch(r"[0-2]/2").all()
    assert table["ref_passed_psis"].str.fullmatch(r"[0-2]/2").all()
    assert "flow_fixes" in capsys.readouterr().out


def test_gaps_writes_table(tmp_path, capsys):
    out = tmp_path / "gaps"
    assert main(["gaps", "vae_mnist", "--images", "2", "--refit-steps", "3", "--num-samples", "20",
                 "--out", str(out)]) == 0
    assert "approximation gap (iaf)" in (out / "gaps.md").read_text()
    per_image = pd.read_csv(out / "per_image_0.csv")
    assert set(per_image["proposal"]) == {"amortized", "refit_ffg", "refit_iaf"}
    assert len(per_image) == 6 and "ELBO(q) amortized" in capsys.readouterr().out


@pytest.mark.parametrize("flag, value", [("--ais-steps", "-1"), ("--ais-chains", "0")])
def test_bad_ais_settings_refused(flag, value, no_work, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["gaps", "vae_mnist", flag, value, "--out", str(tmp_path / "gaps")])
    assert exc.value.code == 2 and f"argument {flag}" in capsys.readouterr().err


def test_gaps_with_ais(tmp_path, capsys):
    out = tmp_path / "gaps"
    assert main(["gaps", "vae_mnist", "--images", "2", "--refit-steps", "3", "--num-samples", "20",
                 "--families", "ffg", "--ais-steps", "3", "--ais-chains", "2", "--out", str(out)]) == 0
    table = (out / "gaps.md").read_text()
    assert "log p^(x) = AIS (T=3, M=2)" in table and "AIS - best IW (paired)" in table
    assert "AIS: 2 chains per image, 3 HMC steps" in capsys.readouterr().out
    ais = pd.read_csv(out / "ais_0.csv")
    assert len(ais) == 2 and ais["ais_log_p"].notna().all() and (ais["ais_log_p"] < 0).all()


def test_guide_table_refuses_unknown_engine(no_work):
    with pytest.raises(ValueError, match="engine"):
        guide_module.guide_table(["banana"], ["ffg"], engine="nuts")
