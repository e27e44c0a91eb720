"""Flow guides for the VAE: an amortized IAF / spline encoder and the per-image flow refit.

Amortized (Kingma et al. 2016, "Improved variational inference with inverse autoregressive
flow", sec. 4): the encoder MLP maps x ``(B, D)`` to the base Gaussian's ``loc``, ``scale``
``(B, L)`` and a context ``h`` ``(B, C)``; then

    z0 = loc + scale * eps,  eps ~ N(0, I_L);   z = f_K( ... f_1(z0; h) ...; h)

with f_k Pyro's conditional autoregressive flows (``T.conditional_affine_autoregressive``
for ``iaf``, ``T.conditional_spline_autoregressive`` for ``spline``), built by
:func:`ppl_genmodels.models.flows.flow_transforms` with ``context_dim=C``. The density is
that of ``dist.ConditionalTransformedDistribution(Normal(loc, scale), flows).condition(h)``,
i.e. a ``TransformedDistribution`` (change of variables, nats).

Per-image refit (the q* of Cremer, Li & Duvenaud 2018 for this family):
:class:`LocalFlowGuide` gives every image its own ``loc``, ``scale`` and context ``h``
(initialised at the encoder's output) and refits them together with the flow weights,
which are shared by the images of the batch (initialised at the encoder's flows; for an
FFG encoder, fresh flows whose last layer is zeroed so that they start at the identity).
Sharing the flow weights keeps the refit cheap; each image's ELBO is still an ELBO of that
image, so the approximation gap it gives is an upper bound on that of the family.

This module is the registry's ``vae`` model module: it re-exports :mod:`.vae` and adds the
``guide=`` choice to :func:`build` and the ``family=`` choice to :func:`local_guide`.
"""

from __future__ import annotations

import copy

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from . import vae
from .flows import FLOW_FAMILIES, flow_transforms
from .vae import ARCHS, REPARAMETERIZED, VAE, Encoder, LocalGaussianGuide, engine_config, reference

__all__ = ["FlowEncoder", "LocalFlowGuide", "flow_distribution", "local_flow_guide", "build",
           "local_guide", "ARCHS", "REPARAMETERIZED", "VAE", "Encoder", "LocalGaussianGuide",
           "engine_config", "reference"]


def flow_distribution(loc, scale, context, flows) -> dist.TransformedDistribution:
    """q(z | x) = ``ConditionalTransformedDistribution(Normal(loc, scale).to_event(1), flows)
    .condition(context)``: batch shape ``loc.shape[:-1]``, event shape ``(L,)``.

    :param loc, scale: ``(..., L)`` base Gaussian; ``context``: ``(..., C)``.
    """
    base = dist.Normal(loc, scale).to_event(1)
    return dist.ConditionalTransformedDistribution(base, list(flows)).condition(context)


class FlowEncoder(vae.Encoder):
    """Amortized flow guide q(z[n] | x[n]) of the VAE (module docstring).

    :param kind: ``"iaf"`` or ``"spline"``.
    :param num_flows: flow layers (``None``: ``flows.DEFAULT_NUM_FLOWS``); ``context_dim``: C (default L).
    :raises ValueError: unknown ``kind``.
    """

    def __init__(self, latent_dim: int, pixels: int, hidden: int = 200, arch: str = "mlp",
                 kind: str = "iaf", num_flows: int | None = None, context_dim: int | None = None):
        if kind not in FLOW_FAMILIES:
            raise ValueError(f"vae: guide must be one of ('ffg', {', '.join(FLOW_FAMILIES)}), "
                             f"got {kind!r}")
        super().__init__(latent_dim, pixels, hidden, arch)
        self.kind, self.context_dim = kind, context_dim or latent_dim
        last = self.net[-1]
        self.net[-1] = nn.Linear(last.in_features, 2 * latent_dim + self.context_dim)
        self.flows = nn.ModuleList(flow_transforms(kind, latent_dim, num_flows, hidden=hidden,
                                                   context_dim=self.context_dim))

    def features(self, x):
        """``(loc, scale, context)``: ``(..., L)``, ``(..., L)``, ``(..., C)``."""
        batch, size = x.shape[:-1], 2 * self.latent_dim + self.context_dim
        out = self.net(x.reshape(-1, self.pixels)).reshape(*batch, size)
        loc, raw = out[..., : self.latent_dim], out[..., self.latent_dim: 2 * self.latent_dim]
        return loc, nn.functional.softplus(raw) + 1e-4, torch.tanh(out[..., 2 * self.latent_dim:])

    def params(self, x):
        """``(loc, scale)`` of the base Gaussian (before the flows), each ``(..., L)``."""
        return self.features(x)[:2]

    def distribution(self, x) -> dist.TransformedDistribution:
        """q(z | x) for x ``(B, D)``: batch ``(B,)``, event ``(L,)``."""
        return flow_distribution(*self.features(x), self.flows)

    def forward(self, x, observations=None):
        if observations is not None:
            x = observations["x"]
        pyro.module("encoder", self)
        with pyro.plate("images", x.shape[-2], dim=-1):
            pyro.sample("z", self.distribution(x))


