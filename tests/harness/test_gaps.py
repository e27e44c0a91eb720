"""Flow encoders train, survive checkpoint round trips, and the gap table is consistent:
log p^(x) is at least every proposal's ELBO (Jensen, same draws), rows follow Cremer et al."""

import numpy as np
import pytest
import torch

from ppl_genmodels.data import load_image_dataset
from ppl_genmodels.harness.gaps import gap_table, inference_gaps
from ppl_genmodels.learning import load_run, train
from ppl_genmodels.models.vae_flows import FlowEncoder

SMALL = {"latent_dim": 3, "hidden": 20}


@pytest.mark.parametrize("guide", ["iaf", "spline"])
def test_flow_encoder_trains_and_reloads(guide, tmp_path):
    run = train("vae", "digits", method="svi", epochs=2, batch_size=50, lr=3e-3, num_train=300,
                model_kwargs={**SMALL, "guide": guide}, out=tmp_path, progress=False)
    losses = [h["loss"] for h in run.history]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    loaded = load_run(tmp_path)
    assert isinstance(loaded.guide, FlowEncoder) and loaded.guide.kind == guide
    x = torch.as_tensor(load_image_dataset("digits").test_subset(4)[0], dtype=torch.float32)
    z = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.allclose(run.guide.distribution(x).log_prob(z),
                              loaded.guide.distribution(x).log_prob(z), atol=1e-5)


def test_gap_table_is_consistent():
    run = train("vae", "digits", method="svi", epochs=1, batch_size=50, lr=3e-3, num_train=300,
                model_kwargs={**SMALL, "guide": "iaf"}, progress=False)
    x = torch.as_tensor(load_image_dataset("digits").test_subset(6)[0], dtype=torch.float32)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    result = inference_gaps(run, x, refit_steps=20, num_samples=50, label="tiny")
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in before.items())
    gaps = result.per_image_gaps()
    assert len(gaps) == 6
    for family in ("ffg", "iaf"):
        assert (gaps[f"approx_gap_{family}"] >= -1e-9).all()  # log p^ = max IW bound >= ELBO
    table = gap_table([result])
    assert list(table.index[:4]) == ["log p^(x)", "ELBO(q*_ffg)", "ELBO(q*_iaf)", "ELBO(q) amortized"]
    assert "amortization gap (encoder's family)" in table.index


def test_gap_table_with_ais():
    """AIS from the ffg refit (added to the families) adds its rows; log p^ is the larger of
    AIS and the best IW bound per image."""
    run = train("vae", "digits", method="svi", epochs=1, batch_size=50, lr=3e-3, num_train=300,
                model_kwargs=SMALL, progress=False)
    x = torch.as_tensor(load_image_dataset("digits").test_subset(3)[0], dtype=torch.float32)
    result = inference_gaps(run, x, families=("iaf",), refit_steps=10, num_samples=30,
                            ais_steps=20, ais_chains=4)
    assert "ffg" in result.families and result.ais_steps == 20 and result.ais_seconds > 0
    g = result.per_image_gaps()
    np.testing.assert_allclose(g["log_p_hat"], g["log_p_ais"])  # AIS is log p^ when it runs
    np.testing.assert_allclose(g["approx_gap_ffg"], g["log_p_ais"] - g["elbo_refit_ffg"])
    assert np.isfinite(g["log_p_ais"]).all() and (result.ais["ais_acceptance"] > 0).all()
    table = gap_table([result])
    assert list(table.index[:3]) == ["log p^(x) = AIS (T=20, M=4)", "best IW bound", "AIS - best IW (paired)"]


@pytest.mark.parametrize("kwargs", [{"ais_steps": -1}, {"ais_steps": 2, "ais_chains": 0}])
def test_bad_ais_settings_refused_before_work(kwargs):
    with pytest.raises(ValueError, match="ais_"):
        inference_gaps("no/such/run", torch.zeros(2, 64), **kwargs)  # checked before loading
