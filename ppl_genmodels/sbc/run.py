"""Simulation-based calibration of an inference engine on a Pyro posterior.

SBC (Talts et al. 2018): draw z_i ~ p(z), x_i ~ p(x | z_i) from the model itself, run
inference on x_i, and rank z_i among L (near-)independent posterior draws. If the
inference is exact, each rank is uniform on {0..L}, because the data-averaged posterior is
the prior. Non-uniform ranks show the direction of the error: a U shape is an
over-confident (under-dispersed) posterior, a hump an over-dispersed one, a slope a bias.
VSBC (Yao et al. 2018, sec. 3) reads the same simulations for variational engines.

Two paths:

- refit (``engine="nuts"``, ``"svi"``, ``"rws"`` or an engine object): the engine is run
  afresh on every simulated data set (NUTS draws are thinned by ESS).
- amortized (``engine="amortized"``): an amortized guide q(z | x) (an encoder) is trained
  ONCE, by default with reweighted wake-sleep in its sleep phase (``insomnia=0``), which
  fits q to the model's own simulations (z, x) ~ p(z) p(x | z), or it is passed ready
  trained as ``guide=``. Each simulated data set then costs one forward pass plus L draws.
  This measures the calibration of q averaged over the prior predictive p(x): it passes
  when E_{x ~ p(x)} q(z | x) reproduces the prior in every rank statistic, not that
  q(z | x_obs) is good at the observed data set.
"""

from __future__ import annotations

import json
import logging
import math
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .._validate import check_seed
from ..infer import BatchedEngine
from ..posterior import Posterior
from . import simulate
from . import stats as sbc_stats
from ..io import check_writable
from .checkpoint import (data_hash, prepare_checkpoint, read_batches, seeds_for,
                         source_settings, train_guide, write_batch)
from .draws import amortized_draws, engine_draws, flat_values
from .plan import (AMORTIZED, Plan, amortized_plan, check_counts, check_engine_arguments,
                   refit_plan, resolve_posterior, sites_to_rank)
from .result import SIM_STATS, SBCResult, vsbc

log = logging.getLogger(__name__)

__all__ = ["sbc", "vsbc", "SBCResult", "AMORTIZED"]


BATCHED_SIZE = 100
"""Simulations per batch (one checkpoint file, one batched run) for a batched engine."""


