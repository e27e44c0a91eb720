"""`ppl-genmodels train` / `evaluate` / `compare --checkpoint` end to end on small real data."""

import json

import pytest

from ppl_genmodels.cli import main


def test_train_resume_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "sbn", "--data", "digits", "--method", "wake_sleep", "--layers", "10,5",
            "--batch-size", "50", "--num-train", "300", "--out", str(out), "--no-progress"]
    assert main(args + ["--epochs", "1"]) == 0
    assert main(args + ["--epochs", "2"]) == 2  # exists: needs --resume or --force
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--epochs", "2", "--resume"]) == 0
    history = (out / "history.csv").read_text().strip().splitlines()
    assert len(history) == 3  # header + 2 epochs
    assert main(["evaluate", str(out), "--num-samples", "50", "--num-test", "40", "--no-progress"]) == 0
    result = json.loads((out / "evaluation.json").read_text())
    assert result["num_images"] == 40 and result["num_samples"] == 50
    assert result["log_likelihood"] >= result["elbo"]
    for name in ("samples.png", "reconstructions.png", "training.png", "evaluation.md"):
        assert (out / name).exists(), name
    assert "nats/image" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["train", "sbn", "--data", "digits", "--method", "iwae"], "reparameterized"),
    (["train", "vae", "--data", "binarized_mnist", "--data-dir", "/nonexistent"], "/nonexistent"),
    (["evaluate", "/nonexistent"], "checkpoint.pt"),
    (["compare", "eight_schools", "--checkpoint", "/nonexistent"], "vae or sbn"),
])
def test_errors_are_named(tmp_path, capsys, argv, message):
    if argv[0] == "train":
        argv = argv + ["--out", str(tmp_path / "x"), "--epochs", "1", "--no-progress"]
    if argv[0] == "compare":
        argv = argv + ["--out", str(tmp_path / "c")]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
