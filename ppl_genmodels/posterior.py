"""The target every engine approximates: p(z | x, theta) for a Pyro model/guide pair."""

from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from ._posterior_checks import (SiteInfo, _check_coords, _check_dims, _check_dims_fit,
                                _check_finite, _match_guide, _site_info, _trace)
from ._validate import as_tensor, check_guide_support

__all__ = ["Posterior", "SiteInfo"]


_as_tensor = as_tensor  # the data rule lives in _validate


def _module_tensors(params: Any) -> dict[str, torch.Tensor]:
    """Named tensors of theta given as a Module, a mapping, or None."""
    if params is None:
        return {}
    if isinstance(params, torch.nn.Module):
        return dict(params.named_parameters())
    if isinstance(params, Mapping):
        out = {}
        for key, value in params.items():
            if isinstance(value, torch.nn.Module):
                out.update({f"{key}.{n}": p for n, p in value.named_parameters()})
            elif isinstance(value, torch.Tensor):
                out[key] = value
            else:
                raise ValueError(
                    f"params[{key!r}] is a {type(value).__name__}; expected a torch.Tensor "
                    "or torch.nn.Module"
                )
        return out
    raise ValueError(
        f"params must be None, a torch.nn.Module or a mapping, not {type(params).__name__}"
    )


