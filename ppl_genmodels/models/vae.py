"""Variational autoencoder for binary images (Kingma & Welling 2014; Rezende et al. 2014).

    z[n] ~ Normal(0, I_L)                                   L = latent_dim (default 50)
    x[n] ~ Bernoulli(logits = decoder_theta(z[n]))          D = pixels (784 for MNIST)

Guide (amortized encoder phi): q(z[n] | x[n]) = Normal(loc_phi(x[n]), diag(scale_phi(x[n])^2)).

``arch="mlp"`` is the one-stochastic-layer architecture of the IWAE paper (Burda, Grosse &
Salakhutdinov 2016, sec. 5): encoder and decoder each two deterministic layers of 200 tanh
units, 50 Gaussian latents. ``arch="conv"`` is a small convolutional variant for square
images (two stride-2 4x4 convolutions of 32 channels, mirrored by transposed convolutions).

The generative parameters theta are learned by :func:`ppl_genmodels.train` (methods svi,
iwae, rws, wake_sleep); the comparison at fixed theta (``ppl-genmodels compare vae
--checkpoint RUN_DIR``) targets p(z | x, theta) of a batch of test images.
"""

from __future__ import annotations

import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn

ARCHS = ("mlp", "conv")
REPARAMETERIZED = True


def _side(pixels: int) -> int:
    side = math.isqrt(pixels)
    if side * side != pixels or side % 4:
        raise ValueError(f"arch='conv' needs square images with a side divisible by 4; "
                         f"got {pixels} pixels")
    return side


class Decoder(nn.Module):
    """theta: z ``(..., L)`` -> Bernoulli logits ``(..., D)``."""

    def __init__(self, latent_dim: int, pixels: int, hidden: int = 200, arch: str = "mlp"):
        super().__init__()
        self.arch, self.pixels = arch, pixels
        if arch == "mlp":
            self.net = nn.Sequential(
                nn.Linear(latent_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                nn.Linear(hidden, pixels),
            )
        else:
            self.side = _side(pixels)
            q = self.side // 4
            self.fc = nn.Sequential(nn.Linear(latent_dim, 32 * q * q), nn.ReLU())
            self.net = nn.Sequential(
                nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1)
            )

    def forward(self, z):
        if self.arch == "mlp":
            return self.net(z)
        batch = z.shape[:-1]
        q = self.side // 4
        h = self.fc(z.reshape(-1, z.shape[-1])).reshape(-1, 32, q, q)
        return self.net(h).reshape(*batch, self.pixels)


