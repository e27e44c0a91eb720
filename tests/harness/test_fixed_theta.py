"""The fixed-theta comparison of a trained image model: theta frozen, gaps consistent."""

import numpy as np
import pytest
import torch

from ppl_genmodels.harness.fixed_theta import compare_fixed_theta
from ppl_genmodels.learning import load_run, train

TINY = {"svi": {"num_steps": 150, "lr": 0.02}, "rws": {"num_steps": 150, "lr": 0.02},
        "nuts": {"num_samples": 100, "warmup_steps": 100, "num_chains": 2},
        "amortized": {"num_draws": 200}}


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vae_run")
    train("vae", "digits", method="svi", epochs=4, batch_size=50, lr=3e-3,
          model_kwargs={"latent_dim": 2, "hidden": 64}, out=out, progress=False)
    return out


def test_theta_frozen_and_gaps_consistent(vae_run, tmp_path):
    before = {k: v.clone() for k, v in load_run(vae_run).model.state_dict().items()}
    result = compare_fixed_theta(vae_run, num_images=2, num_samples=300, engine_config=TINY,
                                 progress=False)
    # The in-memory model every engine targeted still holds the checkpoint's theta, bit for
    # bit, and its parameters are trainable again afterwards.
    theta = result.run.model.state_dict()
    for key, value in before.items():
        assert torch.equal(value, theta[key]), key
    assert all(p.requires_grad for p in result.run.model.parameters())
    assert all(p.grad is None for p in result.run.model.parameters())
    gaps = result.gaps
    # log p^ is the largest IW bound, each at least its own ELBO up to Monte Carlo error.
    assert np.all(gaps["approximation_gap"] > -0.05)
    per = result.per_image
    assert np.all(per["iw_bound"] >= per["elbo"] - 1e-9)  # Jensen, per draw set
    # The per-image refit guide should not be worse than the amortized encoder it starts from.
    assert gaps["amortization_gap"].mean() > -0.1
    assert set(per["guide"]) == {"amortized", "svi", "rws"}
    assert per["mean_error_sd"].notna().all()
    # Each image is its own posterior: NUTS diagnostics and every engine's verdict per image.
    assert list(result.nuts_images["image"]) == [0, 1]
    assert set(result.trust.index) == {"amortized", "svi", "rws", "nuts"}
    assert (result.trust["images"] == 2).all()
    assert set(per["verdict"]) <= {"trust", "caution", "do not trust"}
    report = result.save(tmp_path)
    assert (tmp_path / "k_hat_per_image.png").exists() and (tmp_path / "gaps.csv").exists()
    assert (tmp_path / "nuts_per_image.csv").exists()
    assert (tmp_path / "active_dimensions.png").exists()
    assert "Gaps at fixed theta" in report.read_text()


def test_sbn_comparison_has_no_nuts_and_says_why(tmp_path):
    out = tmp_path / "sbn"
    train("sbn", "digits", method="rws", epochs=1, batch_size=50, num_train=300,
          model_kwargs={"layers": (8, 4)}, out=out, progress=False)
    result = compare_fixed_theta(out, num_images=2, num_samples=100, engine_config=TINY,
                                 progress=False)
    assert "nuts" not in result.comparison.idata
    assert "binary" in result.note
    assert result.per_image["mean_error_sd"].isna().all()
