"""Distributions the built-in models share."""

from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from pyro.distributions import constraints


class OrderedNormal(dist.TorchDistribution):
    """K iid ``Normal(loc, scale)`` draws, sorted: Stan's ``ordered[K] mu; mu ~ normal(...)``.

    On the ordered set {mu[0] < ... < mu[K-1]} the density is ``K! prod_k Normal(mu[k] |
    loc, scale)`` (the law of the order statistics of K iid normals, so it is normalized and
    matches Stan's unnormalized ``ordered`` prior up to the constant log K!). Pyro's NUTS
    and guides reach the support through ``biject_to(constraints.ordered_vector)``
    (``pyro.distributions.transforms.OrderedTransform``).

    :param loc: scalar or batch tensor, prior location (same units as mu).
    :param scale: scalar or batch tensor > 0.
    :param size: K >= 2, the event size.
    :raises ValueError: ``size < 2`` or a non-positive ``scale``.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.ordered_vector

    def __init__(self, loc, scale, size: int, validate_args=None):
        if int(size) < 2:
            raise ValueError(f"OrderedNormal needs size >= 2, got {size}")
        loc, scale = torch.as_tensor(loc, dtype=torch.get_default_dtype()), torch.as_tensor(
            scale, dtype=torch.get_default_dtype())
        if (scale <= 0).any():
            raise ValueError("OrderedNormal: scale must be > 0")
        self.loc, self.scale = torch.broadcast_tensors(loc, scale)
        self.size = int(size)
        super().__init__(self.loc.shape, torch.Size([self.size]), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        batch_shape = torch.Size(batch_shape)
        return OrderedNormal(self.loc.expand(batch_shape), self.scale.expand(batch_shape),
                             self.size)

    def sample(self, sample_shape=torch.Size()):
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            eps = torch.randn(shape, dtype=self.loc.dtype)
            draws = self.loc.unsqueeze(-1) + self.scale.unsqueeze(-1) * eps
            return draws.sort(-1).values

    def log_prob(self, value):
        base = dist.Normal(self.loc.unsqueeze(-1), self.scale.unsqueeze(-1)).log_prob(value)
        log_prob = base.sum(-1) + math.lgamma(self.size + 1)
        ordered = (value[..., 1:] > value[..., :-1]).all(-1)
        return log_prob.masked_fill(~ordered, -math.inf)
