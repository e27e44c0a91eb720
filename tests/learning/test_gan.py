"""The GAN (models/gan.py, learning/gan_training.py): it trains with finite losses, its samples
are pixel probabilities, its Pyro model has a finite density, resume is bit-identical, and
bad options are refused before any data is read."""

import numpy as np
import pytest
import torch

from ppl_genmodels.learning import load_run, train
from ppl_genmodels.models import gan

SMALL = {"arch": "mlp", "hidden": 32, "latent_dim": 4, "encoder_hidden": 32}
COMMON = dict(batch_size=50, num_train=200, seed=3, model_kwargs=SMALL, progress=False)


@pytest.mark.parametrize("straight_through", [True, False])
def test_gan_trains_with_finite_losses_and_samples_in_range(tmp_path, straight_through):
    common = {**COMMON, "model_kwargs": {**SMALL, "straight_through": straight_through}}
    run = train("gan", "digits", epochs=2, out=tmp_path, **common)
    assert run.model.straight_through is straight_through
    assert run.config.method == "gan" and run.config.lr == pytest.approx(2e-4)
    for h in run.history:
        for key in ("loss", "d_loss", "sleep_loss", "test_elbo"):
            assert np.isfinite(h[key]), (key, h)
        assert 0.0 < h["d_real"] < 1.0 and 0.0 < h["d_fake"] < 1.0
    loaded = load_run(tmp_path)
    assert not loaded.model.training  # batch norm frozen: G is a function of z
    samples = loaded.model.sample_images(64, torch.Generator().manual_seed(0))
    assert samples.shape == (64, 64) and samples.min() >= 0.0 and samples.max() <= 1.0
    # the observation model: log p(x | z) is finite even for an image G cannot make
    x = torch.ones(3, 64)
    z = torch.zeros(3, SMALL["latent_dim"])
    probs = loaded.model.pixel_probs(z)
    assert probs.min() >= loaded.model.flip - 1e-7 and probs.max() <= 1 - loaded.model.flip + 1e-7
    trace = __import__("pyro").poutine.trace(loaded.model.model).get_trace(x)
    assert torch.isfinite(trace.log_prob_sum())


def test_resume_reproduces_an_uninterrupted_gan_run(tmp_path):
    straight = train("gan", "digits", epochs=3, out=tmp_path / "a", **COMMON)
    train("gan", "digits", epochs=1, out=tmp_path / "b", **COMMON)
    resumed = train("gan", "digits", epochs=3, out=tmp_path / "b", resume=True, **COMMON)
    state = resumed.model.state_dict()  # generator, discriminator and batch-norm buffers
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, state[key]), key
    for key, value in straight.guide.state_dict().items():
        assert torch.equal(value, resumed.guide.state_dict()[key]), key
    assert straight.history[-1]["loss"] == resumed.history[-1]["loss"]
    assert [h["d_loss"] for h in straight.history] == [h["d_loss"] for h in resumed.history]
    # negative control: another seed gives another generator
    other = train("gan", "digits", epochs=1, **{**COMMON, "seed": 4})
    first = next(iter(other.model.state_dict()))
    assert not torch.equal(other.model.state_dict()[first], state[first])


@pytest.mark.parametrize("kwargs,match", [
    ({"model": "gan", "method": "svi"}, "method 'gan' trains the gan model"),
    ({"model": "vae", "method": "gan"}, "method 'gan' trains the gan model"),
    ({"model": "gan", "model_kwargs": {"flip": 0.7}}, r"flip must be in \(0, 0.5\)"),
    ({"model": "gan", "model_kwargs": {"arch": "resnet"}}, "arch must be one of"),
    ({"model": "gan", "model_kwargs": {"latent": 3}}, "unknown option"),
    ({"model": "gan", "model_kwargs": {"width": 0}}, "width must be a positive integer"),
])
def test_bad_gan_options_fail_before_loading_data(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train(data="binarized_mnist", data_dir="/nonexistent", epochs=1, progress=False, **kwargs)


def test_dcgan_needs_square_images_with_side_divisible_by_4():
    with pytest.raises(ValueError, match="side divisible by 4"):
        gan.build(100, arch="dcgan")
    model, encoder = gan.build(784, arch="dcgan", width=8, latent_dim=3)
    model.eval()
    assert model.decode(torch.zeros(2, 3)).shape == (2, 784)
    assert encoder.params(torch.zeros(2, 784))[0].shape == (2, 3)
