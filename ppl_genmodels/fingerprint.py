"""Fingerprints of what defines a saved result, so that a stale one is never reused.

A fingerprint is a flat ``dict[str, str]`` of hex SHA-1 digests (and plain strings), one
entry per part, so that a mismatch can name the part that differs:

======================  =================================================================
``model``               qualified name + source (``inspect.getsource``) of the model
``guide``               the same for the guide, plus a Module guide's initial state dict
``data['<key>']``       each data tensor: shape, dtype and bytes
``theta``               the frozen generative parameters (``Posterior.theta()``)
``engine``              the engine's name and its config (JSON of its dataclass fields)
``seed``                the seed, as a string
``version``             ``ppl_genmodels.__version__``
======================  =================================================================

Source that ``inspect`` cannot read (builtins, REPL functions) falls back to the qualified
name only: a change there goes unnoticed.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from typing import Any, Mapping

import torch

from .posterior import Posterior

__all__ = ["fingerprint", "source_fingerprint", "callable_hash", "tensor_hash", "difference", "ATTR", "to_attrs",
           "from_attrs"]

ATTR = "fingerprint"
"""The netCDF attribute (of the ``posterior`` group) holding a result's fingerprint."""


def _version() -> str:
    # The package is imported before any of its modules (no import: that would be a cycle).
    return str(getattr(sys.modules[__package__], "__version__", "unknown"))


def tensor_hash(tensor: torch.Tensor) -> str:
    """SHA-1 of a tensor's shape, dtype and bytes (CPU, contiguous), hex."""
    t = tensor.detach().cpu().contiguous()
    h = hashlib.sha1(f"{tuple(t.shape)}|{t.dtype}|".encode())
    h.update(t.cpu().numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().cpu().numpy().tobytes())
    return h.hexdigest()


def _owner_module(fn: Any) -> torch.nn.Module | None:
    owner = fn if isinstance(fn, torch.nn.Module) else getattr(fn, "__self__", None)
    return owner if isinstance(owner, torch.nn.Module) else None


def callable_hash(fn: Any, state: bool = False) -> str:
    """SHA-1 of a callable's qualified name and source, hex.

    :param state: also hash the state dict of the Module that holds ``fn`` (a Module guide's
        initial parameters define the result too).
    """
    if fn is None:
        return "none"
    target = fn
    if isinstance(fn, torch.nn.Module):
        target = type(fn)
    elif not (inspect.ismodule(fn) or inspect.isfunction(fn) or inspect.ismethod(fn)
              or inspect.isclass(fn)):
        target = getattr(fn, "__func__", None) or type(fn)
    name = fn.__name__ if inspect.ismodule(fn) else \
        f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', repr(target))}"
    h = hashlib.sha1(name.encode())
    try:
        h.update(inspect.getsource(target).encode())
    except (OSError, TypeError):
        pass
    owner = _owner_module(fn) if state else None
    if owner is not None:
        for key, value in owner.state_dict().items():
            h.update(key.encode())
            h.update(tensor_hash(value).encode())
    return h.hexdigest()


def fingerprint(posterior: Posterior, engine: str | None = None,
                config: Mapping[str, Any] | None = None, seed: int | None = None) -> dict[str, str]:
    """The parts that define a result computed on ``posterior`` (see the module docstring).

    :param engine: the engine's name (``None``: no ``engine`` entry).
    :param config: the engine's settings (JSON-serialisable; others are written by ``str``).
    :param seed: the seed (``None``: no ``seed`` entry).
    :returns: part name -> digest or plain string.
    """
    out = {"model": callable_hash(posterior.model), "guide": callable_hash(posterior.guide, True)}
    for key in sorted(posterior.data):
        out[f"data[{key!r}]"] = tensor_hash(posterior.data[key])
    h = hashlib.sha1()
    for key, value in sorted(posterior.theta().items()):
        h.update(key.encode())
        h.update(tensor_hash(value).encode())
    out["theta"] = h.hexdigest()
    if engine is not None:
        blob = json.dumps({"name": engine, "config": dict(config or {})}, sort_keys=True,
                          default=str)
        out["engine"] = hashlib.sha1(blob.encode()).hexdigest()
    if seed is not None:
        out["seed"] = str(int(seed))
    out["version"] = _version()
    return out


def source_fingerprint(code: Any, data: Mapping[str, Any]) -> dict[str, str]:
    """The fingerprint of a run defined by ``code`` (a module or callable: name + source)
    and ``data`` (name -> tensor or array): parts ``model``, ``data['<key>']``, ``version``."""
    out = {"model": callable_hash(code)}
    for key in sorted(data):
        out[f"data[{key!r}]"] = tensor_hash(torch.as_tensor(data[key]))
    out["version"] = _version()
    return out


_WHAT = {"model": "another model", "guide": "another guide (or guide initialisation)",
         "theta": "other frozen parameters (theta)", "engine": "another engine config",
         "seed": "another seed", "version": "another ppl_genmodels version"}


def difference(saved: Mapping[str, str], current: Mapping[str, str]) -> str | None:
    """``None`` when the fingerprints match, else a phrase naming what differs, e.g.
    ``"other data (data['y'] differs)"``; a fingerprint-less file is "an older version
    without a fingerprint"."""
    if not saved:
        return "an older version of ppl_genmodels that recorded no fingerprint"
    parts = [k for k in list(current) + [k for k in saved if k not in current]
             if saved.get(k) != current.get(k)]
    if not parts:
        return None
    data = [k for k in parts if k.startswith("data[")]
    phrases = [f"other data ({', '.join(data)} differs)"] if data else []
    phrases += [_WHAT.get(k, f"another {k}") for k in parts if not k.startswith("data[")]
    return ", ".join(phrases)


def to_attrs(fp: Mapping[str, str]) -> dict[str, str]:
    """Fingerprint -> netCDF attributes: one JSON string under :data:`ATTR`."""
    return {ATTR: json.dumps(dict(fp), sort_keys=True)}


def from_attrs(attrs: Mapping[str, Any]) -> dict[str, str]:
    """The fingerprint stored by :func:`to_attrs` in ``attrs`` (empty if none or unreadable)."""
    try:
        value = json.loads(attrs.get(ATTR, "{}"))
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