def sbc(
    model_name_or_factory: str | Callable[[], Posterior],
    engine: Any = "nuts",
    num_simulations: int = 200,
    num_draws: int = 99,
    thin: int | str = "ess",
    seed: int = 0,
    progress: bool = True,
    engine_config: Mapping[str, Any] | None = None,
    *,
    guide: Callable | None = None,
    train_engine: str = "rws",
    quick: bool = False,
    var_names: Sequence[str] | None = None,
    observed_keys: Mapping[str, str] | None = None,
    alpha: float = 0.05,
    bins: int = 20,
    checkpoint_dir: str | Path | None = None,
    resume: bool = True,
    batch_size: int | None = None,
) -> SBCResult:
    """Simulation-based calibration (Talts et al. 2018) of an engine on a model.

    For i = 1..N: z_i ~ p(z) and x_i ~ p(x | z_i) from the posterior's model with its
    observed sites unconditioned (covariates kept), inference on x_i, and the rank of each
    scalar of z_i (``SBCResult.true_values``) among L posterior draws. Deterministic sites
    (e.g. eight schools' theta) are ranked too. VI draws are iid and used as they are; MCMC
    draws are thinned by ESS (see ``thin``).

    :param model_name_or_factory: a built-in model name (its ``posterior(quick, seed)`` and
        engine budgets are used) or a zero-argument callable returning a
        :class:`~ppl_genmodels.Posterior`.
    :param engine: ``"nuts"``, ``"svi"``, ``"rws"`` or an engine object (refit on every
        simulated data set), or ``"amortized"``: no refit, the guide is trained once (or
        given as ``guide=``) and only evaluated per data set (see the module docstring for
        what this measures).
    :param num_simulations: N (>= 10). Power: N = 100 detects a posterior with half the
        true sd (ranks piled at the ends) with near certainty; small biases need more.
    :param num_draws: L (>= 1), draws each rank is taken among; ranks lie in {0..L}.
    :param thin: ``"ess"`` (step ceil(total draws / min bulk ESS)) or an int step; MCMC only.
    :param seed: seed of simulation i is derived from ``(seed, i)``; training uses ``seed``.
    :param progress: tqdm bar over simulations.
    :param engine_config: keyword arguments of the engine (``"amortized"``: of
        ``train_engine``); they update the built-in model's budgets. VI ``num_draws`` is
        set to L.
    :param guide: ``"amortized"`` only: an already-trained guide ``guide(**data)`` to use
        instead of training one. It must hold its own parameters (a Module, or a function
        without ``pyro.param``), as each run uses a fresh param store.
    :param train_engine: ``"rws"`` (default; with ``insomnia=0`` unless configured: the
        sleep phase trains q on prior simulations, i.e. amortizes over p(x)) or ``"svi"``
        (fits q at the observed data only).
    :param quick: small budgets of a built-in model.
    :param var_names: sites to rank (default: every latent and deterministic site).
    :param observed_keys: observed site -> data keyword, when they cannot be matched by value.
    :param alpha: family-wise error rate of the verdict (Bonferroni over parameters).
    :param bins: maximum rank-histogram bins for the chi-square test.
    :param batch_size: simulations per checkpoint file (default: 100 for a batched engine
        such as NUTS, which samples a batch's data sets in one run; 10 otherwise).
    :param checkpoint_dir: folder for ``batch_*.npz`` checkpoints (one per ``batch_size``
        simulations) and the trained amortized guide; a rerun with the same settings keeps
        finished batches and runs only the missing ones (also after raising N).
    :param resume: ``False`` deletes existing checkpoints first.
    :returns: :class:`SBCResult`.
    :raises ValueError: before any simulation, on unknown model/engine, bad counts, an
        engine/guide mismatch, NUTS budgets too small for L, unknown ``var_names``, or a
        checkpoint folder holding a run with other settings (options, data, model or
        guide source, theta, package version); ``OutputFolderError`` (a ValueError):
        ``checkpoint_dir`` is a file or not writable; ``DamagedFileError`` (a ValueError):
        a checkpoint file cannot be read.
    :raises RuntimeError: an engine run failed (message names the simulation and seed).
    """
    check_seed(seed)
    check_counts(num_simulations, num_draws, thin, alpha, bins, batch_size or 1)
    amortized = isinstance(engine, str) and engine == AMORTIZED
    check_engine_arguments(engine, amortized, guide, engine_config, train_engine)
    posterior, model_config, model_label = resolve_posterior(model_name_or_factory, quick, seed)
    keys = simulate.observed_keys(posterior, observed_keys)
    if not keys:
        raise ValueError("the model has no observed site: there is no data to simulate")
    rankable = sites_to_rank(posterior, var_names)
    if amortized:
        plan = amortized_plan(posterior, model_config, engine_config, guide, train_engine)
    else:
        plan = refit_plan(posterior, model_config, engine, engine_config, num_draws, thin)
    if batch_size is None:  # a batched engine samples a whole batch in one run
        batch_size = BATCHED_SIZE if isinstance(plan.runner, BatchedEngine) else 10
    directory = Path(checkpoint_dir) if checkpoint_dir is not None else None
    settings = json.loads(json.dumps({
        "model": model_label, "data_sha1": data_hash(plan.posterior), "engine": plan.label,
        **plan.settings, "num_draws": int(num_draws), "thin": thin if thin == "ess" else int(thin),
        "seed": int(seed), "quick": bool(quick), "sites": sorted(rankable),
        "batch_size": int(batch_size), **source_settings(plan.posterior),
    }, default=str))
    if directory is not None:
        check_writable(directory)
    prepare_checkpoint(directory, settings, resume)

    names = list(flat_values({k: np.zeros((1, *s)) for k, s in rankable.items()}, posterior))
    before = plan.posterior.theta()
    if plan.train_config is not None:
        plan.trained = train_guide(plan.posterior, train_engine, plan.train_config, seed,
                                   progress, directory)
        plan.posterior.check_theta_unchanged(before, f"training engine {train_engine!r}")
    simulation = partial(_simulations, plan, keys, list(rankable), names, seed, num_draws, thin)
    arrays = _run_batches(simulation, num_simulations, batch_size, directory,
                          f"SBC {model_label}: {plan.label}", progress)
    plan.posterior.check_theta_unchanged(before, f"SBC with engine {plan.label!r}")
    return _assemble(arrays, names, num_draws, plan, model_label, alpha, bins,
                     {**settings, "num_simulations": int(num_simulations)})


