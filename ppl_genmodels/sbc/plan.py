"""What an SBC run is made of, resolved and checked before any simulation: the counts, the
posterior, the sites to rank and the engine plan (refit per data set, or amortized)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .._validate import check_fraction, check_int
from ..infer import BatchedEngine, Engine, GuideEngine, get_engine
from ..posterior import Posterior
from .checkpoint import guide_hash

__all__ = ["AMORTIZED", "Plan", "check_counts", "check_engine_arguments", "resolve_posterior",
           "sites_to_rank", "amortized_plan", "refit_plan"]

AMORTIZED = "amortized"


def check_counts(num_simulations, num_draws, thin, alpha, bins, batch_size) -> None:
    """:raises ValueError: N < 10, L < 1, ``thin`` neither ``"ess"`` nor an int >= 1,
    ``alpha`` outside (0, 1), ``bins < 2`` or ``batch_size < 1``."""
    if not isinstance(num_simulations, (int, np.integer)) or num_simulations < 10:
        raise ValueError(f"num_simulations must be an int >= 10, got {num_simulations!r}")
    if not isinstance(num_draws, (int, np.integer)) or num_draws < 1:
        raise ValueError(f"num_draws must be an int >= 1, got {num_draws!r}")
    if not (thin == "ess" or (isinstance(thin, (int, np.integer)) and thin >= 1)):
        raise ValueError(f"thin must be 'ess' or an int >= 1, got {thin!r}")
    check_fraction("alpha", alpha)
    check_int("bins", bins, 2)
    check_int("batch_size", batch_size, 1)


def check_engine_arguments(engine, amortized: bool, guide, engine_config, train_engine) -> None:
    """:raises ValueError: ``guide=`` without ``engine="amortized"`` or with training
    settings, an unknown ``train_engine``, or ``engine_config`` for an engine object."""
    if guide is not None and not amortized:
        raise ValueError(f"guide= is only used with engine='{AMORTIZED}', not {engine!r}")
    if guide is not None and engine_config:
        raise ValueError("guide= is already trained: engine_config (training settings) would be unused")
    if amortized and train_engine not in ("rws", "svi"):
        raise ValueError(f"train_engine must be 'rws' or 'svi', got {train_engine!r}")
    if not amortized and engine_config and not isinstance(engine, str):
        raise ValueError("engine_config applies to built-in engines named by a string")


def resolve_posterior(model_name_or_factory, quick: bool, seed: int):
    """:returns: ``(posterior, engine budgets of a built-in model, model label)``."""
    if isinstance(model_name_or_factory, str):
        from ..models import get_model

        spec = get_model(model_name_or_factory)  # ValueError lists the known models
        return spec.posterior(quick=quick, seed=seed), spec.engine_config(quick), spec.name
    if callable(model_name_or_factory):
        posterior = model_name_or_factory()
        if not isinstance(posterior, Posterior):
            raise ValueError(
                f"the model factory must return a Posterior, not {type(posterior).__name__}"
            )
        return posterior, {}, posterior.name
    raise ValueError(
        "model_name_or_factory must be a built-in model name or a callable returning a "
        f"Posterior, not {type(model_name_or_factory).__name__}"
    )


def sites_to_rank(posterior: Posterior, var_names: Sequence[str] | None) -> dict[str, tuple]:
    """Site -> shape of every latent and deterministic site to rank (``var_names``, or all)."""
    sites = posterior.validate()
    rankable = {**sites.latent, **sites.deterministic}
    if var_names is not None:
        unknown = [v for v in var_names if v not in rankable]
        if unknown or not var_names:
            raise ValueError(f"var_names {unknown or var_names} are not latent/deterministic "
                             f"sites; sites are {sorted(rankable)}")
        rankable = {v: rankable[v] for v in var_names}
    if not rankable:
        raise ValueError("no continuous latent or deterministic site to rank")
    return rankable


@dataclass
class Plan:
    """How each simulation gets its draws: ``runner`` refit per data set, or a guide trained
    once (``train_config``; ``trained`` = ``(guide, param_state)`` once available)."""

    posterior: Posterior
    label: str
    settings: dict
    variational: bool
    runner: Engine | None = None
    train_config: dict | None = None
    trained: tuple | None = field(default=None, repr=False)


def amortized_plan(posterior, model_config, engine_config, guide, train_engine) -> Plan:
    """The guide given as ``guide=``, or the posterior's guide trained once (checked here)."""
    if guide is not None:
        posterior = posterior.replace(guide=guide)
        posterior.validate()
        return Plan(posterior, "amortized(user guide)", {"guide": guide_hash(guide)}, True,
                     trained=(guide, {}))
    if posterior.guide is None:
        raise ValueError("engine='amortized' needs a guide: the posterior has none")
    cfg = dict(model_config.get(train_engine, {}))
    if train_engine == "rws":
        cfg.setdefault("insomnia", 0.0)
    cfg.update(engine_config or {})
    cfg["num_draws"] = 1  # the training run's own draws are not used
    get_engine(train_engine, **cfg).validate(posterior)
    settings = {"train_engine": train_engine, "train_config": cfg,
                "guide": guide_hash(posterior.guide)}
    return Plan(posterior, f"amortized({train_engine})", settings, True, train_config=cfg)


SBC_CHAINS = 4
"""Chains per simulated data set for a batched engine (the model's budget may use more
chains for one posterior; with a hundred posteriors per run four chains each suffice)."""


def refit_plan(posterior, model_config, engine, engine_config, num_draws, thin) -> Plan:
    """The engine run afresh on every simulated data set, with L draws for guide engines."""
    cfg = dict(model_config.get(engine, {})) if isinstance(engine, str) else {}
    user = engine_config or {}
    if "num_chains" in user and "num_superchains" not in user:
        # The model's superchain layout belongs to its own chain count, not the user's.
        cfg.pop("num_superchains", None)
    cfg.update(user)
    runner = get_engine(engine, **cfg) if isinstance(engine, str) else get_engine(engine)
    # Engines whose draws are iid from an approximation q: no thinning, VSBC applies.
    variational = isinstance(runner, GuideEngine)
    if isinstance(runner, BatchedEngine) and "num_chains" not in (engine_config or {}) \
            and runner.num_chains > SBC_CHAINS:
        # Many posteriors share one run: SBC_CHAINS chains each give the L draws.
        runner = dataclasses.replace(runner, num_chains=SBC_CHAINS, **(
            {"num_superchains": None} if hasattr(runner, "num_superchains") else {}))
        cfg["num_chains"] = SBC_CHAINS
        cfg.pop("num_superchains", None)
    if variational:
        runner = dataclasses.replace(runner, num_draws=num_draws)
        cfg["num_draws"] = num_draws
    runner.validate(posterior)
    total = getattr(runner, "num_samples", None)  # MCMC budget, where the engine has one
    if total is not None and not variational:
        total *= getattr(runner, "num_chains", 1)
        need = num_draws * (thin if isinstance(thin, (int, np.integer)) else 1)
        if total < need:
            raise ValueError(
                f"{runner.name}: num_samples * num_chains = {total} draws cannot give "
                f"L={num_draws} draws thinned by {thin}; raise num_samples or lower num_draws"
            )
    return Plan(posterior, runner.name, {"engine_config": cfg}, variational, runner=runner)
