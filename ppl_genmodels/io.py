"""Atomic file writes: a reader (or a Ctrl-C) never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text", "save_netcdf", "load_netcdf"]


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``
    (``os.replace``, atomic on POSIX), on any exception it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_netcdf(idata, target: str | Path) -> None:
    """``InferenceData.to_netcdf`` through a temporary file."""
    with atomic_path(target) as tmp:
        idata.to_netcdf(str(tmp))


def load_netcdf(path: str | Path):
    """Read an InferenceData fully into memory (the file is not kept open)."""
    from . import _arviz

    idata = _arviz.from_netcdf(str(path))
    for group in idata.groups():
        getattr(idata, group).load()
    return idata
