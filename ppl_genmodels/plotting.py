"""Figures and their files: pyplot with a headless backend, and PNGs written atomically.

Used by the comparison report (:mod:`ppl_genmodels.harness`), the fixed-theta comparison,
the training figures (:mod:`ppl_genmodels.learning.figures`) and the SBC report
(:mod:`ppl_genmodels.sbc`): the one place figures are made and written.
"""

from __future__ import annotations

from pathlib import Path

from . import _arviz
from .io import atomic_path

__all__ = ["pyplot", "save_figure"]

DPI = 110


def pyplot():
    """``matplotlib.pyplot``, with the non-interactive Agg backend selected first (through
    :func:`ppl_genmodels._arviz.plots`), so that figures render without a display."""
    _arviz.plots()  # selects the Agg backend before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG (``DPI`` dots per inch) to ``path`` atomically, then close it.

    The figure is closed even when writing fails, so a failed report leaks no figures.

    :returns: ``path`` as a :class:`~pathlib.Path`.
    :raises OSError: the folder of ``path`` does not exist or is not writable.
    """
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI)
    finally:
        pyplot().close(fig)
    return path
