"""A generative adversarial network written as a Pyro model, so that p(z | x, theta) is defined.

Generator (an implicit model, Goodfellow et al. 2014) with an explicit observation model on top:

    z[n] ~ Normal(0, I_L)                                             L = latent_dim (default 64)
    p[n] = flip + (1 - 2 flip) * sigmoid(G_theta(z[n]))               pixel probabilities (D,)
    x[n] ~ Bernoulli(probs = p[n])                                    D = pixels (784 for MNIST)

``flip`` (default 0.05) is the probability that a binary pixel is flipped, i.e. the noise
of the observation model: the GAN itself is trained on binary draws from
Bernoulli(sigmoid(G(z))) with straight-through gradients (or on ``sigmoid(G(z))`` with
``straight_through=False``); the discriminator never sees the flip noise, which only makes
log p(x | z) finite for images the generator cannot reproduce exactly (without it, one wrong pixel of a saturated generator
costs ~infinite nats and p(z | x) has no density worth sampling). Its value is a stated
modelling choice, not learned.

Discriminator D_psi(x) -> logit of "x is a training image"; it is part of the module (saved
with theta) but not of the Pyro model. Training (:func:`ppl_genmodels.learning.gan_training`)
uses the non-saturating loss (Goodfellow et al. 2014, sec. 3): D minimises
BCE(D(x_real), 0.9) + BCE(D(x_fake), 0) (one-sided label smoothing, Salimans et al. 2016) and G
minimises BCE(D(x_fake), 1) = -log D(x_fake), x_fake the binary draws of G(z) above.

The amortized guide q_phi(z | x) is :class:`~.vae.Encoder` (Gaussian, MLP 2x200 tanh),
trained on the generator's fantasies (z, x) ~ p_theta: the sleep phase of wake-sleep
(Hinton et al. 1995), the half of wake-sleep a GAN extends in the "unified view" of Hu et al.
(2018, "On unifying deep generative models", ICLR). The per-image refit family is the
VAE's :class:`~.vae.LocalGaussianGuide`.

Architectures (``arch``):

- ``"dcgan"`` (default, square images with a side divisible by 4; Radford et al. 2016):
  with w = ``width`` (default 64) base channels, G = Linear(L, 2w (s/4)^2) + BatchNorm + ReLU,
  ConvTranspose(2w -> w, 4, 2, 1) + BatchNorm + ReLU, ConvTranspose(w -> 1, 4, 2, 1);
  D = Conv(1 -> w, 4, 2, 1) + LeakyReLU(0.2), Conv(w -> 2w, 4, 2, 1) + LeakyReLU(0.2), then a
  minibatch-standard-deviation feature (Karras et al. 2018, sec. 3) and Linear -> 1.
- ``"mlp"`` (any image size): G = L -> hidden -> 2 hidden -> D with BatchNorm + ReLU;
  D = D -> 2 hidden -> hidden with LeakyReLU(0.2), minibatch-sd feature, -> 1.

The generator's BatchNorm layers run in eval mode (running statistics) whenever theta is
frozen (``load_run`` puts the module in eval mode), so G is a deterministic function of z
and the Pyro model a proper density over z.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from .vae import Encoder, LocalGaussianGuide, local_guide

__all__ = ["ARCHS", "REPARAMETERIZED", "Generator", "Discriminator", "GAN", "build",
           "local_guide", "check_kwargs", "reference", "engine_config", "LocalGaussianGuide"]

ARCHS = ("dcgan", "mlp")
REPARAMETERIZED = True


def _side(pixels: int) -> int:
    side = math.isqrt(pixels)
    if side * side != pixels or side % 4:
        raise ValueError(f"gan: arch='dcgan' needs square images with a side divisible by 4; got "
                         f"{pixels} pixels (use arch='mlp')")
    return side


class Generator(nn.Module):
    """G_theta: z ``(..., L)`` -> logits ``(..., D)`` of the generator's pixel means."""

    def __init__(self, latent_dim: int, pixels: int, hidden: int = 256, arch: str = "dcgan",
                 width: int = 64):
        super().__init__()
        self.arch, self.pixels = arch, pixels
        if arch == "mlp":
            self.net = nn.Sequential(
                nn.Linear(latent_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                nn.Linear(hidden, 2 * hidden), nn.BatchNorm1d(2 * hidden), nn.ReLU(),
                nn.Linear(2 * hidden, pixels))
        else:
            self.side = _side(pixels)
            q, w = self.side // 4, width
            self.net = nn.Sequential(
                nn.Linear(latent_dim, 2 * w * q * q), nn.BatchNorm1d(2 * w * q * q), nn.ReLU(),
                nn.Unflatten(1, (2 * w, q, q)),
                nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),
                nn.ConvTranspose2d(w, 1, 4, 2, 1), nn.Flatten())

    def forward(self, z):
        batch = z.shape[:-1]
        return self.net(z.reshape(-1, z.shape[-1])).reshape(*batch, self.pixels)


