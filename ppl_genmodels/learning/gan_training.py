"""One training step of the GAN (``ppl-genmodels train gan``, method ``gan``).

Per mini-batch x of B training images and z ~ N(0, I_L) (B draws), fakes f = sigmoid(G(z))
(with the model's ``straight_through``, D sees binary draws b ~ Bernoulli(f) in place of f,
with the gradient of f: Bengio et al. 2013):

1. discriminator: minimise BCE(D(x), 0.9) + BCE(D(f), 0) -- one-sided label smoothing
   (Salimans et al. 2016, "Improved techniques for training GANs", sec. 3.4);
2. generator: the non-saturating loss BCE(D(f), 1) = -log sigmoid(D(f)) (Goodfellow et al.
   2014, sec. 3), with Adam(lr, betas=(0.5, 0.999)) for both players (Radford et al. 2016);
3. sleep phase (Hinton et al. 1995) for the encoder q_phi(z | x): minimise
   -log q_phi(z | x~) on the fantasies x~ ~ Bernoulli(flip + (1 - 2 flip) f) of the same z,
   i.e. fit q to p_theta(z | x) in the KL(p || q) direction on the generator's own data.

All losses are nats (natural-log cross-entropies), averaged over the batch. Randomness comes
from torch's global generator only, whose state the trainer checkpoints: a resumed run
reproduces an uninterrupted one bit for bit (single-threaded CPU).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["GANOptimizers", "gan_step", "REAL_LABEL", "BETAS", "ENCODER_LR"]

REAL_LABEL = 0.9
"""Target of real images for the discriminator (one-sided label smoothing)."""
BETAS = (0.5, 0.999)
"""Adam betas of both players (Radford et al. 2016)."""
ENCODER_LR = 1e-3
"""Adam learning rate of the sleep-phase encoder."""


class GANOptimizers:
    """Adam for the discriminator, the generator (``lr``, :data:`BETAS`) and the encoder
    (:data:`ENCODER_LR`); ``state_dict``/``load_state_dict`` like a torch optimizer."""

    def __init__(self, gan, encoder, lr: float = 2e-4):
        self.d = torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=BETAS)
        self.g = torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=BETAS)
        self.e = torch.optim.Adam(encoder.parameters(), lr=ENCODER_LR)

    def state_dict(self) -> dict:
        return {"d": self.d.state_dict(), "g": self.g.state_dict(), "e": self.e.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        for key in ("d", "g", "e"):
            getattr(self, key).load_state_dict(state[key])


def gan_step(gan, encoder, x: torch.Tensor, optimizers: GANOptimizers) -> tuple[float, dict]:
    """One D step, one G step and one sleep-phase encoder step on the batch ``x`` ``(B, D)``.

    :returns: ``(generator loss, extras)``: the non-saturating generator loss (nats per
        image) and ``{"d_loss", "d_real", "d_fake", "sleep_loss"}`` (discriminator loss in
        nats, mean D probability on real and fake images, encoder loss -log q in nats).
    """
    b = x.shape[0]
    z = torch.randn(b, gan.latent_dim)
    fake = torch.sigmoid(gan.generator(z))
    shown = fake  # what D sees: the probabilities, or binary draws with straight-through gradients
    if gan.straight_through:
        shown = torch.bernoulli(fake.detach()) + fake - fake.detach()
    optimizers.d.zero_grad()
    d_real, d_fake = gan.discriminator(x), gan.discriminator(shown.detach())
    d_loss = (F.binary_cross_entropy_with_logits(d_real, torch.full_like(d_real, REAL_LABEL))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    d_loss.backward()
    optimizers.d.step()
    optimizers.g.zero_grad()
    d_on_fake = gan.discriminator(shown)
    g_loss = F.binary_cross_entropy_with_logits(d_on_fake, torch.ones_like(d_on_fake))
    g_loss.backward()
    optimizers.g.step()
    optimizers.e.zero_grad()
    with torch.no_grad():
        fantasies = torch.bernoulli(gan.flip + (1 - 2 * gan.flip) * fake.detach())
    loc, scale = encoder.params(fantasies)
    sleep = -torch.distributions.Normal(loc, scale).log_prob(z).sum(-1).mean()
    sleep.backward()
    optimizers.e.step()
    return g_loss.item(), {"d_loss": d_loss.item(), "d_real": torch.sigmoid(d_real).mean().item(),
                           "d_fake": torch.sigmoid(d_fake).mean().item(), "sleep_loss": sleep.item()}
