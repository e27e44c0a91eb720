"""Autoregressive models of binary images: exact likelihood, no latent variables.

Each model factorises an image x in {0, 1}^D in raster order (row by row, left to right):

    p_theta(x) = prod_i Bernoulli(x_i | sigmoid(f_theta(x_<i)_i))

so log p(x) is a sum of D per-pixel terms, computed exactly in one forward pass, and samples
are drawn ancestrally, one pixel after the other. As Pyro models they have **no latent
sites**: ``model(x)`` holds one observed site ``"x"`` (``Bernoulli(logits=f(x)).to_event(1)``
inside ``pyro.plate("images", B, dim=-1)``), whose logits are computed from ``x`` itself by a
network whose output i sees only inputs < i (the masking, tested by gradients).

- ``fvbn``: the logistic fully visible belief net (Frey 1998, *Graphical Models for Machine
  Learning and Digital Communication*, MIT Press; "FVSBN" in Larochelle & Murray 2011):
  f(x)_i = b_i + sum_{j<i} W_ij x_j, a strictly lower-triangular D x D weight matrix.
- ``made``: MADE (Germain, Gregor, Murray & Larochelle 2015, ICML): an MLP whose weights are
  masked so that output i depends on inputs < i; built on Pyro's
  :class:`pyro.nn.AutoRegressiveNN` (MADE masks, identity ordering, one hidden layer of 500
  ReLU units by default).
- ``pixelcnn``: a small gated PixelCNN (van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves &
  Kavukcuoglu 2016, "Conditional Image Generation with PixelCNN Decoders", NeurIPS): a
  vertical stack (rows above) and a horizontal stack (pixels to the left in the same row),
  which removes the blind spot of the original PixelCNN (van den Oord, Kalchbrenner &
  Kavukcuoglu 2016, "Pixel Recurrent Neural Networks", ICML); the first layer's masks are of
  type A (centre excluded), later ones of type B (centre included); gated tanh x sigmoid
  units, residual connections in the horizontal stack; Bernoulli output (binary pixels).

The guide of these models (:class:`NoLatents`) samples nothing, so the ELBO of
``pyro.infer.Trace_ELBO`` *is* log p(x), and the training method ``mle`` maximises it
(:func:`ppl_genmodels.learning.train`).
"""

from __future__ import annotations

import abc
import math

import pyro
import pyro.distributions as dist
import torch
from torch import nn
from torch.nn import functional as F

REPARAMETERIZED = True  # nothing to reparameterize; mle is the only training method
LATENT = False
"""No latent sites: the log-likelihood is exact, there is no posterior to infer."""


class NoLatents(nn.Module):
    """The guide of a model without latent sites: it samples nothing (``forward`` is a no-op).

    With it, Pyro's ``Trace_ELBO`` equals the exact log-likelihood log p(x)."""

    def forward(self, x, observations=None):
        return None


