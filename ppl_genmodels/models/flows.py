"""Guide families built from Pyro's own normalizing flows: ``ffg``, ``iaf``, ``spline``.

Per-posterior guides (one posterior, no amortization) are Pyro autoguides over the model's
unconstrained latent vector of size D (``pyro.infer.autoguide``):

- ``ffg``: ``AutoDiagonalNormal``, the fully factorized Gaussian (mean field);
- ``iaf``: ``AutoNormalizingFlow`` with base N(0, I_D) pushed through ``num_flows`` inverse
  autoregressive flows (``T.AffineAutoregressive``; Kingma et al. 2016) whose variable order
  is reversed from one layer to the next (the latent vector's order first), and a final
  learnable element-wise affine map (:class:`ElementwiseAffine`), so the flow starts at a
  mean-field Gaussian;
- ``spline``: the same with monotone rational-quadratic autoregressive splines
  (``T.spline_autoregressive``, ``order="quadratic"``; Durkan et al. 2019, "Neural spline
  flows") in place of IAF, **one** layer by default (:data:`DEFAULT_NUM_FLOWS`): a Pyro
  spline layer costs about five IAF layers per SVI step, and one keeps the spline guide
  within 3x the FFG step (bench/flow_cost.py).

These guides sample an auxiliary site (``infer={'is_auxiliary': True}``) holding the whole
latent vector and then each model site as a ``Delta`` with the log-Jacobian of the
constraint, so log q(z) of a trace is the sum over its sites, as
``pyro.infer.importance.vectorized_importance_weights`` and the ELBOs compute it.

Amortized flow encoders (conditional flows whose context an encoder outputs) are in
:mod:`ppl_genmodels.models.vae_flows`; :func:`flow_transforms` builds both kinds.
"""

from __future__ import annotations

from functools import partial

import pyro.distributions as dist
import pyro.distributions.transforms as T
import torch
from pyro.infer.autoguide import AutoDiagonalNormal, AutoNormalizingFlow
from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN
from torch import nn

__all__ = ["GUIDE_FAMILIES", "FLOW_FAMILIES", "DEFAULT_NUM_FLOWS", "ElementwiseAffine", "FFGGuide", "FlowGuide", "flow_transforms",
           "auto_guide", "with_guide"]

GUIDE_FAMILIES = ("ffg", "iaf", "spline")
"""Guide families by name: fully factorized Gaussian, IAF, neural spline flow."""
FLOW_FAMILIES = ("iaf", "spline")
DEFAULT_NUM_FLOWS = {"iaf": 2, "spline": 1}
"""Flow layers per family when ``num_flows`` is ``None``: two IAF layers (orders reversed
between them), one rational-quadratic spline layer (its bins already bend each coordinate)."""


class ElementwiseAffine(dist.TransformModule):
    """y = loc + exp(log_scale) * x, element-wise over the last dim (``(..., D)``); learnable.

    The last layer of a per-posterior flow: it sets each coordinate's location and scale so
    that the flow layers before it only need to shape the standardized density.
    """

    domain = dist.constraints.real_vector
    codomain = dist.constraints.real_vector
    bijective = True

    def __init__(self, dim: int, init_scale: float = 1.0):
        super().__init__(cache_size=1)
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.full((dim,), float(torch.log(torch.tensor(init_scale)))))

    def _call(self, x):
        return self.loc + self.log_scale.exp() * x

    def _inverse(self, y):
        return (y - self.loc) * torch.exp(-self.log_scale)

    def log_abs_det_jacobian(self, x, y):
        return self.log_scale.expand(x.shape).sum(-1)


class _KeepModel:
    """Pyro's ``AutoGuide.__getstate__`` drops (and clears, on the original too) the model
    reference, so a deep copy -- which :class:`~ppl_genmodels.Posterior` makes of every Module
    guide per engine -- could not set itself up. Keep it in both."""

    def __getstate__(self):
        model = self._model
        state = dict(super().__getstate__())
        self._model = state["_model"] = model
        return state


class FFGGuide(_KeepModel, AutoDiagonalNormal):
    """``AutoDiagonalNormal`` that survives ``copy.deepcopy``."""


