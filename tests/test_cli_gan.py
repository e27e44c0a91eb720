"""`ppl-genmodels train gan`, `compare gan --checkpoint`, `modes` and `latent`: errors named
before any work, and (slow) the GAN's fixed-theta comparison end to end."""

import pytest

from ppl_genmodels.cli import main


@pytest.mark.parametrize("argv,message", [
    (["train", "gan", "--data", "digits", "--method", "svi"], "method 'gan' trains the gan model"),
    (["train", "vae", "--data", "digits", "--method", "gan"], "method 'gan' trains the gan model"),
    (["train", "gan", "--data", "digits", "--flip", "0.6"], "flip must be in (0, 0.5)"),
    (["modes", "/nonexistent", "--data-dir", "/nonexistent"], "no checkpoint.pt"),
    (["modes", "vae_mnist"], "no --data-dir given"),
    (["latent", "vae_mnist", "--images", "3"], "80..500"),
    (["latent", "/nonexistent"], "no checkpoint.pt"),
])
def test_gan_command_errors_are_named(tmp_path, capsys, argv, message):
    argv = argv + ["--out", str(tmp_path / "x")]
    if argv[0] == "train":
        argv += ["--epochs", "1", "--no-progress"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_train_gan_then_compare_at_fixed_theta(tmp_path, capsys):
    run = tmp_path / "gan"
    assert main(["train", "gan", "--data", "digits", "--arch", "mlp", "--latent-dim", "4",
                 "--num-train", "300", "--epochs", "2", "--batch-size", "50", "--out", str(run),
                 "--no-progress"]) == 0
    out = tmp_path / "cmp"
    assert main(["compare", "gan", "--checkpoint", str(run), "--images", "2", "--quick",
                 "--num-samples", "200", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    for engine in ("amortized", "svi", "rws", "nuts"):
        assert engine in text
    assert (out / "per_image.csv").exists() and (out / "report.md").exists()
