"""Checks of user input made before any work starts: settings, seeds, data, guide support.

Every check raises ``ValueError`` whose message names the argument, data entry or site.
Nothing here draws from the global random number generators (guide draws made for a
check run under ``torch.random.fork_rng`` with a fixed seed).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Mapping

import numpy as np
import pyro.poutine as poutine
import torch
from pyro.poutine.messenger import Messenger

__all__ = ["check_seed", "check_int", "check_positive", "check_fraction", "as_tensor",
           "integer_hint", "GuideSupportError", "check_guide_support", "SUPPORT_DRAWS"]

SUPPORT_DRAWS = 8
"""Guide draws :func:`check_guide_support` checks against the model's supports."""


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(float(value)))


def check_seed(seed: Any, who: str = "seed") -> int:
    """:returns: ``seed`` as an int. :raises ValueError: not an int (a float, str or bool
    is refused, not rounded) or negative (NumPy's and torch's seeding need >= 0)."""
    if not _is_int(seed) or seed < 0 or seed >= 2 ** 63:
        raise ValueError(f"{who} must be an integer >= 0, got {seed!r} ({type(seed).__name__})")
    return int(seed)


def check_int(name: str, value: Any, minimum: int, who: str = "") -> int:
    """:returns: ``value`` as an int. :raises ValueError: not an int (10.5, ``"100"`` and
    ``True`` are refused) or below ``minimum``; the message names ``who: name``."""
    if not _is_int(value) or value < minimum:
        prefix = f"{who}: " if who else ""
        raise ValueError(f"{prefix}{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_positive(name: str, value: Any, who: str = "") -> float:
    """:returns: ``value`` as a float. :raises ValueError: not a finite real number > 0."""
    if not _is_real(value) or value <= 0:
        prefix = f"{who}: " if who else ""
        raise ValueError(f"{prefix}{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_fraction(name: str, value: Any, who: str = "", closed: bool = False) -> float:
    """:returns: ``value`` as a float. :raises ValueError: not a real number in (0, 1)
    (in [0, 1] when ``closed``)."""
    ok = _is_real(value) and (0 <= value <= 1 if closed else 0 < value < 1)
    if not ok:
        prefix = f"{who}: " if who else ""
        interval = "[0, 1]" if closed else "(0, 1)"
        raise ValueError(f"{prefix}{name} must lie in {interval}, got {value!r}")
    return float(value)


# --- data --------------------------------------------------------------------------------
def as_tensor(name: str, value: Any) -> torch.Tensor:
    """One data entry as a tensor.

    Rule: floating values (Python floats, float arrays, float tensors) become tensors of
    torch's default dtype unless already a tensor; integer and boolean values keep an
    integer/boolean dtype (they are indices, counts and sizes in Pyro models), and
    :func:`integer_hint` names them when the model or guide then fails on a dtype.

    :raises ValueError: naming ``data[name]``: the value is empty (a dimension of size 0),
        complex (the imaginary part would be lost), an object array (strings, mixed types)
        or strings, or holds NaN/inf (naming the rows).
    """
    if isinstance(value, torch.Tensor):
        tensor = value
        if tensor.is_complex():
            raise ValueError(f"data[{name!r}] is complex ({tensor.dtype}); pass its real part "
                             "(or real and imaginary parts as separate entries)")
    else:
        array = np.asarray(value)
        if array.dtype == object:
            example = next((v for v in array.flat if not _is_real(v) and not _is_int(v)), None)
            shown = f"; e.g. {example!r} ({type(example).__name__})" if example is not None else ""
            raise ValueError(f"data[{name!r}] is a numpy object array{shown}; pass a numeric "
                             "array (e.g. np.asarray(values, dtype=float))")
        if array.dtype.kind == "c":
            raise ValueError(f"data[{name!r}] is complex ({array.dtype}); pass its real part "
                             "(or real and imaginary parts as separate entries)")
        if array.dtype.kind == "f":
            tensor = torch.as_tensor(array.astype(np.float64), dtype=torch.get_default_dtype())
        elif array.dtype.kind in "iub":
            tensor = torch.as_tensor(array)
        else:
            raise ValueError(f"data[{name!r}] has dtype {array.dtype}; expected numbers")
    if tensor.numel() == 0:
        raise ValueError(f"data[{name!r}] is empty (shape {tuple(tensor.shape)}); a data entry "
                         "needs at least one value")
    if tensor.is_floating_point():
        bad = ~torch.isfinite(tensor)
        if bad.any():
            kind = "NaN" if torch.isnan(tensor).any() else "inf"
            if tensor.dim() == 0:
                raise ValueError(f"data[{name!r}] is {kind}")
            rows = torch.nonzero(bad.reshape(bad.shape[0], -1).any(-1)).flatten().tolist()
            shown = rows[:20] + (["..."] if len(rows) > 20 else [])
            raise ValueError(f"data[{name!r}] has {kind} at rows {shown}".replace("'...'", "..."))
    return tensor


def integer_hint(data: Mapping[str, torch.Tensor]) -> str:
    """A sentence naming the integer/boolean data entries ('' when there are none)."""
    names = [f"data[{k!r}] ({v.dtype})" for k, v in data.items()
             if isinstance(v, torch.Tensor) and not v.is_floating_point() and v.dim() > 0]
    if not names:
        return ""
    return (f"; note: {', '.join(names)} holds integers, which are passed on as they are: "
            "convert a measurement to floating point (x.float()) before making the Posterior")


# --- guide support -----------------------------------------------------------------------
class GuideSupportError(ValueError):
    """A guide draw lies outside its model site's support (names the site and support)."""


class _SupportCheck(Messenger):
    """Raise :class:`GuideSupportError` when a replayed latent value of a site in
    ``names`` lies outside the model's support at that site (checked as the model reaches
    the site, before later code uses the value)."""

    def __init__(self, names):
        super().__init__()
        self.names = names

    def _postprocess_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["name"] not in self.names:
            return
        fn, value = msg["fn"], msg["value"]
        support = getattr(fn, "support", None)
        if support is None:
            return
        try:
            inside = support.check(value)
        except (RuntimeError, ValueError, TypeError):  # shape clash: _match_guide reports it
            return
        inside = torch.as_tensor(inside)
        if not bool(inside.all()):
            value = value.detach()
            if inside.dim() and value.shape[:inside.dim()] == inside.shape:
                value = value[~inside][0]  # the first offending event
            example = (f"{float(value):.4g}" if value.numel() == 1
                       else str([round(float(v), 4) for v in value.reshape(-1)[:6]]))
            base = fn  # unwrap .to_event / .expand / .mask, not HalfNormal's own base
            while type(base).__name__ in ("Independent", "ExpandedDistribution",
                                          "MaskedDistribution"):
                base = base.base_dist
            raise GuideSupportError(
                f"site {msg['name']!r}: the guide drew {example}, outside the model's "
                f"support {support} ({type(base).__name__}); the guide's distribution at this "
                "site must stay inside it (e.g. LogNormal or a softplus/exp transform for a "
                "positive site, a Beta or sigmoid for a probability)"
            )


def check_guide_support(model: Callable, guide: Callable, data: Mapping[str, torch.Tensor],
                        latent: set[str], trace_fn: Callable, finite_fn: Callable,
                        num_draws: int = SUPPORT_DRAWS, seed: int = 0) -> None:
    """Draw the guide ``num_draws`` times (seeded, the global RNG state is restored
    afterwards) and check each latent site's value against the model's support there,
    then that log q and log p(x, z | theta) are finite (``finite_fn``).

    :param trace_fn: ``trace_fn(fn, data, who)`` returns a trace or raises ValueError.
    :raises GuideSupportError: naming the site, the support and an offending value.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(num_draws):
            guide_trace = trace_fn(guide, data, "guide")
            checked = _SupportCheck(latent)(poutine.replay(model, trace=guide_trace))
            model_trace = trace_fn(checked, data, "model")
            finite_fn(model_trace, guide_trace)
