"""Per-image training objectives for models with one latent block per image.

Every model here has the form p_theta(x, z) = prod_n p(z_n) p(x_n | z_n) with an amortized
guide q_phi(z | x) = prod_n q(z_n | x_n): the images sit in a ``pyro.plate("images", B,
dim=-1)`` and there are no global latents (theta is a point estimate). The data-set
objective is then a sum over images, and the correct mini-batch objective is the batch's
sum scaled by N/B; we use the per-image mean (the same up to the constant N, which Adam's
steps ignore), so losses are in **nats per image** whatever the batch size.

Pyro's ``RenyiELBO(alpha=0)`` (the IWAE bound) already does this: it sums each site's
log-density only over plates that do not hold every site (``get_dependent_plate_dims``), so
the log-mean-exp over particles is taken per image and the images are summed afterwards;
training uses it unchanged. Pyro's ``ReweightedWakeSleep`` does not: it sums every site of a
particle (``site["log_prob"].reshape(num_particles, -1).sum(-1)`` in ``rws.py``) before
normalising, so a batch of B images gets the joint weights prod_n w_nk. Its wake-theta loss
is then the joint bound log (1/K) sum_k prod_n w_nk, valid but collapsing towards the ELBO
as B grows, and its self-normalised wake-phi weights degenerate onto one particle. The
functions below keep the image dimension: :func:`log_weights` returns ``(K, B)`` and RWS's
log-mean-exp and weight normalisation are taken per image. For B = 1 they equal Pyro's losses (tested).
"""

from __future__ import annotations

import math

import pyro
import torch
from pyro import poutine

__all__ = [
    "log_weights",
    "elbo_loss",
    "rws_losses",
    "wake_sleep_losses",
    "sleep_phi_loss",
]


def _site_log_probs(trace) -> torch.Tensor:
    total = 0.0
    for site in trace.nodes.values():
        if site["type"] == "sample":
            total = total + site["fn"].log_prob(site["value"])
    return total


def log_weights(model, guide, x: torch.Tensor, num_particles: int, detach_latents: bool = False):
    """Per-image log p(x_n, z_nk) and log q(z_nk | x_n) for z_nk ~ q(. | x_n).

    Particles are vectorized with ``pyro.plate("particles", K, dim=-2)`` outside the
    images plate (dim -1), as Pyro's ``vectorize_particles`` does.

    :param x: ``(B, D)`` images.
    :param detach_latents: stop gradients through the sampled z (score-function and
        wake-sleep estimators treat samples as data).
    :returns: ``(log_p, log_q)``, each ``(K, B)`` in nats.
    :raises ValueError: ``num_particles < 1``, or a site's log-density does not have the
        ``(K, B)`` shape (the model/guide does not use the images plate at dim -1).
    """
    if num_particles < 1:
        raise ValueError(f"num_particles must be >= 1, got {num_particles}")
    with pyro.plate("particles", num_particles, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(x)
        if detach_latents:
            guide_trace.detach_()
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    log_p, log_q = _site_log_probs(model_trace), _site_log_probs(guide_trace)
    shape = (num_particles, x.shape[-2])
    for name, value in (("log p(x, z)", log_p), ("log q(z | x)", log_q)):
        if not isinstance(value, torch.Tensor) or value.shape != shape:
            got = getattr(value, "shape", "a scalar")
            raise ValueError(f"{name} has shape {tuple(got) if got != 'a scalar' else got}, "
                             f"expected (num_particles, images) = {shape}: put every latent "
                             "and x in pyro.plate('images', B, dim=-1) with .to_event() dims")
    return log_p, log_q


def _logmeanexp(log_w: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def elbo_loss(model, guide, x, num_particles: int = 1) -> torch.Tensor:
    """Negative ELBO per image (reparameterized gradient; Kingma & Welling 2014), nats."""
    log_p, log_q = log_weights(model, guide, x, num_particles)
    return -(log_p - log_q).mean()


def sleep_phi_loss(model, guide, x, num_fantasies: int | None = None) -> torch.Tensor:
    """Sleep-phase loss: ``-mean log q(z | x~)`` over fantasies (z, x~) ~ p_theta, nats.

    Fantasies are drawn with ``poutine.uncondition`` (``num_fantasies`` of them, default
    the batch size of ``x``, whose values are then ignored); theta gets no gradient.
    """
    n = x.shape[-2] if num_fantasies is None else num_fantasies
    template = x.new_zeros(n, x.shape[-1])
    with torch.no_grad():
        fantasy = poutine.trace(poutine.uncondition(model)).get_trace(template)
    fantasy.detach_()
    x_sim = fantasy.nodes["x"]["value"]
    guide_trace = poutine.trace(poutine.condition(guide, data={
        k: s["value"] for k, s in fantasy.nodes.items()
        if s["type"] == "sample" and not s["is_observed"] and k != "x"
    })).get_trace(x_sim)
    return -_site_log_probs(guide_trace).mean()


def rws_losses(model, guide, x, num_particles: int, insomnia: float = 1.0):
    """Reweighted wake-sleep (Bornschein & Bengio 2015; Le et al. 2019), per image, nats.

    - wake-theta: ``-mean_n log (1/K) sum_k w_nk`` with w = p(x, z) / q(z | x) and q
      detached (gradient for theta only);
    - wake-phi: ``-mean_n sum_k wbar_nk log q(z_nk | x_n)`` with weights self-normalised
      per image and detached;
    - phi loss = ``insomnia * wake-phi + (1 - insomnia) * sleep-phi``
      (:func:`sleep_phi_loss`).

    Samples are detached (the estimator treats them as data, so it works for discrete z).
    :returns: ``(wake_theta_loss, phi_loss)``; their sum is the surrogate to differentiate.
    :raises ValueError: ``num_particles < 2`` (use :func:`wake_sleep_losses`) or
        ``insomnia`` outside [0, 1].
    """
    if num_particles < 2:
        raise ValueError(f"rws needs num_particles >= 2, got {num_particles}")
    if not 0.0 <= insomnia <= 1.0:
        raise ValueError(f"insomnia must be in [0, 1], got {insomnia}")
    log_p, log_q = log_weights(model, guide, x, num_particles, detach_latents=True)
    log_w = log_p - log_q.detach()
    wake_theta = -_logmeanexp(log_w).mean()
    phi = 0.0
    if insomnia > 0:
        weights = torch.softmax(log_w.detach(), dim=0)
        phi = insomnia * -(weights * log_q).sum(0).mean()
    if insomnia < 1:
        phi = phi + (1.0 - insomnia) * sleep_phi_loss(model, guide, x)
    return wake_theta, phi


def wake_sleep_losses(model, guide, x):
    """Classic wake-sleep (Hinton et al. 1995), per image, nats.

    - wake-theta: ``-mean_n log p(x_n, z_n)`` with one z_n ~ q(. | x_n), detached;
    - sleep-phi: :func:`sleep_phi_loss` on one fantasy per image.

    Written on Pyro's primitives because ``pyro.infer.ReweightedWakeSleep`` asserts
    ``num_particles > 1`` (its K = 1, insomnia = 0 case would be exactly this).
    :returns: ``(wake_theta_loss, sleep_phi_loss, neg_elbo)``: the last is the single-sample
        negative ELBO per image, for monitoring only (no gradient).
    """
    log_p, log_q = log_weights(model, guide, x, 1, detach_latents=True)
    wake_theta = -log_p.mean()
    sleep = sleep_phi_loss(model, guide, x)
    return wake_theta, sleep, -(log_p - log_q).mean().detach()
