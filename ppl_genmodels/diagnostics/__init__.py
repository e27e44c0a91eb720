"""Diagnostics shared by every engine: ArviZ summaries, MCMC warnings, importance weights,
distances.

Modules: :mod:`.summary` (attrs, labelled draws, ``az.summary``), :mod:`.importance`
(evidence bounds, PSIS), :mod:`.distances` (to a reference), :mod:`.mcmc` (MCMC warnings),
:mod:`.nested` (nested R-hat for superchains), :mod:`.verdicts` (one verdict per result).

Sources: ``arviz.summary`` (rank-normalized R-hat, bulk/tail ESS and MCSE; Vehtari et
al. 2021), ``arviz.bfmi`` (E-BFMI; Betancourt 2016), Stan's sampler warnings (thresholds
R-hat 1.01, ESS 100 per chain, E-BFMI 0.3, any divergence or maximum tree depth), PSIS
k-hat and Pareto-smoothed weights (Vehtari et al. 2024, ``arviz.psislw``) read as in Yao
et al. 2018, the importance-weighted log-evidence bound (Burda et al. 2016), and the
1-Wasserstein distance (``scipy.stats.wasserstein_distance``).
"""

from __future__ import annotations

from .distances import reference_check, reference_distances
from .importance import importance_diagnostics, importance_summary, psis_moments
from .mcmc import (MIN_E_BFMI, MIN_ESS_PER_CHAIN, R_HAT_MAX, e_bfmi, mcmc_diagnostics,
                   mcmc_warnings, tree_depth_saturation)
from .nested import nested_r_hat, nested_r_hat_table, superchain_ids
from .summary import convergence_summary, flat_draws, parameter_summary, run_attrs
from .verdicts import (DIVERGENT_FRACTION_FAIL, K_HAT_GOOD, K_HAT_MAX, R_HAT_FAIL,
                      engine_diagnostics, engine_warnings, verdict, vi_warnings)

__all__ = [
    "flat_draws",
    "parameter_summary",
    "convergence_summary",
    "importance_summary",
    "importance_diagnostics",
    "psis_moments",
    "reference_distances",
    "reference_check",
    "e_bfmi",
    "tree_depth_saturation",
    "mcmc_diagnostics",
    "mcmc_warnings",
    "nested_r_hat",
    "nested_r_hat_table",
    "superchain_ids",
    "vi_warnings",
    "engine_warnings",
    "engine_diagnostics",
    "run_attrs",
    "verdict",
    "R_HAT_MAX",
    "MIN_ESS_PER_CHAIN",
    "MIN_E_BFMI",
    "K_HAT_GOOD",
    "K_HAT_MAX",
    "R_HAT_FAIL",
    "DIVERGENT_FRACTION_FAIL",
]
