"""Flow guides (ffg / iaf / spline): their log density is the change-of-variables density of
Pyro's transforms, and their draws agree with that density (importance weights on a
normalized closed-form target average to 1; a fitted flow recovers the target's moments)."""

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch

from ppl_genmodels import Posterior
from ppl_genmodels.infer import SVI
from ppl_genmodels.models import banana
from ppl_genmodels.models import vae_flows as vae
from ppl_genmodels.models.flows import auto_guide, flow_transforms, with_guide
from ppl_genmodels.models.vae_flows import FlowEncoder, flow_distribution, local_flow_guide

torch.set_default_dtype(torch.float32)


def _change_of_variables(transforms, base, eps):
    """log q(T(eps)) = log base(eps) - log|det dT/deps| by autograd, for one eps ``(D,)``."""
    def f(e):
        for t in transforms:
            e = t(e)
        return e
    jac = torch.autograd.functional.jacobian(f, eps)
    return base.log_prob(eps) - torch.linalg.slogdet(jac)[1], f(eps)


def _scramble(modules):
    """Random conditioner weights (a fresh flow is near the identity, a weak test)."""
    with torch.no_grad():
        for m in modules:
            for p in m.parameters():
                p.normal_(0.0, 0.3)


@pytest.mark.parametrize("kind", ["ffg", "iaf", "spline"])
def test_per_posterior_guide_density_is_the_transformed_density(kind):
    torch.manual_seed(1)
    guide = auto_guide(banana.model, kind)
    guide()  # set up: latent vector (x0, x1)
    _scramble([guide])
    base = dist.Normal(torch.zeros(2), torch.ones(2)).to_event(1)
    posterior = guide.get_posterior()
    transforms = ([dist.transforms.AffineTransform(posterior.base_dist.loc, posterior.base_dist.scale)]
                  if kind == "ffg" else list(guide.transform.parts))
    for seed in range(3):
        eps = torch.randn(2, generator=torch.Generator().manual_seed(seed))
        expected, z = _change_of_variables(transforms, base, eps)
        # The guide's own log q(z): condition its auxiliary latent site on z, sum its sites.
        aux = [n for n, s in poutine.trace(guide).get_trace().nodes.items()
               if s["type"] == "sample" and s["infer"].get("is_auxiliary")][0]
        trace = poutine.trace(poutine.condition(guide, {aux: z.detach()})).get_trace()
        # log q(z) inverts the flow: a float32 spline inverse is good to ~1e-3 nats
        tol = 2e-3 if kind == "spline" else 1e-4
        assert float(trace.log_prob_sum()) == pytest.approx(float(expected), abs=tol)
        if kind != "ffg":
            td = dist.TransformedDistribution(base, transforms)
            assert float(td.log_prob(z.detach())) == pytest.approx(float(expected), abs=tol)


@pytest.mark.parametrize("kind", ["iaf", "spline"])
def test_amortized_and_local_flow_density_is_the_transformed_density(kind):
    torch.manual_seed(2)
    latent, pixels = 3, 4
    encoder = FlowEncoder(latent, pixels, hidden=16, kind=kind)
    _scramble([encoder.flows])
    x = torch.bernoulli(torch.full((2, pixels), 0.5))
    loc, scale, h = encoder.features(x)
    for i in range(2):
        eps = torch.randn(latent)
        flows = [dist.transforms.AffineTransform(loc[i], scale[i])] + [
            f.condition(h[i]) for f in encoder.flows]
        base = dist.Normal(torch.zeros(latent), 1.0).to_event(1)
        expected, z = _change_of_variables(flows, base, eps)
        q = encoder.distribution(x)  # batch (2,), event (3,)
        z_batch = torch.zeros(2, latent)
        z_batch[i] = z.detach()
        assert float(q.log_prob(z_batch)[i]) == pytest.approx(float(expected), abs=1e-4)
    local = local_flow_guide(encoder, x)  # the refit starts at the encoder's q
    trace = poutine.trace(local).get_trace(x)
    z = trace.nodes["z"]["value"].detach()
    assert torch.allclose(trace.nodes["z"]["fn"].log_prob(z),
                          flow_distribution(loc, scale, h, encoder.flows).log_prob(z), atol=1e-4)


def test_fresh_local_flow_on_an_ffg_encoder_starts_at_its_gaussian():
    _, encoder = vae.build(4, latent_dim=3, hidden=8)
    x = torch.bernoulli(torch.full((2, 4), 0.5))
    local = vae.local_guide(encoder, x, "iaf")
    loc, scale = encoder.params(x)
    z = torch.randn(2, 3)
    trace = poutine.trace(local).get_trace(x)
    assert torch.allclose(trace.nodes["z"]["fn"].log_prob(z),
                          dist.Normal(loc, scale).to_event(1).log_prob(z), atol=1e-5)


