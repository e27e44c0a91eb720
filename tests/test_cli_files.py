"""The command line and its files: --force removes exactly the previous run's files,
--resume refuses stale or damaged results, unusable --out and damaged checkpoints are one-line
errors naming the path."""

import json

import pytest

from ppl_genmodels.cli import main
from ppl_genmodels.io import MANIFEST, load_netcdf, save_netcdf

QUICK = ["--quick", "--no-progress"]


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and err.startswith("error: ") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_force_removes_the_previous_runs_files_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["compare", "normal_normal", "--engines", "svi", "--out", str(out), *QUICK]) == 0
    (out / "mine.txt").write_text("user's")
    (out / "normal_normal" / "notes.md").write_text("user's")
    assert main(["compare", "normal_normal", "--engines", "rws", "--force", "--out", str(out),
                 *QUICK]) == 0
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "normal_normal/svi.nc" not in files and "normal_normal/rws.nc" in files
    assert {"mine.txt", "normal_normal/notes.md", "index.md", MANIFEST} <= files
    listed = set(json.loads((out / MANIFEST).read_text())["files"])
    assert listed == files - {"mine.txt", "normal_normal/notes.md", MANIFEST}
    assert not [p for p in out.rglob("*.tmp")]

    # --resume refuses a result made from other data, naming the part
    nc = out / "normal_normal" / "rws.nc"
    idata = load_netcdf(nc)
    fp = json.loads(idata.posterior.attrs["fingerprint"])
    key = next(k for k in fp if k.startswith("data["))
    idata.posterior.attrs["fingerprint"] = json.dumps({**fp, key: "0" * 40})
    save_netcdf(idata, nc)
    assert main(["compare", "normal_normal", "--engines", "rws", "--resume", "--out", str(out),
                 *QUICK]) == 2
    _one_line_error(capsys, f"{nc} was made from other data ({key} differs)", "--force")

    # ... and a truncated one, naming the file
    nc.write_bytes(nc.read_bytes()[:100])
    assert main(["compare", "normal_normal", "--engines", "rws", "--resume", "--out", str(out),
                 *QUICK]) == 2
    _one_line_error(capsys, f"{nc} is damaged", "--force")


@pytest.mark.parametrize("command", [
    ["compare", "normal_normal", "--engines", "svi", *QUICK],
    ["sbc", "normal_normal", "--engine", "amortized", "--simulations", "10", *QUICK],
    ["train", "sbn", "--data", "digits", "--epochs", "1", "--no-progress"],
])
def test_unusable_out_is_an_error_before_any_work(tmp_path, capsys, command):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    assert main([*command, "--out", str(a_file)]) == 2
    _one_line_error(capsys, str(a_file), "existing file")
    assert main([*command, "--out", str(a_file / "sub")]) == 2
    _one_line_error(capsys, "cannot write into output folder", str(a_file / "sub"))
    assert a_file.read_text() == "mine"


def test_damaged_checkpoint_pt_is_named(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(b"PK\x03\x04 truncated zip")
    assert main(["evaluate", str(run), "--no-progress"]) == 2
    _one_line_error(capsys, f"{ckpt} is damaged")
    assert main(["compare", "sbn", "--checkpoint", str(run), "--out", str(tmp_path / "o"),
                 *QUICK]) == 2
    _one_line_error(capsys, f"{ckpt} is damaged")
    assert main(["train", "sbn", "--data", "digits", "--resume", "--out", str(run),
                 "--no-progress"]) == 2
    _one_line_error(capsys, f"{ckpt} is damaged", "--force")


def test_damaged_sbc_batch_is_named(tmp_path, capsys):
    out = tmp_path / "sbc"
    argv = ["sbc", "normal_normal", "--engine", "amortized", "--simulations", "10", "--out",
            str(out), *QUICK]
    assert main(argv) == 0
    batch = next((out / "checkpoints").glob("batch_*.npz"))
    batch.write_bytes(batch.read_bytes()[:50])
    assert main([*argv, "--resume"]) == 2
    _one_line_error(capsys, f"{batch} is damaged", "--force")
    assert main([*argv, "--force"]) == 0  # starts over
