"""Checks of a posterior: its sites as one trace of model and guide shows them (shapes,
observed values, enumerated and deterministic sites, the guide's coverage of the latents,
finite log densities) and its ArviZ dims/coords declarations. Used by
:meth:`ppl_genmodels.posterior.Posterior.validate`; errors are ``ValueError`` naming the site."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pyro.poutine as poutine
from pyro.poutine.util import site_is_subsample
import torch

from ._validate import GuideSupportError, integer_hint

__all__ = ["SiteInfo"]


@dataclass
class SiteInfo:
    """What one trace of the model and guide says about a posterior's sites.

    Shapes are those of one draw (no chain/draw dimensions).
    """

    latent: dict[str, torch.Size] = field(default_factory=dict)
    """Latent sample sites the guide must cover, name -> shape."""
    enumerated: dict[str, torch.Size] = field(default_factory=dict)
    """Discrete latent sites marked ``infer={'enumerate': 'parallel'}`` (summed out)."""
    discrete: set[str] = field(default_factory=set)
    """Latent sites with a discrete support (enumerated or not)."""
    deterministic: dict[str, torch.Size] = field(default_factory=dict)
    """``pyro.deterministic`` sites, name -> shape."""
    observed: dict[str, torch.Tensor] = field(default_factory=dict)
    """Observed sites, name -> observed value."""
    max_plate_nesting: int = 0
    """Number of batch dimensions any site uses (for vectorized particles)."""



def _check_dims(dims) -> dict[str, list[str]]:
    if dims is None:
        return {}
    if not isinstance(dims, Mapping):
        raise ValueError(f"dims must be a mapping of site/data name -> list of dim names, not "
                         f"{type(dims).__name__}")
    out = {}
    for key, names in dims.items():
        if isinstance(names, str) or not isinstance(names, Sequence) or not all(
                isinstance(n, str) and n for n in names):
            raise ValueError(f"dims[{key!r}] must be a list of dim names (strings), got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"dims[{key!r}] names a dim twice: {list(names)}")
        if {"chain", "draw"} & set(names):
            raise ValueError(f"dims[{key!r}]: 'chain' and 'draw' are ArviZ's sample dims")
        out[str(key)] = list(names)
    return out


def _check_coords(coords) -> dict[str, list]:
    if coords is None:
        return {}
    if not isinstance(coords, Mapping):
        raise ValueError(f"coords must be a mapping of dim name -> labels, not "
                         f"{type(coords).__name__}")
    out = {}
    for dim, labels in coords.items():
        values = np.asarray(labels)
        if isinstance(labels, str) or values.ndim != 1:
            raise ValueError(f"coords[{dim!r}] must be a 1-D list of labels, got {labels!r}")
        if len(set(values.tolist())) != len(values):
            raise ValueError(f"coords[{dim!r}] has repeated labels: {values.tolist()}")
        out[str(dim)] = values.tolist()
    return out


def _check_dims_fit(posterior, info: SiteInfo) -> None:
    """Check a :class:`~ppl_genmodels.posterior.Posterior`'s dims/coords against one trace's ``info``.

    :raises ValueError: a dims entry names no site or data entry, names more dims than
    the value has, a dim has two sizes, or coords of another length than the dim."""
    shapes = {k: tuple(v.shape) for k, v in posterior.data.items()}
    shapes.update({k: tuple(v.shape) for k, v in info.observed.items()})
    for group in (info.latent, info.deterministic, info.enumerated):
        shapes.update({k: tuple(v) for k, v in group.items()})
    sizes: dict[str, tuple[int, str]] = {}
    for key, names in posterior.dims.items():
        if key not in shapes:
            raise ValueError(f"dims[{key!r}]: {posterior.name!r} has no site or data entry "
                             f"{key!r}; known: {sorted(shapes)}")
        if len(names) > len(shapes[key]):
            raise ValueError(f"dims[{key!r}] names {len(names)} dims {names} but one draw of "
                             f"{key!r} has shape {shapes[key]}")
        for dim, size in zip(names, shapes[key]):
            seen = sizes.setdefault(dim, (size, key))
            if seen[0] != size:
                raise ValueError(f"dim {dim!r} has size {size} in {key!r} but {seen[0]} in "
                                 f"{seen[1]!r}")
    for dim, labels in posterior.coords.items():
        if dim in sizes and len(labels) != sizes[dim][0]:
            raise ValueError(f"coords[{dim!r}] has {len(labels)} labels but dim {dim!r} has "
                             f"size {sizes[dim][0]} (in {sizes[dim][1]!r})")


def _trace(fn: Callable, data: Mapping[str, torch.Tensor], who: str):
    try:
        return poutine.trace(fn).get_trace(**data)
    except GuideSupportError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError, KeyError) as exc:
        raise ValueError(
            f"{who}(**data) failed before inference started: {type(exc).__name__}: {exc}"
            + integer_hint(data)
        ) from exc


def _is_deterministic(site) -> bool:
    return bool(site["infer"].get("_deterministic"))


def _sample_sites(trace):
    """(name, site) of real sample sites: no plate/subsample bookkeeping sites."""
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site):
            yield name, site


def _site_info(trace) -> SiteInfo:
    info = SiteInfo()
    nesting = 0
    for name, site in _sample_sites(trace):
        fn = site["fn"]
        nesting = max(nesting, len(fn.batch_shape))
        if _is_deterministic(site):
            info.deterministic[name] = site["value"].shape
        elif site["is_observed"]:
            value = site["value"]
            expected = fn.batch_shape + fn.event_shape
            if value.shape != expected:
                raise ValueError(
                    f"observed site {name!r}: data has shape {tuple(value.shape)} but its "
                    f"distribution has shape {tuple(expected)}; check the data's length, or "
                    "declare independent dimensions with pyro.plate / .to_event"
                )
            info.observed[name] = value.detach()
        else:
            if fn.support.is_discrete:
                info.discrete.add(name)
            if site["infer"].get("enumerate") == "parallel":
                info.enumerated[name] = site["value"].shape
            else:
                info.latent[name] = site["value"].shape
    info.max_plate_nesting = nesting
    return info


def _match_guide(info: SiteInfo, model_trace, guide_trace) -> None:
    # Auxiliary sites (e.g. the joint latent vector of a Pyro autoguide, marked
    # ``infer={'is_auxiliary': True}``) have no model counterpart.
    guide_sites = {
        name: site for name, site in _sample_sites(guide_trace)
        if not site["is_observed"] and not site["infer"].get("is_auxiliary")
    }
    for name in guide_sites:
        if name not in info.latent:
            what = "observed" if name in info.observed else "does not have"
            raise ValueError(
                f"guide samples site {name!r} which the model {what}"
                + (" as a latent variable" if what == "observed" else "")
            )
    for name in info.latent:
        if name not in guide_sites:
            raise ValueError(f"model latent site {name!r} has no matching sample site in the guide")
    for name, site in guide_sites.items():
        expected = info.latent[name]
        if site["value"].shape != expected:
            raise ValueError(
                f"site {name!r}: the guide draws shape {tuple(site['value'].shape)} but the "
                f"model's site has shape {tuple(expected)}"
            )


def _check_finite(model_trace, guide_trace) -> None:
    for trace, who in ((guide_trace, "log q(z | x)"), (model_trace, "log p(x, z | theta)")):
        for name, site in _sample_sites(trace):
            if _is_deterministic(site):
                continue
            try:
                value = site["fn"].log_prob(site["value"]).sum().detach()
            except ValueError as exc:
                raise ValueError(f"site {name!r}: {who} cannot be evaluated: {exc}") from exc
            if not math.isfinite(float(value)):
                raise ValueError(
                    f"site {name!r}: {who} is {float(value)} at a draw from the guide; the "
                    "guide's support must lie inside the model's"
                )