class FlowGuide(_KeepModel, AutoNormalizingFlow):
    """``AutoNormalizingFlow`` that survives ``copy.deepcopy``; with ``base_df`` its base is
    a standard Student-t with ``base_df`` degrees of freedom per coordinate instead of N(0, I).

    Why a heavy-tailed base: a Lipschitz triangular flow (IAF, splines with linear tails)
    cannot give a Gaussian base heavier tails (Jaini et al. 2020, "Tails of Lipschitz
    triangular flows", ICML), so a target whose marginals have heavier-than-Gaussian tails
    (the banana's x1, the funnel's x, centred eight schools' theta) gets unbounded importance
    weights p/q far out and a PSIS k-hat that grows with the number of draws.
    """

    def __init__(self, model, init_transform_fn, base_df: float | None = None):
        super().__init__(model, init_transform_fn)
        self.base_df = base_df

    def get_base_dist(self):
        if self.base_df is None:
            return super().get_base_dist()
        zero = self._prototype_tensor.new_zeros(1)
        return dist.StudentT(zero + self.base_df, zero, zero + 1.0).expand([self.latent_dim]).to_event(1)


def flow_transforms(kind: str, dim: int, num_flows: int | None = None, hidden: int | None = None,
                    context_dim: int | None = None, count_bins: int = 8,
                    bound: float = 5.0, order: str = "random",
                    spline_order: str = "quadratic") -> list:
    """``num_flows`` Pyro flow layers on ``(..., dim)`` vectors.

    Variable order of each layer's MADE conditioner (``pyro.nn.AutoRegressiveNN``; a buffer,
    saved in ``state_dict``):

    - ``order="random"``: each layer draws its own random order from torch's RNG (Pyro's
      default), so the orders, and what the flow can represent, depend on the seed;
    - ``order="alternate"``: the latent vector's own order in even layers, reversed in odd
      ones (Kingma et al. 2016, Sec. 4: "we reverse the ordering of the variables after
      each step"), so every variable conditions on each other one in some layer. Model
      sites come in program order, so e.g. the funnel's scale v precedes the x it scales.

    :param kind: ``"iaf"`` (``T.affine_autoregressive``, IAF direction: sampling and the
        density of a sample each take one network pass) or ``"spline"``
        (``T.spline_autoregressive``: ``count_bins`` bins of rational splines of
        ``spline_order`` -- ``"quadratic"``, Durkan et al. 2019, or ``"linear"``, Dolatabadi
        et al. 2020 -- on [-bound, bound], identity outside).
    :param num_flows: layers (``None``: :data:`DEFAULT_NUM_FLOWS` of ``kind``).
    :param hidden: units of each of the two hidden layers of the MADE conditioner
        (default ``max(32, 4 * dim)``).
    :param context_dim: given: the conditional variants (``T.conditional_affine_autoregressive``,
        ``T.conditional_spline_autoregressive``), to be ``.condition(context)``-ed with a
        ``(..., context_dim)`` tensor (Kingma et al. 2016's IAF with context h).
    :returns: a list of ``num_flows`` transforms (``TransformModule`` or
        ``ConditionalTransformModule``), each an ``nn.Module``.
    :raises ValueError: unknown ``kind``, ``order`` or ``spline_order``, ``dim < 1`` or
        ``num_flows < 1``.
    """
    if kind in FLOW_FAMILIES and num_flows is None:
        num_flows = DEFAULT_NUM_FLOWS[kind]
    if order not in ("random", "alternate"):
        raise ValueError(f"order must be 'random' or 'alternate', got {order!r}")
    if kind not in FLOW_FAMILIES:
        raise ValueError(f"flow kind must be one of {FLOW_FAMILIES}, got {kind!r}")
    if dim < 1 or num_flows < 1:
        raise ValueError(f"flows need dim >= 1 and num_flows >= 1 (got {dim}, {num_flows})")
    hidden_dims = [hidden or max(32, 4 * dim)] * 2
    if spline_order not in ("linear", "quadratic"):
        raise ValueError(f"spline_order must be 'linear' or 'quadratic', got {spline_order!r}")
    spline_dims = [count_bins, count_bins, count_bins - 1]
    if spline_order == "linear":
        spline_dims.append(count_bins)
    param_dims = [1, 1] if kind == "iaf" else spline_dims
    layers = []
    for k in range(num_flows):
        perm = None
        if order == "alternate":
            perm = torch.arange(dim) if k % 2 == 0 else torch.arange(dim).flip(0)
        if context_dim is None:
            arn = AutoRegressiveNN(dim, hidden_dims, param_dims=param_dims, permutation=perm)
        else:
            arn = ConditionalAutoRegressiveNN(dim, context_dim, hidden_dims, param_dims=param_dims,
                                              permutation=perm)
        if kind == "iaf":
            cls = T.AffineAutoregressive if context_dim is None else T.ConditionalAffineAutoregressive
            layers.append(cls(arn))
        else:
            cls = T.SplineAutoregressive if context_dim is None else T.ConditionalSplineAutoregressive
            layers.append(cls(dim, arn, count_bins=count_bins, bound=bound, order=spline_order))
    return layers