def _run_batches(simulation: Callable[[list[int]], list], num_simulations: int, batch_size: int,
                 directory: Path | None, desc: str, progress: bool) -> dict[int, dict]:
    """Run the simulations batch by batch, keeping (and cutting to N) finished batches
    found in ``directory`` and writing each new one there.

    :returns: batch index -> arrays ``index``, ``ranks``, ``true_values`` and ``SIM_STATS``.
    """
    num_batches = math.ceil(num_simulations / batch_size)
    batches = read_batches(directory, num_batches) if directory is not None else {}
    for batch in list(batches):  # keep finished batches, cut to the current N
        size = min((batch + 1) * batch_size, num_simulations) - batch * batch_size
        if len(batches[batch]["seed"]) >= size:
            batches[batch] = {k: v[:size] for k, v in batches[batch].items()}
        else:
            del batches[batch]
    done = sum(len(b["seed"]) for b in batches.values())
    bar = tqdm(total=num_simulations, initial=min(done, num_simulations), desc=desc,
               disable=not progress, mininterval=0.5)
    try:
        for batch in range(num_batches):
            if batch in batches:
                continue
            indices = range(batch * batch_size, min((batch + 1) * batch_size, num_simulations))
            rows = simulation(list(indices), bar)
            arrays = {
                "index": np.asarray(list(indices)),
                "ranks": np.stack([r[0] for r in rows]),
                "true_values": np.stack([r[1] for r in rows]),
                **{k: np.asarray([r[2][k] for r in rows]) for k in SIM_STATS},
            }
            if directory is not None:
                write_batch(directory, batch, arrays)
            batches[batch] = arrays
    finally:
        bar.close()
    return batches


def _assemble(batches: dict[int, dict], names: list[str], num_draws: int, plan: Plan,
              model_label: str, alpha: float, bins: int, attrs: dict) -> SBCResult:
    num_simulations = int(attrs["num_simulations"])
    ordered = [batches[b] for b in sorted(batches)]

    def cat(key):
        # batches written before the rename hold the simulated values as "theta_true"
        keys = [key if key in b or key != "true_values" else "theta_true" for b in ordered]
        return np.concatenate([b[k] for b, k in zip(ordered, keys)])[:num_simulations]

    sim_stats = pd.DataFrame({k: cat(k) for k in SIM_STATS})
    sim_stats["under_thinned"] = sim_stats["under_thinned"].astype(bool)
    sim_stats["seed"] = sim_stats["seed"].astype(np.int64)
    if sim_stats["under_thinned"].any():
        log.warning("%d of %d simulations had fewer than L=%d draws after ESS thinning; their "
                    "draws are autocorrelated (raise num_samples)",
                    int(sim_stats["under_thinned"].sum()), num_simulations, num_draws)
    return SBCResult(
        ranks=cat("ranks").astype(np.int64), true_values=cat("true_values"), param_names=names,
        num_draws=int(num_draws), sim_stats=sim_stats, engine=plan.label,
        variational=plan.variational, model=model_label, alpha=float(alpha), bins=int(bins),
        attrs=attrs,
    )