class AutoregressiveImageModel(nn.Module, abc.ABC):
    """Base class: subclasses define ``logits(x)`` ``(B, D) -> (B, D)`` whose column i depends
    only on ``x[:, :i]`` (raster order).

    :ivar pixels: D.
    """

    pixels: int

    @abc.abstractmethod
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` logits of every pixel given the pixels before it."""

    def _pixel_logits(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """``(B,)`` logits of pixel i given ``x[:, :i]`` (subclasses may crop the work)."""
        return self.logits(x)[:, i]

    def model(self, x: torch.Tensor) -> None:
        """Pyro model: one observed site ``"x"`` ``(B, D)``, no latent sites."""
        pyro.module(type(self).__name__.lower(), self)
        with pyro.plate("images", x.shape[-2], dim=-1):
            pyro.sample("x", dist.Bernoulli(logits=self.logits(x)).to_event(1), obs=x)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x), ``(B,)`` nats: the sum of the D per-pixel Bernoulli log-probabilities
        (``-binary_cross_entropy_with_logits``, the same value as the Pyro site's log_prob)."""
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(-1)

    @torch.no_grad()
    def complete(self, x: torch.Tensor, start: int = 0, generator: torch.Generator | None = None,
                 return_probs: bool = False):
        """Ancestral sampling of pixels ``start..D-1`` given ``x[:, :start]``.

        :param x: ``(B, D)`` images; pixels from ``start`` on are ignored (overwritten).
        :param generator: a CPU generator for the uniforms (reproducible samples).
        :returns: ``(B, D)`` sampled images in {0, 1}; with ``return_probs`` also the ``(B, D)``
            probabilities p(x_i = 1 | x_<i) used for each sampled pixel (NaN before ``start``).
        """
        x = x.clone()
        probs = torch.full_like(x, float("nan"))
        u = torch.rand(x.shape, generator=generator).to(x.device)
        for i in range(start, self.pixels):
            p = torch.sigmoid(self._pixel_logits(x, i))
            probs[:, i] = p
            x[:, i] = (u[:, i] < p).to(x.dtype)
        return (x, probs) if return_probs else x

    @torch.no_grad()
    def sample_images(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` ancestral samples, ``(num, D)`` in {0, 1} (D sequential network passes)."""
        device = next(self.parameters()).device
        return self.complete(torch.zeros(num, self.pixels, device=device), 0, generator)


class FVBN(AutoregressiveImageModel):
    """Logistic fully visible belief net (Frey 1998): ``logits_i = b_i + sum_{j<i} W[i, j] x_j``
    (W masked to its strictly lower triangle). Parameters: D^2 + D."""

    def __init__(self, pixels: int):
        super().__init__()
        self.pixels = pixels
        self.weight = nn.Parameter(torch.zeros(pixels, pixels))
        self.bias = nn.Parameter(torch.zeros(pixels))
        self.register_buffer("mask", torch.ones(pixels, pixels).tril(-1))

    def logits(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)

    @torch.no_grad()
    def complete(self, x, start=0, generator=None, return_probs=False):
        # Incremental: the logits of every later pixel are updated once per sampled pixel, O(D^2).
        x = x.clone()
        probs = torch.full_like(x, float("nan"))
        u = torch.rand(x.shape, generator=generator).to(x.device)
        w = self.weight * self.mask
        run = self.bias + x[:, :start] @ w[:, :start].T
        for i in range(start, self.pixels):
            p = torch.sigmoid(run[:, i])
            probs[:, i] = p
            x[:, i] = (u[:, i] < p).to(x.dtype)
            run = run + x[:, i: i + 1] * w[:, i]
        return (x, probs) if return_probs else x


def made_degrees(pixels: int, hidden: tuple[int, ...]) -> list[torch.Tensor]:
    """MADE's connectivity degrees (Germain et al. 2015, sec. 4): inputs 1..D in raster order,
    hidden unit k of each layer evenly spread over 1..D-1 (deterministic, not sampled), so a
    hidden unit of degree m sees inputs 1..m and feeds outputs m+1..D."""
    degrees = [torch.arange(1, pixels + 1)]
    for h in hidden:
        degrees.append(1 + (torch.arange(h) * (pixels - 1)) // h)
    return degrees


class MADE(AutoregressiveImageModel):
    """MADE (Germain et al. 2015) in raster order: an MLP (ReLU) of Pyro's masked linear layers
    (:class:`pyro.nn.auto_reg_nn.MaskedLinear`) with the degrees of :func:`made_degrees`;
    output i sees only inputs < i. ``hidden``: hidden layer sizes (default one of 500, as in
    the paper's MNIST models; Pyro's ``AutoRegressiveNN`` would need at least D units).
    """

    def __init__(self, pixels: int, hidden: tuple[int, ...] = (500,)):
        super().__init__()
        from pyro.nn.auto_reg_nn import MaskedLinear

        self.pixels = pixels
        deg = made_degrees(pixels, hidden)
        layers = [MaskedLinear(len(a), len(b), (b[:, None] >= a[None, :]).float())
                  for a, b in zip(deg[:-1], deg[1:])]
        layers.append(MaskedLinear(len(deg[-1]), pixels,
                                   (deg[0][:, None] > deg[-1][None, :]).float()))
        self.layers = nn.ModuleList(layers)

    def logits(self, x):
        h = x
        for layer in self.layers[:-1]:
            h = F.relu(layer(h))
        return self.layers[-1](h)


class MaskedConv2d(nn.Conv2d):
    """A 2-d convolution whose kernel is multiplied by a fixed 0/1 ``mask`` ``(kh, kw)``
    (same padding: output size = input size)."""

    def __init__(self, c_in: int, c_out: int, mask: torch.Tensor, dilation: int = 1):
        kh, kw = mask.shape
        super().__init__(c_in, c_out, (kh, kw), padding=(dilation * (kh - 1) // 2,
                                                          dilation * (kw - 1) // 2),
                         dilation=dilation)
        self.register_buffer("mask", mask.to(torch.get_default_dtype())[None, None])

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def vertical_mask(k: int, kind: str) -> torch.Tensor:
    """``(k, k)`` mask of the vertical stack: rows above the centre (type ``"A"``) or rows up
    to and including the centre row (type ``"B"``)."""
    mask = torch.ones(k, k)
    mask[k // 2 + (1 if kind == "B" else 0):] = 0
    return mask


def horizontal_mask(k: int, kind: str) -> torch.Tensor:
    """``(1, k)`` mask of the horizontal stack: pixels left of the centre (``"A"``), or the
    centre too (``"B"``)."""
    mask = torch.ones(1, k)
    mask[0, k // 2 + (1 if kind == "B" else 0):] = 0
    return mask


class GatedLayer(nn.Module):
    """One gated PixelCNN layer (van den Oord et al. 2016, fig. 2), type-B masks:
    v' = tanh(V_f * v) . sigmoid(V_g * v);  h' = h + 1x1(tanh(.) . sigmoid(.)) of
    (H * h + 1x1(V * v))."""

    def __init__(self, channels: int, kernel: int = 3, dilation: int = 1):
        super().__init__()
        c = channels
        self.v = MaskedConv2d(c, 2 * c, vertical_mask(kernel, "B"), dilation)
        self.h = MaskedConv2d(c, 2 * c, horizontal_mask(kernel, "B"), dilation)
        self.v_to_h = nn.Conv2d(2 * c, 2 * c, 1)
        self.h_out = nn.Conv2d(c, c, 1)

    def forward(self, v, h):
        fv = self.v(v)
        a, b = fv.chunk(2, dim=1)
        v_new = torch.tanh(a) * torch.sigmoid(b)
        fh = self.h(h) + self.v_to_h(fv)
        a, b = fh.chunk(2, dim=1)
        return v_new, h + self.h_out(torch.tanh(a) * torch.sigmoid(b))


class PixelCNN(AutoregressiveImageModel):
    """A small gated PixelCNN for square binary images (van den Oord et al. 2016).

    Input layer: type-A masked vertical (k x k) and horizontal (1 x k) convolutions; then
    ``layers`` :class:`GatedLayer` s (type B; dilations cycle 1, 2, 1, 2, ... to widen the
    receptive field cheaply); output: ELU, 1x1 convolution to one logit per pixel.

    :param channels: feature maps per stack (default 16: small enough for a CPU).
    :param layers: gated layers (default 4).
    :param kernel: odd kernel size (default 3; the input layer uses ``kernel + 2``).
    """

    def __init__(self, pixels: int, channels: int = 16, layers: int = 4, kernel: int = 3):
        super().__init__()
        self.pixels, self.side = pixels, math.isqrt(pixels)
        k0 = kernel + 2
        self.v_in = MaskedConv2d(1, channels, vertical_mask(k0, "A"))
        self.h_in = MaskedConv2d(1, channels, horizontal_mask(k0, "A"))
        self.gated = nn.ModuleList(GatedLayer(channels, kernel, 1 + (i % 2)) for i in range(layers))
        self.out = nn.Conv2d(channels, 1, 1)

    def _logits_image(self, img):
        v, h = self.v_in(img), self.h_in(img)
        for layer in self.gated:
            v, h = layer(v, h)
        return self.out(F.elu(h))

    def logits(self, x):
        img = x.reshape(-1, 1, self.side, self.side)
        return self._logits_image(img).reshape(x.shape)

    def _pixel_logits(self, x, i):
        # Outputs in rows <= r depend only on rows <= r: crop the image below the pixel's row.
        r, c = divmod(i, self.side)
        img = x.reshape(-1, 1, self.side, self.side)[:, :, : r + 1]
        return self._logits_image(img)[:, 0, r, c]


MODELS = {"fvbn": FVBN, "made": MADE, "pixelcnn": PixelCNN}


def build(pixels: int, kind: str, **kwargs):
    """``(model module, NoLatents())`` for ``pixels``-pixel images.

    :param kind: ``"fvbn"``, ``"made"`` (``hidden=(500,)``) or ``"pixelcnn"`` (``channels=16,
        layers=4, kernel=3``; square images only).
    :raises ValueError: unknown kind or keyword, non-positive sizes, a non-square image for
        pixelcnn, an even kernel.
    """
    if kind not in MODELS:
        raise ValueError(f"unknown autoregressive model {kind!r}; known: {list(MODELS)}")
    allowed = {"fvbn": set(), "made": {"hidden"}, "pixelcnn": {"channels", "layers", "kernel"}}[kind]
    bad = set(kwargs) - allowed
    if bad:
        raise ValueError(f"{kind}: unknown option(s) {sorted(bad)}; allowed: {sorted(allowed)}")
    if pixels < 2:
        raise ValueError(f"{kind}: needs at least 2 pixels, got {pixels}")
    if kind == "made":
        hidden = tuple(int(h) for h in kwargs.get("hidden", (500,)))
        if not hidden or min(hidden) < 1:
            raise ValueError(f"made: hidden sizes must be positive, got {hidden}")
        return MADE(pixels, hidden), NoLatents()
    if kind == "pixelcnn":
        side = math.isqrt(pixels)
        if side * side != pixels:
            raise ValueError(f"pixelcnn needs square images, got {pixels} pixels")
        channels, layers = int(kwargs.get("channels", 16)), int(kwargs.get("layers", 4))
        kernel = int(kwargs.get("kernel", 3))
        if channels < 1 or layers < 0 or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"pixelcnn: channels >= 1, layers >= 0 and an odd kernel needed; got "
                             f"channels={channels}, layers={layers}, kernel={kernel}")
        return PixelCNN(pixels, channels, layers, kernel), NoLatents()
    return FVBN(pixels), NoLatents()


def local_guide(encoder, x):
    """:raises ValueError: always -- these models have no latent variables to refit."""
    raise ValueError("autoregressive models have no latent variables: there is no posterior to "
                     "approximate (their log-likelihood is exact)")


def reference(posterior=None):
    """No posterior, no reference."""
    return None


def engine_config(quick: bool = False) -> dict:
    """No inference engines apply (no latent sites)."""
    return {}
