"""Per-image objectives against Pyro's own losses (one image: they must agree) and the
batch-joint bound they replace."""

import math

import pyro
import pytest
import torch

from ppl_genmodels.learning import objectives
from ppl_genmodels.models import sbn, vae


def _pair(kind):
    torch.manual_seed(3)
    if kind == "vae":
        gen, guide = vae.build(pixels=16, latent_dim=3, hidden=8)
    else:
        gen, guide = sbn.build(pixels=16, layers=(4, 3))
    x = torch.bernoulli(torch.full((1, 16), 0.3), generator=torch.Generator().manual_seed(1))
    return gen, guide, x


@pytest.mark.parametrize("kind", ["vae", "sbn"])
def test_rws_losses_equal_pyro_reweighted_wake_sleep_on_one_image(kind):
    gen, guide, x = _pair(kind)
    k = 6
    pyro.set_rng_seed(5)
    theta, phi = objectives.rws_losses(gen.model, guide, x, k, insomnia=1.0)
    pyro.set_rng_seed(5)
    rws = pyro.infer.ReweightedWakeSleep(num_particles=k, insomnia=1.0, vectorize_particles=True,
                                         max_plate_nesting=1)
    pyro_theta, pyro_phi = rws.loss(gen.model, guide, x)
    assert theta.item() == pytest.approx(float(pyro_theta), rel=1e-5, abs=1e-5)
    assert phi.item() == pytest.approx(float(pyro_phi), rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("kind", ["vae", "sbn"])
def test_on_a_batch_renyi_is_per_image_but_pyro_rws_is_batch_joint(kind):
    """Why training uses RenyiELBO as is but rewrites RWS: on a batch of B images Pyro's
    RenyiELBO(alpha=0) is sum_n log mean_k w_nk, Pyro's RWS wake-theta loss is the joint
    log mean_k prod_n w_nk; our rws_losses are per image."""
    gen, guide, _ = _pair(kind)
    x = torch.bernoulli(torch.full((20, 16), 0.3), generator=torch.Generator().manual_seed(2))
    k = 10
    pyro.set_rng_seed(0)
    log_p, log_q = objectives.log_weights(gen.model, guide, x, k)
    lw = (log_p - log_q).detach()
    per_image = (torch.logsumexp(lw, 0) - math.log(k)).sum().item()
    joint = (torch.logsumexp(lw.sum(1), 0) - math.log(k)).item()
    assert per_image > joint + 1.0  # far apart at this batch size
    pyro.set_rng_seed(0)
    renyi = -pyro.infer.RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True,
                                  max_plate_nesting=1).loss(gen.model, guide, x)
    assert renyi == pytest.approx(per_image, rel=1e-5)
    pyro.set_rng_seed(0)
    pyro_theta, _ = pyro.infer.ReweightedWakeSleep(
        num_particles=k, vectorize_particles=True, max_plate_nesting=1).loss(gen.model, guide, x)
    assert -float(pyro_theta) == pytest.approx(joint, rel=1e-5)
    pyro.set_rng_seed(0)
    theta, _ = objectives.rws_losses(gen.model, guide, x, k)
    assert -theta.item() * x.shape[0] == pytest.approx(per_image, rel=1e-5)


def test_log_weights_names_a_model_without_the_images_plate():
    def model(x):
        z = pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))  # a global latent
        with pyro.plate("images", x.shape[0], dim=-1):
            pyro.sample("x", pyro.distributions.Normal(z.unsqueeze(-1), 1.0).to_event(1), obs=x)

    def guide(x):
        pyro.sample("z", pyro.distributions.Normal(0.0, 1.0))

    with pytest.raises(ValueError, match="images"):
        objectives.log_weights(model, guide, torch.zeros(3, 1), 4)


def test_rws_rejects_one_particle_and_bad_insomnia():
    gen, guide, x = _pair("vae")
    with pytest.raises(ValueError, match="num_particles"):
        objectives.rws_losses(gen.model, guide, x, 1)
    with pytest.raises(ValueError, match="insomnia"):
        objectives.rws_losses(gen.model, guide, x, 3, insomnia=1.5)