class _MinibatchSD(nn.Module):
    """Appends one feature: the mean over features of the across-batch standard deviation
    (Karras et al. 2018, sec. 3), so that D can see a collapsed (too uniform) batch."""

    def forward(self, h):
        sd = h.std(0, unbiased=False).mean() if h.shape[0] > 1 else h.new_zeros(())
        return torch.cat([h, sd.expand(h.shape[0], 1)], 1)


class Discriminator(nn.Module):
    """D_psi: images ``(B, D)`` in [0, 1] -> logits ``(B,)`` of "is a training image"."""

    def __init__(self, pixels: int, hidden: int = 256, arch: str = "dcgan", width: int = 64):
        super().__init__()
        self.pixels = pixels
        if arch == "mlp":
            self.features = nn.Sequential(
                nn.Linear(pixels, 2 * hidden), nn.LeakyReLU(0.2),
                nn.Linear(2 * hidden, hidden), nn.LeakyReLU(0.2))
            width = hidden
        else:
            side = _side(pixels)
            q, w = side // 4, width
            self.features = nn.Sequential(
                nn.Unflatten(1, (1, side, side)),
                nn.Conv2d(1, w, 4, 2, 1), nn.LeakyReLU(0.2),
                nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten())
            hidden = 2 * w * q * q
        self.head = nn.Sequential(_MinibatchSD(), nn.Linear(hidden + 1, 1))

    def forward(self, x):
        return self.head(self.features(x.reshape(-1, self.pixels))).squeeze(-1)


class GAN(nn.Module):
    """Generator (theta), discriminator and the Pyro model p_theta(x, z); ``model(x)`` with
    x ``(B, D)`` in {0, 1}. See the module docstring for the observation model.

    :ivar latent_dim: L; :ivar flip: pixel-flip probability of the observation model.
    """

    def __init__(self, latent_dim: int, pixels: int, hidden: int = 256, arch: str = "dcgan",
                 flip: float = 0.05, width: int = 64, straight_through: bool = True):
        super().__init__()
        self.latent_dim, self.pixels, self.flip = latent_dim, pixels, float(flip)
        self.straight_through = bool(straight_through)
        self.generator = Generator(latent_dim, pixels, hidden, arch, width)
        self.discriminator = Discriminator(pixels, hidden, arch, width)

    def pixel_probs(self, z: torch.Tensor) -> torch.Tensor:
        """Observation probabilities ``flip + (1 - 2 flip) sigmoid(G(z))``, ``(..., D)``."""
        return self.flip + (1 - 2 * self.flip) * torch.sigmoid(self.generator(z))

    def model(self, x):
        pyro.module("generator", self.generator)
        prior = dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1)
        with pyro.plate("images", x.shape[-2], dim=-1):
            z = pyro.sample("z", prior)
            pyro.sample("x", dist.Bernoulli(probs=self.pixel_probs(z)).to_event(1), obs=x)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Generator means ``sigmoid(G(z))`` ``(..., D)`` in [0, 1] (no pixel noise)."""
        return torch.sigmoid(self.generator(z))

    @torch.no_grad()
    def sample_images(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Generator means of ``num`` samples z ~ N(0, I), ``(num, D)`` in [0, 1]."""
        z = torch.randn(num, self.latent_dim, generator=generator)
        return self.decode(z)

    @torch.no_grad()
    def reconstruct(self, encoder: Encoder, x: torch.Tensor) -> torch.Tensor:
        """Generator means at the encoder's mean latent, ``(B, D)``: "given x, find z", then G."""
        return self.decode(encoder.params(x)[0])


