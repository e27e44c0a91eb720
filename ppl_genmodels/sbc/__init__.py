"""Simulation-based calibration (Talts et al. 2018) and VSBC (Yao et al. 2018).

``sbc(model, engine)`` -> :class:`SBCResult` (ranks, uniformity tests, verdict);
``vsbc(result)`` -> the VSBC symmetry table; plots in :mod:`ppl_genmodels.sbc.plots`;
``write_report(result, folder)`` writes ranks, tests, plots and ``sbc.md``.
"""

from __future__ import annotations

from .run import AMORTIZED, SBCResult, sbc, vsbc

__all__ = ["sbc", "vsbc", "SBCResult", "AMORTIZED", "write_report"]


def __getattr__(name):
    # The report pulls in matplotlib: import it only when asked for.
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module 'ppl_genmodels.sbc' has no attribute {name!r}")