class Posterior:
    """The posterior p(z | x, theta) of a Pyro model, with a guide that approximates it.

    Every engine in :mod:`ppl_genmodels.infer` targets the same unnormalized log density
    log p(x, z | theta) (nats) defined by ``model(**data)`` with the generative parameters
    ``theta`` held fixed.

    :param model: Pyro program ``model(**data)``; observed sites use ``obs=``.
    :param guide: Pyro program ``guide(**data, observations=None)`` over the same latent
        sites, usually an amortized encoder (a ``torch.nn.Module`` or a bound method of
        one). Pyro's :class:`~pyro.infer.ReweightedWakeSleep` calls it in its sleep phase
        with ``observations={site: simulated value}``; an amortized guide must then read x
        from ``observations``. Module guides are deep-copied for each engine, so engines
        start from the same guide parameters and never share them. May be ``None`` when
        only MCMC is run.
    :param data: keyword arguments of ``model``/``guide``: tensors, arrays or numbers.
        Floating arrays and numbers become tensors of torch's default dtype; integer and
        boolean values keep an integer dtype (indices, counts, sizes); tensors are kept as
        they are (:func:`ppl_genmodels._validate.as_tensor`).
    :param params: frozen generative parameters theta: a ``torch.nn.Module`` (or a mapping
        of name -> Module/Tensor) that ``model`` uses, e.g. a decoder. Tensors given in a
        mapping are placed in each engine's private Pyro param store under their names, so
        a model that calls ``pyro.param(name)`` / ``pyro.module`` finds them. No engine
        updates theta: Pyro ``param`` sites of the model are hidden from optimizers
        (``poutine.block``) and theta's ``requires_grad`` is off while an engine runs.
    :param name: label used in reports.
    :param dims: ArviZ's named dimensions, as ``arviz.from_pyro`` takes them: site or data
        name -> dim names of the leading dimensions of one draw (of the value for a data
        entry), e.g. ``{"theta": ["school"], "y": ["school"], "sigma": ["school"]}``; dims
        not named (and every dim of a name not listed) get ArviZ's defaults
        (``theta_dim_0``). Carried into every group of every engine's InferenceData
        (``posterior``, ``log_likelihood``, ``posterior_predictive``, ``prior``,
        ``observed_data``, ``constant_data``), so ``az.summary`` labels read
        ``theta[Choate]``. Checked against the sites' shapes in :meth:`validate`.
    :param coords: dim name -> labels (one per position), e.g. ``{"school": ["Choate",
        ...]}``; a named dim without coords is labelled 0, 1, ...
    :raises ValueError: ``data`` holds NaN/inf (naming the entry and rows), an empty,
        complex, string or object-array value (naming the entry); ``params`` has the wrong
        type; ``name`` is not a string; ``dims`` is not a mapping of name -> list of
        strings, or ``coords`` not a mapping of dim -> 1-D list of distinct labels.
    """

    def __init__(
        self,
        model: Callable,
        guide: Callable | None,
        data: Mapping[str, Any],
        params: Any = None,
        name: str | None = None,
        dims: Mapping[str, Sequence[str]] | None = None,
        coords: Mapping[str, Sequence] | None = None,
    ):
        if not callable(model):
            raise ValueError(f"model must be callable, got {type(model).__name__}")
        if guide is not None and not callable(guide):
            raise ValueError(f"guide must be callable or None, got {type(guide).__name__}")
        if not isinstance(data, Mapping):
            raise ValueError(f"data must be a mapping of keyword arguments, not {type(data).__name__}")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string, not {type(name).__name__}")
        self.model = model
        self.guide = guide
        self.data = {key: _as_tensor(key, value) for key, value in data.items()}
        self.params = params
        self._theta = _module_tensors(params)
        self.name = name or getattr(model, "__name__", "posterior")
        self.dims = _check_dims(dims)
        self.coords = _check_coords(coords)
        self._sites: SiteInfo | None = None

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.data.items()}
        return f"Posterior(name={self.name!r}, data={shapes}, theta={len(self._theta)} tensors)"

    # --- theta -----------------------------------------------------------------------------
    def theta(self) -> dict[str, torch.Tensor]:
        """Detached copies of the frozen generative parameters, name -> tensor."""
        return {k: v.detach().clone() for k, v in self._theta.items()}

    def check_theta_unchanged(self, before: Mapping[str, torch.Tensor], who: str) -> None:
        """Raise ``RuntimeError`` if theta differs bit-for-bit from ``before``."""
        for key, value in self._theta.items():
            if not torch.equal(value.detach(), before[key]):
                raise RuntimeError(f"{who} changed the frozen generative parameter {key!r}")

    # --- isolation ----------------------------------------------------------------------
    @contextlib.contextmanager
    def session(self) -> Iterator[tuple[Callable, Callable | None]]:
        """Isolated ``(model, guide)`` for one engine run.

        Inside: a fresh Pyro param store (``ParamStoreDict.scope``; the global store is
        restored on exit), theta loaded/frozen, the model's ``param`` sites hidden from
        optimizers, and a private copy of a Module guide. A function guide's parameters
        that already exist as tensors (e.g. a module it closes over) are restored on exit.
        """
        store = pyro.get_param_store()
        module_theta = [
            v for v in self._theta.values() if isinstance(v, torch.nn.Parameter) or v.is_leaf
        ]
        flags = [(t, t.requires_grad, t.grad) for t in module_theta]
        with store.scope(), warnings.catch_warnings():
            # pyro.module warns that a frozen (requires_grad=False) theta is not registered:
            # that is the point.
            warnings.filterwarnings("ignore", message=".*not registered in the param store")
            if isinstance(self.params, Mapping):
                for key, value in self.params.items():
                    if isinstance(value, torch.Tensor):
                        store[key] = value.detach().clone()
            for t in module_theta:
                t.requires_grad_(False)
            model = poutine.block(self.model, hide_types=["param"])
            guide, restore = self._private_guide()
            try:
                yield model, guide
            finally:
                restore()
                for t, requires_grad, grad in flags:
                    t.requires_grad_(requires_grad)
                    t.grad = grad

    def _private_guide(self):
        guide = self.guide
        if guide is None:
            return None, lambda: None
        owner = getattr(guide, "__self__", None)
        if isinstance(guide, torch.nn.Module) or isinstance(owner, torch.nn.Module):
            return copy.deepcopy(guide), lambda: None
        # A plain function: its own pyro.param sites start fresh in the scoped store, but
        # a module it closes over is shared, so snapshot the tensors it registers.
        with poutine.trace(param_only=True) as capture:
            guide(**self.data)
        tensors = [site["value"].unconstrained() for site in capture.trace.nodes.values()]
        saved = [t.detach().clone() for t in tensors]

        def restore():
            with torch.no_grad():
                for t, s in zip(tensors, saved):
                    t.copy_(s)

        return guide, restore

    # --- validation -------------------------------------------------------------------------
    def validate(self) -> SiteInfo:
        """Trace model and guide once and check they describe the same latent variables.

        :returns: :class:`SiteInfo` (cached after the first call).
        :raises ValueError: naming the site when the model fails to run on ``data``, an
            observed value's shape differs from its distribution's shape, the guide samples
            a site the model lacks (or misses a latent site of the model), a guide draw has
            a different shape from the model's site, the model has no latent site, one of
            :data:`~ppl_genmodels._validate.SUPPORT_DRAWS` seeded guide draws lies outside the
            model's support at a site (naming the site, the support and the value), or
            log q / log p(x, z | theta) is not finite at a guide draw, or ``dims`` name a
            site or data entry that does not exist, more dims than its value has, one dim
            with two sizes, or ``coords`` of another length than their dim. The global random
            number generator state is left as it was.
        """
        if self._sites is not None:
            return self._sites
        with torch.random.fork_rng(devices=[]), self.session() as (model, guide):
            torch.manual_seed(0)
            model_trace = _trace(model, self.data, "model")
            info = _site_info(model_trace)
            if not info.latent and not info.enumerated:
                raise ValueError(
                    f"model {self.name!r} has no latent sample sites (every pyro.sample has "
                    "obs=): there is no posterior to infer")
            if guide is not None:
                guide_trace = _trace(guide, self.data, "guide")
                _match_guide(info, model_trace, guide_trace)
                check_guide_support(model, guide, self.data, set(info.latent), _trace,
                                    _check_finite)
        _check_dims_fit(self, info)
        self._sites = info
        return info

    def replace(self, **changes) -> "Posterior":
        """A new :class:`Posterior` with the same model, guide, data, params, name, dims and
        coords, except those given in ``changes`` (keyword arguments of the constructor)."""
        kwargs = dict(model=self.model, guide=self.guide, data=self.data, params=self.params,
                      name=self.name, dims=self.dims, coords=self.coords)
        unknown = sorted(set(changes) - set(kwargs))
        if unknown:
            raise ValueError(f"Posterior.replace: unknown field(s) {unknown}")
        kwargs.update(changes)
        return Posterior(**kwargs)

    def parameter_labels(self) -> dict[str, str]:
        """Positional label -> ArviZ label of every scalar latent and deterministic
        component, e.g. ``{"theta[0]": "theta[Choate]", "mu": "mu"}`` (the identity without
        coords): moves a reference written with positions onto the labels of this
        posterior's results (:meth:`ppl_genmodels.reference.Reference.relabel`).
        Source: ``arviz.labels.IdxLabeller`` / ``BaseLabeller``."""
        from . import _arviz

        sites = self.validate()
        shapes = {**sites.latent, **sites.deterministic}
        dataset = _arviz.dict_to_dataset(
            {k: np.zeros((1, 1, *s)) for k, s in shapes.items()},
            dims={k: v for k, v in self.dims.items() if k in shapes} or None,
            coords=self.coords or None)
        return _arviz.coordinate_labels(dataset)

    def image_coords(self, index: int, dim: str = "image") -> dict:
        """``coords`` for the posterior of position ``index`` along ``dim`` alone (a per-image
        posterior keeps its image's label): ``coords`` with ``dim`` -> ``[label]``, or
        ``coords`` unchanged when no site uses ``dim``."""
        if not any(dim in names for names in self.dims.values()):
            return dict(self.coords)
        labels = self.coords.get(dim)
        label = labels[index] if labels is not None else index
        return {**self.coords, dim: [label]}

    def log_density(self, latents: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """log p(x, z | theta) in nats at one latent value ``latents`` (site -> tensor)."""
        with self.session() as (model, _):
            trace = poutine.trace(poutine.condition(model, data=dict(latents))).get_trace(
                **self.data
            )
            return trace.log_prob_sum()

    def to(self, device: str | torch.device) -> "Posterior":
        """This posterior with its data, theta and guide on ``device``.

        Data tensors and theta tensors given in a mapping are copied to ``device``; a
        ``torch.nn.Module`` theta or guide is moved in place (``Module.to``, PyTorch's
        semantics). Constants a model creates without a device (``torch.zeros(d)``) follow
        torch's default device: run engines inside ``with torch.device(device):`` (the CLI's
        ``--device`` does).

        :returns: a new :class:`Posterior` (same model, name and guide object).
        :raises ValueError: ``device`` is not a device torch knows, or is ``cuda`` without an
            available CUDA device.
        """
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device {device!r} is not a torch device: {err}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r}: no CUDA device is available "
                             "(torch.cuda.is_available() is False)")
        params = self.params
        if isinstance(params, torch.nn.Module):
            params.to(device)
        elif isinstance(params, Mapping):
            params = {k: v.to(device) for k, v in params.items()}
        guide = self.guide
        owner = getattr(guide, "__self__", None)
        for module in (guide, owner):
            if isinstance(module, torch.nn.Module):
                module.to(device)
        data = {k: v.to(device) for k, v in self.data.items()}
        return self.replace(guide=guide, data=data, params=params)