class Encoder(nn.Module):
    """Amortized guide q(z[n] | x[n]); ``forward(x)`` with x ``(B, D)`` in {0, 1}.

    Accepts ``observations=`` (Pyro's reweighted wake-sleep passes simulated x that way).
    """

    def __init__(self, latent_dim: int, pixels: int, hidden: int = 200, arch: str = "mlp"):
        super().__init__()
        self.latent_dim, self.arch, self.pixels = latent_dim, arch, pixels
        if arch == "mlp":
            self.net = nn.Sequential(
                nn.Linear(pixels, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                nn.Linear(hidden, 2 * latent_dim),
            )
        else:
            self.side = _side(pixels)
            q = self.side // 4
            self.net = nn.Sequential(
                nn.Unflatten(-1, (1, self.side, self.side)),
                nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
                nn.Flatten(), nn.Linear(32 * q * q, 2 * latent_dim),
            )

    def params(self, x):
        """``(loc, scale)`` of q(z | x), each ``(..., L)``."""
        batch = x.shape[:-1]
        out = self.net(x.reshape(-1, self.pixels)).reshape(*batch, 2 * self.latent_dim)
        loc, raw = out[..., : self.latent_dim], out[..., self.latent_dim:]
        return loc, nn.functional.softplus(raw) + 1e-4

    def forward(self, x, observations=None):
        if observations is not None:
            x = observations["x"]
        pyro.module("encoder", self)
        loc, scale = self.params(x)
        with pyro.plate("images", x.shape[-2], dim=-1):
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


class VAE(nn.Module):
    """The generative model p_theta(x, z); ``model(x)`` with x ``(B, D)``."""

    def __init__(self, latent_dim: int, pixels: int, hidden: int = 200, arch: str = "mlp"):
        super().__init__()
        self.latent_dim = latent_dim
        self.decoder = Decoder(latent_dim, pixels, hidden, arch)

    @property
    def dims(self) -> dict[str, list[str]]:
        """ArviZ dims of the sites (``Posterior(dims=...)``): ``z`` over ``(image, latent)``,
        ``x`` over ``(image, pixel)``."""
        return {"z": ["image", "latent"], "x": ["image", "pixel"]}

    def model(self, x):
        pyro.module("decoder", self.decoder)
        prior = dist.Normal(x.new_zeros(self.latent_dim), 1.0).to_event(1)
        with pyro.plate("images", x.shape[-2], dim=-1):
            z = pyro.sample("z", prior)
            pyro.sample("x", dist.Bernoulli(logits=self.decoder(z)).to_event(1), obs=x)

    @torch.no_grad()
    def sample_images(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities of ``num`` ancestral samples, ``(num, D)`` in [0, 1]."""
        z = torch.randn(num, self.latent_dim, generator=generator)
        return torch.sigmoid(self.decoder(z))

    @torch.no_grad()
    def reconstruct(self, encoder: Encoder, x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities at the encoder's mean latent, ``(B, D)``."""
        return torch.sigmoid(self.decoder(encoder.params(x)[0]))


def build(pixels: int, latent_dim: int = 50, hidden: int = 200, arch: str = "mlp"):
    """``(generative module, encoder)`` for ``pixels``-pixel images.

    :raises ValueError: unknown ``arch``, non-positive sizes, or conv on a non-square image.
    """
    if arch not in ARCHS:
        raise ValueError(f"vae: arch must be one of {ARCHS}, got {arch!r}")
    if min(pixels, latent_dim, hidden) < 1:
        raise ValueError(f"vae: sizes must be positive (pixels={pixels}, latent_dim={latent_dim}, "
                         f"hidden={hidden})")
    return VAE(latent_dim, pixels, hidden, arch), Encoder(latent_dim, pixels, hidden, arch)


class LocalGaussianGuide(nn.Module):
    """Non-amortized q(z[i]) = Normal(loc[i], diag(scale[i]^2)): its own parameters per image.

    :param loc: ``(B, L)`` initial means (e.g. the encoder's output for the same images).
    :param scale: ``(B, L)`` initial standard deviations, > 0.
    """

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.loc = nn.Parameter(loc.detach().clone())
        self.raw_scale = nn.Parameter(torch.log(torch.expm1(scale.detach().clone())))

    def forward(self, x, observations=None):
        pyro.module("local_guide", self)
        with pyro.plate("images", self.loc.shape[0], dim=-1):
            pyro.sample("z", dist.Normal(self.loc, nn.functional.softplus(self.raw_scale)).to_event(1))


def local_guide(encoder: Encoder, x: torch.Tensor) -> LocalGaussianGuide:
    """The per-image (non-amortized) guide family, initialised at ``encoder``'s q(z | x) for
    the images ``x`` ``(B, D)``: the refit q* of Cremer, Li & Duvenaud (2018)."""
    with torch.no_grad():
        return LocalGaussianGuide(*encoder.params(x))


def reference(posterior=None):
    """No closed form: distances are to NUTS."""
    return None


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 200}, "rws": {"num_steps": 200},
                "nuts": {"num_samples": 100, "warmup_steps": 100}}
    return {"svi": {"num_steps": 1500, "lr": 0.01}, "rws": {"num_steps": 1500, "lr": 0.01},
            "nuts": {"num_samples": 400, "warmup_steps": 400}}