def _per_posterior_flow(dim: int, kind: str, num_flows: int | None, hidden: int | None,
                        init_scale: float, order: str):
    layers = flow_transforms(kind, dim, num_flows, hidden, order=order)
    return T.ComposeTransformModule(layers + [ElementwiseAffine(dim, init_scale)])


def auto_guide(model, kind: str = "iaf", num_flows: int | None = None, hidden: int | None = None,
               init_scale: float = 1.0, order: str = "alternate", base_df: float | None = None):
    """A per-posterior guide of family ``kind`` for ``model`` (continuous latents only).

    :param model: the Pyro model (the guide traces it once, on its first call, to find the
        latent sites and their constraints).
    :param kind: ``"ffg"`` (``AutoDiagonalNormal``), ``"iaf"`` or ``"spline"``
        (``AutoNormalizingFlow``; module docstring).
    :param num_flows: flow layers (``None``: :data:`DEFAULT_NUM_FLOWS` of ``kind``).
    :param init_scale: initial scale of each unconstrained coordinate.
    :param order: the flow layers' variable orders, ``"alternate"`` (default: the latent
        vector's order, then reversed, ...) or ``"random"`` (Pyro's default, seed-dependent;
        :func:`flow_transforms`); flows only. With random orders a 2-flow IAF on the banana
        or centred eight schools may draw no layer in which the curved variable conditions on
        the one that shapes it (see bench/RESULTS.md, "Toy k-hat: variable order").
    :param base_df: flows only: a Student-t base with these degrees of freedom
        (:class:`FlowGuide`); ``None``: N(0, I).
    :returns: a ``pyro.infer.autoguide.AutoGuide`` (an ``nn.Module``); call it with the
        model's arguments.
    :raises ValueError: unknown ``kind``.
    """
    if kind not in GUIDE_FAMILIES:
        raise ValueError(f"guide must be one of {GUIDE_FAMILIES}, got {kind!r}")
    if kind == "ffg":
        return FFGGuide(model, init_scale=init_scale)
    if base_df is not None and not base_df > 0:
        raise ValueError(f"base_df must be > 0 (or None), got {base_df!r}")
    return FlowGuide(model, partial(_per_posterior_flow, kind=kind, num_flows=num_flows,
                                    hidden=hidden, init_scale=init_scale, order=order),
                     base_df=base_df)


def with_guide(posterior, kind: str, **kwargs):
    """The same posterior (model, data, theta) with a fresh :func:`auto_guide` of ``kind``.

    :param posterior: a :class:`~ppl_genmodels.Posterior` whose latents are continuous.
    :returns: a new ``Posterior`` named ``"{name}"``, with the same dims and coords (the guide family is in its engines'
        configs and the report, not in the name).
    :raises ValueError: unknown ``kind``; a discrete latent site (autoguides need continuous
        latents).
    """
    sites = posterior.validate()
    if sites.discrete or sites.enumerated:
        raise ValueError(f"{posterior.name}: guide {kind!r} needs continuous latents; discrete "
                         f"sites {sorted(sites.discrete | set(sites.enumerated))}")
    return posterior.replace(guide=auto_guide(posterior.model, kind, **kwargs))