def _simulations(plan: Plan, keys, sites: list[str], names: list[str], seed: int,
                 num_draws: int, thin, indices: list[int], bar) -> list[tuple]:
    """SBC steps ``indices``: simulate, infer, rank. An engine that samples many posteriors
    at once (:class:`~ppl_genmodels.infer.BatchedEngine`) gets the batch's data sets in one
    run, seeded by the batch's first simulation; any other engine runs once per data set.

    :returns: per simulation ``(ranks (P,), true_values (P,), stats)``.
    """
    if plan.trained is None and isinstance(plan.runner, BatchedEngine):
        start = time.perf_counter()
        simulated = [_simulate(plan, keys, sites, names, seed, i) for i in indices]
        posteriors = [plan.posterior.replace(guide=None, data=data,
                                             name=f"{plan.posterior.name}[{i}]")
                      for i, (_, _, data) in zip(indices, simulated)]
        infer_seed = seeds_for(seed, indices[0])[1]
        try:
            results = plan.runner.run_many(posteriors, seed=infer_seed, progress=False)
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"SBC simulations {indices[0]}..{indices[-1]} failed: "
                               f"{type(exc).__name__}: {exc}") from exc
        wall = (time.perf_counter() - start) / len(indices)
        rows = []
        for (sim_seed, truth, _), result in zip(simulated, results):
            draws, extra = engine_draws(result.idata, names, num_draws, thin, plan.variational)
            ranks = sbc_stats.rank_of(truth, draws, np.random.default_rng(sim_seed))
            rows.append((ranks, truth, dict(zip(SIM_STATS, (sim_seed, *extra, wall)))))
        bar.update(len(indices))
        return rows
    rows = []
    for i in indices:
        rows.append(_one_simulation(plan, keys, sites, names, seed, num_draws, thin, i))
        bar.update(1)
    return rows


def _simulate(plan: Plan, keys, sites, names, seed: int, index: int):
    """``(sim_seed, truth (P,), data)`` of simulation ``index``."""
    sim_seed, _ = seeds_for(seed, index)
    true_values, data = simulate.simulate(plan.posterior, keys, sites, sim_seed)
    flat = flat_values({k: v[None] for k, v in true_values.items()}, plan.posterior)
    return sim_seed, np.array([flat[n][0] for n in names]), data


def _one_simulation(plan: Plan, keys, sites: list[str], names: list[str], seed: int,
                    num_draws: int, thin, index: int):
    """One SBC step: simulate, infer, rank. :returns: ``(ranks (P,), true_values (P,), stats)``."""
    _, infer_seed = seeds_for(seed, index)
    start = time.perf_counter()
    sim_seed, truth, data = _simulate(plan, keys, sites, names, seed, index)
    try:
        if plan.trained is not None:
            guide, param_state = plan.trained
            draws = amortized_draws(plan.posterior, guide, param_state, data, sites, names,
                                    num_draws, infer_seed)
            extra = (math.nan, 1, False)
        else:
            simulated = plan.posterior.replace(data=data)
            idata = plan.runner.run(simulated, seed=infer_seed, progress=False).idata
            draws, extra = engine_draws(idata, names, num_draws, thin, plan.variational)
    except (RuntimeError, ValueError) as exc:
        raise RuntimeError(f"SBC simulation {index} (seed {sim_seed}) failed: "
                           f"{type(exc).__name__}: {exc}") from exc
    ranks = sbc_stats.rank_of(truth, draws, np.random.default_rng(sim_seed))
    return ranks, truth, dict(zip(SIM_STATS, (sim_seed, *extra, time.perf_counter() - start)))
