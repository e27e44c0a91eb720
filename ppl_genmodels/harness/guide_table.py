"""Guide families side by side on the toy posteriors: does a flow's PSIS k-hat fall below 0.7
where the fully factorized Gaussian's does not, and do its moments pass the reference checks?

Each (model, family) pair fits a per-posterior guide (:func:`ppl_genmodels.models.flows.auto_guide`)
with the same :class:`~ppl_genmodels.infer.SVI` budget and is judged on its ``num_draws`` iid
draws: PSIS k-hat of the importance weights (Yao et al. 2018), the ELBO and the
importance-weighted bound (nats), the Inference Gym mean test of every parameter against the
model's reference (:func:`ppl_genmodels.diagnostics.reference_check` on the raw guide draws,
5 MCSE: strict, since iid draws have a small MCSE) and the largest |mean error| / reference
sd and |sd ratio - 1| over the parameters.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .. import diagnostics
from ..infer import RWS, SVI
from ..models import get_model
from ..models.flows import GUIDE_FAMILIES, with_guide

__all__ = ["TOY_MODELS", "guide_table", "TOY_BUDGET"]

ENGINES = {"svi": SVI, "rws": RWS}
TOY_MODELS = ("neals_funnel", "banana", "eight_schools_centered", "eight_schools")
TOY_BUDGET = {"num_steps": 3000, "num_particles": 8, "lr": 0.01, "num_draws": 4000}
"""SVI settings of every guide in the table (``quick``: 300 steps, 1000 draws)."""


def guide_table(models=TOY_MODELS, families=GUIDE_FAMILIES, quick: bool = False, seed: int = 0,
                progress: bool = False, num_flows: int | None = None, flow_kwargs: dict | None = None,
                keep: dict | None = None, engine: str = "svi", **svi_kwargs) -> pd.DataFrame:
    """Fit each family to each model's posterior with one SVI budget and tabulate its checks.

    :param flow_kwargs: more :func:`~ppl_genmodels.models.flows.auto_guide` arguments of the
        flow families (default :data:`TOY_FLOW`).
    :param keep: a dict that, if given, receives each fit's InferenceData under
        ``(model, guide)`` (for plots of the draws).
    :param engine: ``"svi"`` (the ELBO: reverse KL, mode-seeking) or ``"rws"`` (reweighted
        wake-sleep's wake-phi: the inclusive KL(p || q), mass-covering; Bornschein & Bengio
        2015), the same for every family.
    :param svi_kwargs: override :data:`TOY_BUDGET` (``num_steps``, ``num_particles``, ``lr``,
        ``num_draws``).
    :returns: rows ``(model, guide)`` with ``k_hat``, ``elbo``, ``iw_bound`` (nats),
        ``ref_passed`` (parameters passing the mean test, "k/n"), ``ref_passed_psis`` (the
        same on PSIS-reweighted means), ``max_mean_err_sd``,
        ``max_sd_ratio_err``, ``wall_s`` (seconds, fit and draws).
    :raises ValueError: an unknown model or family, or a model with discrete latents.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}")
    bad = [f for f in families if f not in GUIDE_FAMILIES]
    if bad:
        raise ValueError(f"unknown guide families {bad}; known: {list(GUIDE_FAMILIES)}")
    budget = {**TOY_BUDGET, **({"num_steps": 300, "num_draws": 1000} if quick else {}), **svi_kwargs}
    # every model is built and given each guide before any fit starts (bad input fails fast)
    bases = {}
    for name in models:
        spec = get_model(name)
        base = spec.posterior(quick=quick, seed=seed)
        for family in families:
            with_guide(base, family)
        bases[name] = (base, spec.reference(base))
    rows = []
    for name, (base, reference) in bases.items():
        for family in families:
            kwargs = {} if family == "ffg" else {"num_flows": num_flows, **(flow_kwargs or {})}
            posterior = with_guide(base, family, **kwargs)
            start = time.perf_counter()
            idata = ENGINES[engine](**budget).run(posterior, seed=seed, progress=progress).idata
            wall = time.perf_counter() - start
            if keep is not None:
                keep[(name, family)] = idata
            iw = diagnostics.importance_diagnostics(idata.sample_stats["log_weight"].values)
            row = {"model": name, "guide": family, "k_hat": iw["k_hat"], "elbo": iw["elbo"],
                   "iw_bound": iw["log_evidence"], "wall_s": wall}
            if reference is not None:
                summary = diagnostics.parameter_summary(idata)
                check = diagnostics.reference_check(idata, reference, summary=summary)
                names = list(check.index)
                ref_sd = np.array([reference.sd[n] for n in names])
                row["ref_passed"] = f"{int(check['passed'].sum())}/{len(check)}"
                row["max_mean_err_sd"] = float((check["abs_error"].values / ref_sd).max())
                row["max_sd_ratio_err"] = float(np.abs(summary.loc[names, "sd"].values / ref_sd - 1).max())
                psis = diagnostics.psis_moments(
                    {n: v for n, v in diagnostics.flat_draws(idata).items() if n in names},
                    idata.sample_stats["log_weight"].values).loc[names]
                ref_mean = np.array([reference.mean[n] for n in names])
                ref_mcse = np.array([reference.mcse_mean.get(n, 0.0) for n in names])
                passed = (np.abs(psis["psis_mean"].values - ref_mean)
                          < 5.0 * np.sqrt(psis["psis_mcse_mean"].values ** 2 + ref_mcse ** 2))
                row["ref_passed_psis"] = f"{int(passed.sum())}/{len(names)}"
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "guide"])


def k_hat_pivot(table: pd.DataFrame) -> pd.DataFrame:
    """``table``'s k-hat as models x families, with ``flow_fixes``: some flow family has
    k-hat < 0.7 where ``ffg``'s is > 0.7."""
    pivot = table["k_hat"].unstack("guide")
    flows = [c for c in pivot.columns if c != "ffg"]
    if "ffg" in pivot and flows:
        pivot["flow_fixes"] = (pivot["ffg"] > 0.7) & (pivot[flows].min(axis=1) < 0.7)
    return pivot