def check_kwargs(kwargs: dict) -> None:
    """Check ``build``'s keyword arguments before any data is read (the pixel count aside).

    :raises ValueError: an unknown keyword, unknown ``arch``, non-positive size or ``flip``
        outside (0, 0.5).
    """
    unknown = set(kwargs) - {"latent_dim", "hidden", "arch", "flip", "encoder_hidden", "width",
                             "straight_through"}
    if unknown:
        raise ValueError(f"gan: unknown option(s) {sorted(unknown)}")
    if kwargs.get("arch", "dcgan") not in ARCHS:
        raise ValueError(f"gan: arch must be one of {ARCHS}, got {kwargs['arch']!r}")
    for name in ("latent_dim", "hidden", "encoder_hidden", "width"):
        if name in kwargs and (not isinstance(kwargs[name], int) or kwargs[name] < 1):
            raise ValueError(f"gan: {name} must be a positive integer, got {kwargs[name]!r}")
    flip = kwargs.get("flip", 0.05)
    if not 0.0 < flip < 0.5:
        raise ValueError(f"gan: flip must be in (0, 0.5), got {flip}")


def build(pixels: int, latent_dim: int = 64, hidden: int = 256, arch: str = "dcgan",
          flip: float = 0.05, encoder_hidden: int = 200, width: int = 64,
          straight_through: bool = True):
    """``(GAN module, encoder)`` for ``pixels``-pixel images.

    :param flip: pixel-flip probability of the observation model, in (0, 0.5).
    :param hidden: MLP width (``arch="mlp"``); ``width``: base channels (``arch="dcgan"``).
    :param straight_through: the discriminator sees binary fakes x ~ Bernoulli(sigmoid(G(z)))
        with straight-through gradients (Bengio et al. 2013) instead of the probabilities, so
        that it cannot tell fakes from binary training images by their grey levels alone
        (default; without it, short CPU runs gave speckled, barely digit-like samples, and
        an MLP pair collapsed to the digit 1).
    :raises ValueError: unknown ``arch``, non-positive sizes, ``flip`` outside (0, 0.5), or
        ``dcgan`` on images that are not square with a side divisible by 4.
    """
    check_kwargs({"latent_dim": latent_dim, "hidden": hidden, "arch": arch, "flip": flip,
                  "encoder_hidden": encoder_hidden, "width": width})
    if pixels < 1:
        raise ValueError(f"gan: pixels must be positive, got {pixels}")
    if arch == "dcgan":
        _side(pixels)
    return (GAN(latent_dim, pixels, hidden, arch, flip, width, straight_through),
            Encoder(latent_dim, pixels, encoder_hidden, "mlp"))


def reference(posterior=None):
    """No closed form: distances are to NUTS."""
    return None


def engine_config(quick: bool = False) -> dict:
    """Budgets of the fixed-theta comparison (``compare gan --checkpoint RUN``)."""
    if quick:
        return {"svi": {"num_steps": 200, "lr": 0.01}, "rws": {"num_steps": 200, "lr": 0.01},
                "nuts": {"num_samples": 50, "warmup_steps": 50, "num_chains": 2},
                "amortized": {"num_draws": 200}}
    return {"svi": {"num_steps": 800, "lr": 0.01}, "rws": {"num_steps": 800, "lr": 0.01},
            "nuts": {"num_samples": 200, "warmup_steps": 200, "num_chains": 2},
            "amortized": {"num_draws": 1000}}
