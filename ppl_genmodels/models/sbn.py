"""Sigmoid belief net (Neal 1992) with an amortized Bernoulli recognition net.

Layers top-down, sizes ``layers = (H_1, ..., H_T)`` (default (200, 200), as in Bornschein &
Bengio 2015, "Reweighted Wake-Sleep", ICLR), h_1 nearest the pixels:

    h_T[n]  ~ Bernoulli(sigmoid(b_T))
    h_t[n]  ~ Bernoulli(sigmoid(W_t h_{t+1}[n] + b_t)),   t = T-1..1
    x[n]    ~ Bernoulli(sigmoid(W_0 h_1[n] + b_0))

Guide (recognition model, the same layered form bottom-up): q(h_1 | x) q(h_2 | h_1) ...,
each Bernoulli(sigmoid(V_t h_{t-1} + c_t)) with h_0 = x. Trained by wake-sleep this pair is
the Helmholtz machine (Hinton, Dayan, Frey & Neal 1995; Dayan et al. 1995).

The latents are discrete: Gaussian-reparameterized objectives (IWAE) and NUTS do not apply.
Score-function training uses ``nvil``: Pyro's ``TraceGraph_ELBO`` with an input-dependent
neural baseline per layer (Mnih & Gregor 2014; ``infer={"baseline": {"nn_baseline": ...}}``).
"""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from torch import nn

REPARAMETERIZED = False


class SBN(nn.Module):
    """The generative model p_theta(x, h); ``model(x)`` with x ``(B, D)`` in {0, 1}."""

    def __init__(self, layers: tuple[int, ...], pixels: int):
        super().__init__()
        self.layers = tuple(layers)
        self.top_logits = nn.Parameter(torch.zeros(self.layers[-1]))
        # down[t] maps h_{t+1} -> logits of h_t (t = 0 is the pixels).
        sizes = (pixels,) + self.layers
        self.down = nn.ModuleList(nn.Linear(sizes[t + 1], sizes[t]) for t in range(len(self.layers)))

    @property
    def dims(self) -> dict[str, list[str]]:
        """ArviZ dims of the sites (``Posterior(dims=...)``): ``h{t}`` over ``(image,
        unit_h{t})``, ``x`` over ``(image, pixel)``."""
        return {"x": ["image", "pixel"],
                **{f"h{t}": ["image", f"unit_h{t}"] for t in range(1, len(self.layers) + 1)}}

    def model(self, x):
        pyro.module("sbn", self)
        with pyro.plate("images", x.shape[-2], dim=-1):
            h = pyro.sample(f"h{len(self.layers)}", dist.Bernoulli(logits=self.top_logits).to_event(1))
            for t in range(len(self.layers) - 1, 0, -1):
                h = pyro.sample(f"h{t}", dist.Bernoulli(logits=self.down[t](h)).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=self.down[0](h)).to_event(1), obs=x)

    @torch.no_grad()
    def sample_images(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel probabilities given ancestral samples of the latents, ``(num, D)``."""
        h = torch.bernoulli(torch.sigmoid(self.top_logits).expand(num, -1), generator=generator)
        for t in range(len(self.layers) - 1, 0, -1):
            h = torch.bernoulli(torch.sigmoid(self.down[t](h)), generator=generator)
        return torch.sigmoid(self.down[0](h))

    @torch.no_grad()
    def reconstruct(self, encoder: "Encoder", x: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities at h_1 = (q(h_1 | x) > 0.5), ``(B, D)``."""
        h1 = (torch.sigmoid(encoder.up[0](x)) > 0.5).to(x.dtype)
        return torch.sigmoid(self.down[0](h1))


class Encoder(nn.Module):
    """Recognition model q(h | x); ``forward(x)`` with x ``(B, D)``.

    :param baselines: add NVIL's input-dependent baselines (an MLP of x, 100 tanh units, per
        layer) to each site's ``infer`` dict; ``TraceGraph_ELBO`` fits them by least squares
        to the downstream cost. Ignored by every other objective.
    """

    def __init__(self, layers: tuple[int, ...], pixels: int, baselines: bool = False):
        super().__init__()
        self.layers = tuple(layers)
        sizes = (pixels,) + self.layers
        self.up = nn.ModuleList(nn.Linear(sizes[t], sizes[t + 1]) for t in range(len(self.layers)))
        self.baselines = nn.ModuleList(
            nn.Sequential(nn.Linear(pixels, 100), nn.Tanh(), nn.Linear(100, 1)) for _ in self.layers
        ) if baselines else None

    def forward(self, x, observations=None):
        if observations is not None:
            x = observations["x"]
        pyro.module("encoder", self)
        h = x
        with pyro.plate("images", x.shape[-2], dim=-1):
            for t, layer in enumerate(self.up):
                infer = {}
                if self.baselines is not None:
                    net = self.baselines[t]
                    infer = {"baseline": {"nn_baseline": lambda inp, net=net: net(inp).squeeze(-1),
                                          "nn_baseline_input": x}}
                h = pyro.sample(f"h{t + 1}", dist.Bernoulli(logits=layer(h)).to_event(1), infer=infer)


def build(pixels: int, layers: tuple[int, ...] | list[int] = (200, 200), baselines: bool = False):
    """``(generative module, encoder)`` for ``pixels``-pixel images.

    :raises ValueError: empty ``layers`` or a non-positive size.
    """
    layers = tuple(int(h) for h in layers)
    if not layers or min(layers) < 1 or pixels < 1:
        raise ValueError(f"sbn: layers must be positive sizes, got {layers} (pixels={pixels})")
    return SBN(layers, pixels), Encoder(layers, pixels, baselines)


class LocalBernoulliGuide(nn.Module):
    """Non-amortized mean-field q(h[i]) = prod_t Bernoulli(sigmoid(logits_t[i])) per image.

    :param logits: one ``(B, H_t)`` tensor of initial logits per layer, bottom up.
    """

    def __init__(self, logits: list[torch.Tensor]):
        super().__init__()
        self.logits = nn.ParameterList(nn.Parameter(t.detach().clone()) for t in logits)

    def forward(self, x, observations=None):
        pyro.module("local_guide", self)
        with pyro.plate("images", self.logits[0].shape[0], dim=-1):
            for t, logits in enumerate(self.logits):
                pyro.sample(f"h{t + 1}", dist.Bernoulli(logits=logits).to_event(1))


def local_guide(encoder: Encoder, x: torch.Tensor) -> LocalBernoulliGuide:
    """The per-image (non-amortized) guide family for the images ``x`` ``(B, D)``, initialised
    by running the recognition net on its mean activations: logits_t = V_t sigmoid(logits_{t-1})
    + c_t, with sigmoid(logits_0) replaced by x."""
    with torch.no_grad():
        logits, h = [], x
        for layer in encoder.up:
            logits.append(layer(h))
            h = torch.sigmoid(logits[-1])
        return LocalBernoulliGuide(logits)


def reference(posterior=None):
    """No reference: NUTS cannot sample binary latents; distances are to none."""
    return None


def engine_config(quick: bool = False) -> dict:
    steps = 200 if quick else 1500
    return {"svi": {"num_steps": steps, "lr": 0.01}, "rws": {"num_steps": steps, "lr": 0.01}}