MU = torch.tensor([1.0, -2.0, 0.5])
COV = torch.tensor([[1.0, 0.8, 0.0], [0.8, 1.0, 0.3], [0.0, 0.3, 0.5]])


def gaussian_target():
    """A normalized 3-D correlated Gaussian: log p(z) integrates to 0, so E_q[p/q] = 1."""
    pyro.sample("z", dist.MultivariateNormal(MU, COV))


@pytest.mark.parametrize("kind", ["ffg", "iaf", pytest.param("spline", marks=pytest.mark.slow)])
def test_fitted_guide_importance_weights_average_to_one(kind):
    posterior = Posterior(gaussian_target, None, {})
    posterior = with_guide(posterior, kind)
    result = SVI(num_steps=300, num_particles=4, lr=0.03, num_draws=4000).run(
        posterior, seed=0, progress=False)
    lw = result.idata.sample_stats["log_weight"].values.ravel()
    w = np.exp(lw)
    se = w.std(ddof=1) / math.sqrt(len(w))
    assert abs(w.mean() - 1.0) < 4 * se + 0.02, (w.mean(), se)  # E_q[p/q] = p(x) = 1
    if kind == "ffg":
        return  # mean field cannot hold the correlation; the weights above still average to 1
    z = result.idata.posterior["z"].values.reshape(-1, 3)
    sd = COV.diagonal().sqrt().numpy()
    # Monte Carlo tolerance: 5 sd / sqrt(n) plus a fitting allowance of 0.1 sd.
    assert np.all(np.abs(z.mean(0) - MU.numpy()) < 5 * sd / math.sqrt(len(z)) + 0.1 * sd)
    assert np.all(np.abs(z.std(0) / sd - 1) < 0.15)
    corr = np.corrcoef(z.T)[0, 1]
    assert corr == pytest.approx(0.8, abs=0.1)


def test_flow_transforms_rejects_unknown_kind():
    with pytest.raises(ValueError, match="flow kind"):
        flow_transforms("maf", 3)
    with pytest.raises(ValueError, match="guide must be one of"):
        auto_guide(banana.model, "maf")


def _made(layer):
    return layer.nn if hasattr(layer, "nn") else layer.arn  # conditional layers name it nn


@pytest.mark.parametrize("kind, context_dim", [("iaf", None), ("spline", None), ("iaf", 2), ("spline", 2)])
def test_alternate_order_reverses_each_layer(kind, context_dim):
    torch.manual_seed(0)
    layers = flow_transforms(kind, 5, num_flows=3, context_dim=context_dim, order="alternate")
    perms = [_made(layer).permutation.tolist() for layer in layers]
    assert perms == [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [0, 1, 2, 3, 4]]
    random = [_made(layer).permutation.tolist() for layer in flow_transforms(kind, 5, 3, context_dim=context_dim)]
    assert random != perms  # Pyro's default: random orders (seed 0)
    with pytest.raises(ValueError, match="order"):
        flow_transforms(kind, 5, order="sorted")


@pytest.mark.parametrize("kind", ["iaf", "spline"])
def test_student_t_base_density_is_the_transformed_density(kind):
    torch.manual_seed(3)
    guide = auto_guide(banana.model, kind, order="alternate", base_df=3.0)
    guide()
    _scramble([guide])
    transforms = list(guide.transform.parts)
    t_base = dist.StudentT(3.0, torch.zeros(2), torch.ones(2)).to_event(1)
    normal = dist.TransformedDistribution(dist.Normal(torch.zeros(2), 1.0).to_event(1), transforms)
    aux = [n for n, s in poutine.trace(guide).get_trace().nodes.items()
           if s["type"] == "sample" and s["infer"].get("is_auxiliary")][0]
    for eps in ([1.5, -2.0], [2.0, 2.5], [-2.5, 1.0]):  # where t and normal bases differ
        expected, z = _change_of_variables(transforms, t_base, torch.tensor(eps))
        trace = poutine.trace(poutine.condition(guide, {aux: z.detach()})).get_trace()
        # float32 spline inverse out there: 1e-3 nats
        assert float(trace.log_prob_sum()) == pytest.approx(float(expected), abs=1e-3)
        assert abs(float(normal.log_prob(z.detach())) - float(expected)) > 0.1  # negative control
    with pytest.raises(ValueError, match="base_df"):
        auto_guide(banana.model, kind, base_df=0.0)
