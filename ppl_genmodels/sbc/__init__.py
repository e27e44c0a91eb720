"""Simulation-based calibration (Talts et al. 2018) and VSBC (Yao et al. 2018).

``sbc(model, engine)`` -> :class:`SBCResult` (ranks, uniformity tests, verdict);
``vsbc(result)`` -> the VSBC symmetry table; plots in :mod:`ppl_genmodels.sbc.plots`;
``write_report(result, folder)`` writes ranks, tests, plots and ``sbc.md``.

Modules by job: :mod:`.run` (the ``sbc()`` driver and its batches), :mod:`.plan` (checks
and engine resolution), :mod:`.simulate` (simulated data sets), :mod:`.draws` (the L
draws per rank), :mod:`.checkpoint` (settings, batch files, the trained guide),
:mod:`.result` (:class:`SBCResult`), :mod:`.stats` (rank tests), :mod:`.plots`, :mod:`.report`.
"""

from __future__ import annotations

from .plan import AMORTIZED
from .result import SBCResult, vsbc
from .run import sbc

__all__ = ["sbc", "vsbc", "SBCResult", "AMORTIZED", "write_report"]


def __getattr__(name):
    # The report pulls in matplotlib: import it only when asked for.
    if name == "write_report":
        from .report import write_report

        return write_report
    raise AttributeError(f"module 'ppl_genmodels.sbc' has no attribute {name!r}")