def _zero_last_layers(flows) -> None:
    """Zero each conditioner's output layer: affine flows start at the identity."""
    for module in flows:
        arn = getattr(module, "nn", None) or getattr(module, "arn", None)
        if arn is not None and hasattr(arn, "layers"):
            with torch.no_grad():
                arn.layers[-1].weight.zero_()
                arn.layers[-1].bias.zero_()


class LocalFlowGuide(nn.Module):
    """Per-image flow q(z[i]): own ``loc``, ``scale``, ``context`` per image ``(B, L|C)``,
    flow weights shared by the batch (module docstring).

    :param loc, scale: ``(B, L)`` initial base Gaussian; ``context``: ``(B, C)``.
    :param flows: the conditional flow layers (copied, not shared with the caller).
    """

    def __init__(self, loc, scale, context, flows):
        super().__init__()
        self.loc = nn.Parameter(loc.detach().clone())
        self.raw_scale = nn.Parameter(torch.log(torch.expm1(scale.detach().clone())))
        self.context = nn.Parameter(context.detach().clone())
        self.flows = copy.deepcopy(flows)

    def forward(self, x, observations=None):
        pyro.module("local_guide", self)
        scale = nn.functional.softplus(self.raw_scale)
        with pyro.plate("images", self.loc.shape[0], dim=-1):
            pyro.sample("z", flow_distribution(self.loc, scale, self.context, self.flows))


def local_flow_guide(encoder: nn.Module, x: torch.Tensor, kind: str | None = None,
                     num_flows: int | None = None) -> LocalFlowGuide:
    """The per-image flow refit of family ``kind`` for images ``x`` ``(B, D)``, initialised at
    ``encoder``: a :class:`FlowEncoder` of the same kind lends its base, context and flows;
    any other encoder (e.g. the FFG :class:`~.vae.Encoder`) its ``(loc, scale)``, with zero
    context and fresh identity-initialised flows.

    :raises ValueError: unknown ``kind``.
    """
    kind = kind or getattr(encoder, "kind", None)
    if kind not in FLOW_FAMILIES:
        raise ValueError(f"local flow guide: kind must be one of {FLOW_FAMILIES}, got {kind!r}")
    with torch.no_grad():
        if isinstance(encoder, FlowEncoder) and encoder.kind == kind:
            return LocalFlowGuide(*encoder.features(x), encoder.flows)
        loc, scale = encoder.params(x)
        latent = loc.shape[-1]
        flows = nn.ModuleList(flow_transforms(kind, latent, num_flows, hidden=200,
                                              context_dim=latent))
        _zero_last_layers(flows)
        return LocalFlowGuide(loc, scale, torch.zeros_like(loc), flows)


def build(pixels: int, latent_dim: int = 50, hidden: int = 200, arch: str = "mlp",
          guide: str = "ffg", num_flows: int | None = None):
    """``(generative module, encoder)`` for ``pixels``-pixel images (``vae.build`` plus ``guide``).

    :param guide: the encoder's family: ``"ffg"`` (:class:`~.vae.Encoder`) or ``"iaf"`` /
        ``"spline"`` (:class:`FlowEncoder` with ``num_flows`` conditional flows).
    :raises ValueError: unknown ``arch`` or ``guide``, non-positive sizes, or conv on a
        non-square image.
    """
    model, encoder = vae.build(pixels, latent_dim, hidden, arch)
    if guide == "ffg":
        return model, encoder
    return model, FlowEncoder(latent_dim, pixels, hidden, arch, guide, num_flows)


def local_guide(encoder: nn.Module, x: torch.Tensor, family: str | None = None) -> nn.Module:
    """The per-image (non-amortized) guide of ``family`` for images ``x`` ``(B, D)``, initialised
    at ``encoder``'s q(z | x): the refit q* of Cremer, Li & Duvenaud (2018).

    :param family: ``"ffg"`` (:class:`~.vae.LocalGaussianGuide`; from a flow encoder it starts
        at the mean and sd of 256 draws of its q), ``"iaf"`` or ``"spline"``
        (:func:`local_flow_guide`); default: the encoder's own family.
    """
    family = family or getattr(encoder, "kind", "ffg")
    if family != "ffg":
        return local_flow_guide(encoder, x, family)
    if isinstance(encoder, FlowEncoder):
        with torch.no_grad():
            draws = encoder.distribution(x).sample((256,))
            return LocalGaussianGuide(draws.mean(0), draws.std(0))
    return vae.local_guide(encoder, x)
