"""Helpers the command-line modules share: output folders and the fixed-theta printout."""

from __future__ import annotations

import sys
from pathlib import Path

from .io import check_writable, remove_recorded


def _refuse_non_empty(out: Path, args, force_does: str, resume: bool = True) -> bool:
    """Print an error and return True when ``out`` holds files and neither ``--force`` nor
    ``--resume`` was given; the caller then exits with status 2, having touched nothing."""
    if not out.is_dir() or not any(out.iterdir()) or args.force or args.resume:
        return False
    resume_hint = " or --resume to continue the run in it" if resume else ""
    print(f"error: {out} exists and is not empty; pass --force to {force_does}{resume_hint}",
          file=sys.stderr)
    return True


def _prepare_out(out: Path, force: bool) -> None:
    """Check that ``out`` can be written (before any engine runs) and, with ``--force``,
    delete the files the previous run listed in its manifest (and nothing else).

    :raises OutputFolderError, DamagedFileError: printed by :func:`main` as one line.
    """
    check_writable(out)
    if force:
        remove_recorded(out)


def _print_fixed_theta(result) -> None:
    print(result.note)
    print("\nimages each engine can be trusted on:")
    print(result.trust.to_string())
    print("\nper guide, averaged over images (nats; k_hat; mean error in NUTS sds):")
    print(result.summary().to_string(float_format=lambda v: f"{v:.3f}"))
    print("\ngaps over images (nats):")
    print(result.gaps.describe().T.to_string(float_format=lambda v: f"{v:.3f}"))


def _device_problem(device: str) -> str | None:
    """What is wrong with ``--device`` (checked before any work), or ``None``."""
    if device == "cpu":
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        return "not a torch device (use cpu or cuda[:N])"
    if dev.type == "cuda" and not torch.cuda.is_available():
        return "no CUDA device is available (torch.cuda.is_available() is False)"
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        return f"only {torch.cuda.device_count()} CUDA device(s)"
    if dev.type not in ("cpu", "cuda"):
        return f"device type {dev.type!r} is not supported (cpu or cuda)"
    return None
