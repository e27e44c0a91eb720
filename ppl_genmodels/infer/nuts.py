"""Ensemble NUTS: many chains of many posteriors, one batched gradient per leapfrog step.

:class:`NUTS` (engine name ``"nuts"``) samples B posteriors that share a Pyro model and
differ in their data (SBC's simulated data sets, the images of a fixed-theta comparison) with
K chains each, as one (B, K, D) ensemble: every leapfrog step evaluates the potential of all
B x K chains in one call (:mod:`._potential`); trajectories follow Stan's multinomial NUTS,
all chains in lockstep with per-chain masks (:mod:`._nuts_kernel`, the default) or each
chain at its own place in its own trajectory (:mod:`._nuts_async`); each posterior gets Stan's
windowed warm-up pooled over its K chains (:mod:`._adaptation`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pyro
import torch
from tqdm.auto import tqdm

from .._validate import check_fraction, check_int, check_positive, check_seed
from ..posterior import Posterior
from ._adaptation import (DualAveraging, PooledVariance, adaptation_schedule, find_step_size,
                          reset_stuck_chains)
from ._draws import deterministic_sites
from ._nuts_async import sample_async
from ._nuts_kernel import compile_leaf, nuts_transition
from ._potential import COMPILE, MODES, make_potential
from ._progress import NutsProgress
from .base import EngineResult
from .result import engine_attrs, make_inference_data

__all__ = ["NUTS", "STATS", "check_nuts_sites"]

STATS = ("diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate", "lp")
"""Per-iteration statistics in ``sample_stats`` (ArviZ's names)."""
SCHEDULES = ("async", "lockstep")


INITIAL_MAX_TREE_DEPTH = 6
"""Tree depth cap before the first metric update (warm-up only): with a unit metric on a
badly scaled posterior every chain would otherwise build 2^10-leaf trees in lockstep; the
draws of this phase are discarded and later windows re-estimate the metric."""


def check_nuts_sites(posterior: Posterior, who: str = "NUTS") -> None:
    """:raises ValueError: the posterior has discrete latent sites not marked for
    enumeration (Hamiltonian dynamics needs a gradient in every latent)."""
    sites = posterior.validate()
    not_enumerated = sorted(sites.discrete - set(sites.enumerated))
    if not_enumerated:
        raise ValueError(
            f"{who} cannot sample discrete latent site(s) {not_enumerated}: Hamiltonian "
            "dynamics needs the gradient of log p(x, z | theta) with respect to z, which a "
            "discrete variable does not have. Mark the site infer={'enumerate': "
            "'parallel'} (pyro.infer.config_enumerate) so Pyro sums it out, or use svi/rws."
        )


@dataclass(frozen=True)
class NUTS:
    """The No-U-Turn sampler run as one batched ensemble of chains (and of posteriors).

    Multinomial NUTS with the generalized no-U-turn criterion and Stan's extra sub-tree
    checks (Betancourt 2017; Hoffman & Gelman 2014), advanced for all chains with one
    batched gradient per step, each chain with its own program counter (Radul et al. 2020;
    TFP's ``NoUTurnSampler``, Lao et al. 2020) or in lockstep; Stan's windowed adaptation of a
    step size and a diagonal metric per posterior, pooled over its chains. The potential
    is Pyro's (``initialize_model``'s transforms and Jacobians, enumerated discrete sites
    summed out) evaluated with ``torch.func.vmap`` or inside a chains ``pyro.plate``.

    :param num_samples: post-warm-up draws per chain.
    :param warmup_steps: adaptation iterations (not returned).
    :param num_chains: chains per posterior (many short chains are cheap: one batched
        gradient serves them all).
    :param target_accept_prob: dual-averaging target of the mean acceptance statistic.
    :param max_tree_depth: maximum doublings per iteration (during warm-up, until the first
        metric update, at most :data:`INITIAL_MAX_TREE_DEPTH`).
    :param max_delta_energy: H - H0 above which a transition is divergent (nats).
    :param potential: ``"auto"``, ``"plate"``, ``"vmap"`` or ``"loop"``
        (:func:`ppl_genmodels.infer._potential.make_potential`).
    :param init_radius: initial points uniform in (-r, r) in unconstrained space (Stan's 2).
    :param num_superchains: ``None`` (default: every chain starts from its own point) or K
        >= 2 dividing ``num_chains`` into K superchains of M >= 2 chains; the chains of a
        superchain start from one point, and the run is judged by nested R-hat
        (Margossian et al. 2024; :func:`ppl_genmodels.diagnostics.nested_r_hat`), the
        diagnostic for many short chains. Chains ``k*M .. k*M + M - 1`` form superchain k.
    :param compile: how the batched potential runs: ``"fx"`` (recorded ATen graph, the
        default), ``"inductor"`` (``torch.compile``: fastest per step, tens of seconds to
        compile once) or ``"none"``.
    :param schedule: ``"lockstep"`` (default): every chain waits each iteration for the
        longest trajectory of the ensemble (TFP's scheme; the waiting is reported as
        ``lockstep_waste``); ``"async"``: every chain starts its next transition as soon as
        its trajectory ends (chains wait only at the ends of adaptation windows). Async
        wastes fewer gradients (100 MNIST images x 2 chains: 17% against 36%) but each of
        its steps does more bookkeeping; on this package's posteriors on a CPU lockstep
        was faster in wall time (83.5 s against 95.6 s for those images; see
        ``bench/RESULTS.md``); async pays off when gradients are expensive and
        trajectory lengths vary widely.
    :raises ValueError: from :meth:`validate`.

    ``sample_stats`` (dims ``chain, draw``): ``diverging``, ``energy`` (H at the draw,
    nats), ``tree_depth``, ``n_steps`` (gradients this chain needed), ``step_size``,
    ``acceptance_rate``, ``lp`` (log density in unconstrained space, nats).
    ``attrs``: ``grad_evals`` (gradients the chains needed, warm-up included),
    ``grad_evals_lockstep`` (computed: one per chain and batched step, including steps a
    chain spent waiting), ``lockstep_waste`` (the waiting fraction), ``schedule``,
    ``potential_mode``, ``potential_setup_s`` (building, recording and compiling the
    potential, seconds; included in the wall time), ``wall_time_s`` (this posterior's share of the run, seconds),
    ``batch_wall_time_s`` and ``num_posteriors``.
    """

    num_samples: int = 1000
    warmup_steps: int = 1000
    num_chains: int = 4
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10
    max_delta_energy: float = 1000.0
    potential: str = "auto"
    init_radius: float = 2.0
    compile: str = "fx"
    schedule: str = "lockstep"
    num_superchains: int | None = None

    name = "nuts"

    def __post_init__(self):
        self._check_settings()

    def _check_settings(self) -> None:
        """:raises ValueError: a count that is not an integer in range (10.5, ``"100"``,
        ``True`` are refused), ``target_accept_prob`` outside (0, 1), an unknown mode."""
        for key in ("num_samples", "num_chains", "max_tree_depth"):
            check_int(key, getattr(self, key), 1, "NUTS")
        check_int("warmup_steps", self.warmup_steps, 0, "NUTS")
        check_fraction("target_accept_prob", self.target_accept_prob, "NUTS")
        check_positive("max_delta_energy", self.max_delta_energy, "NUTS")
        check_positive("init_radius", self.init_radius, "NUTS")
        if self.potential not in MODES:
            raise ValueError(f"NUTS: potential must be one of {MODES}, got {self.potential!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"NUTS: schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.compile not in COMPILE:
            raise ValueError(f"NUTS: compile must be one of {COMPILE}, got {self.compile!r}")
        S = self.num_superchains
        if S is not None and (not isinstance(S, (int, np.integer)) or isinstance(S, bool)
                              or S < 2 or self.num_chains % S or self.num_chains // S < 2):
            raise ValueError(
                f"NUTS: num_superchains must be None or an integer >= 2 that divides "
                f"num_chains={self.num_chains} into superchains of at least 2 chains, got {S!r}")

    def validate(self, posterior: Posterior) -> None:
        """:raises ValueError: before sampling: discrete latents not enumerated, settings
        as :meth:`_check_settings` (also checked by the constructor)."""
        self._check_settings()
        check_nuts_sites(posterior)

    def run(self, posterior: Posterior, seed: int = 0, *, progress: bool = True) -> EngineResult:
        """Sample one posterior.

        :returns: :class:`EngineResult` whose ``idata`` has ``num_chains`` chains of
            ``num_samples`` draws (``guide`` is ``None``).
        """
        return self.run_many([posterior], seed=seed, progress=progress)[0]

    def run_many(self, posteriors: Sequence[Posterior], seed: int = 0, *,
                 progress: bool = True) -> list[EngineResult]:
        """Sample B posteriors of one model in one batched run.

        :param posteriors: B :class:`Posterior` objects with the same ``model`` and frozen
            ``params`` and data of the same keys and shapes (e.g. one per image).
        :returns: list of B :class:`EngineResult`, in order, each as :meth:`run` returns it.
        :raises ValueError: before sampling, when the posteriors do not share a model,
            theta or data shapes, or any of them fails :meth:`validate`.
        """
        seed = check_seed(seed)
        posteriors = list(posteriors)
        if not posteriors:
            raise ValueError("NUTS.run_many needs at least one posterior")
        first = posteriors[0]
        for i, p in enumerate(posteriors[1:], 1):
            if p.model is not first.model:
                raise ValueError(f"posterior {i} has a different model from posterior 0; "
                                 "posteriors sampled together must share one model")
            if p.params is not first.params:
                raise ValueError(f"posterior {i} has different frozen params from posterior 0")
        for p in posteriors:
            self.validate(p)
        start = time.perf_counter()
        gen = torch.Generator().manual_seed(int(seed))
        with first.session() as (model, _):
            state = self._sample(model, [p.data for p in posteriors], gen, progress)
            idatas = self._assemble(model, posteriors, state, seed)
        wall = time.perf_counter() - start
        for idata in idatas:
            for group in ("posterior", "sample_stats"):
                attrs = getattr(idata, group).attrs
                attrs.update(wall_time_s=wall / len(posteriors), batch_wall_time_s=wall)
            idata.attrs.update(wall_time_s=wall / len(posteriors), batch_wall_time_s=wall)
        return [EngineResult(idata) for idata in idatas]

    # --- sampling ---------------------------------------------------------------------
    def _initial_points(self, potential, B, K, D, dtype, gen, device):
        starts = self.num_superchains or K  # chains of a superchain share their start

        def uniform():
            points = (torch.rand(B, starts, D, generator=gen, device="cpu", dtype=dtype) * 2 - 1) * self.init_radius
            return points.repeat_interleave(K // starts, dim=1).to(device)

        q = uniform()
        u, g = potential(q)
        for _ in range(100):
            bad = ~torch.isfinite(u)
            if not bool(bad.any()):
                return q, u, g
            q = torch.where(bad.unsqueeze(-1), uniform(), q)
            u, g = potential(q)
        raise ValueError(
            "NUTS found no initial point with a finite log density in 100 tries "
            f"(uniform in (-{self.init_radius}, {self.init_radius}) unconstrained) for "
            f"{int((~torch.isfinite(u)).sum())} chain(s)"
        )

    def _sample(self, model, datas, gen, progress):
        B, K = len(datas), self.num_chains
        setup = time.perf_counter()
        potential, _ = make_potential(model, datas, K, mode=self.potential, compile=self.compile)
        D, dtype = potential.dim, potential.dtype
        device = next(iter(datas[0].values())).device if datas[0] else torch.device("cpu")
        q, u, g = self._initial_points(potential, B, K, D, dtype, gen, device)
        inv_mass = torch.ones(B, 1, D, dtype=dtype, device=device)
        leaf_fn, leaf_mode = compile_leaf(potential, self.max_delta_energy, q, u, g, inv_mass,
                                          self.compile if potential.compiled != "none" else "none")
        setup = time.perf_counter() - setup
        info = {"potential": potential, "setup_s": setup, "leaf_mode": leaf_mode}
        if self.schedule == "async":
            bar = tqdm(total=self.warmup_steps + self.num_samples, desc=f"nuts {B}x{K} chains",
                       disable=not progress, leave=False,
                       bar_format="{l_bar}{bar}| {n:.0f}/{total} [{elapsed}<{remaining}]")
            state = sample_async(potential, q, u, g, inv_mass, gen, warmup_steps=self.warmup_steps,
                                 num_samples=self.num_samples,
                                 target_accept_prob=self.target_accept_prob,
                                 max_tree_depth=self.max_tree_depth,
                                 max_delta_energy=self.max_delta_energy, leaf_fn=leaf_fn,
                                 initial_max_tree_depth=INITIAL_MAX_TREE_DEPTH,
                                 progress_bar=NutsProgress(bar, B, K))
            bar.close()
            return {**state, **info}
        log_step = find_step_size(potential, q, u, g, inv_mass,
                                  torch.zeros(B, dtype=torch.float64, device=device), gen)
        averaging = DualAveraging(log_step, self.target_accept_prob)
        windows = adaptation_schedule(self.warmup_steps)
        first_window_end = windows[0][1] + 1 if windows else 0
        variance = PooledVariance((B, D), dtype, device)
        W, S = self.warmup_steps, self.num_samples
        draws = torch.empty(S, B, K, D, dtype=dtype, device=device)
        stats = {k: [] for k in STATS}
        warm_grads = torch.zeros(B, K, dtype=torch.long, device=device)
        warm_idle = torch.zeros(B, K, dtype=torch.long, device=device)
        warm_divergences = torch.zeros(B, K, dtype=torch.long, device=device)
        all_grads = torch.zeros(B, K, dtype=torch.long, device=device)
        phase_ends = {first for first, _ in windows} | {last + 1 for _, last in windows}
        q_mark, resets = q, 0
        all_idle = torch.zeros(B, K, dtype=torch.long, device=device)
        step = averaging.log_step.exp()
        bar = tqdm(total=W + S, desc=f"nuts {B}x{K} chains", disable=not progress, leave=False)
        live = NutsProgress(bar, B, K)
        sampled_divergences = torch.zeros((), dtype=torch.long, device=device)
        for it in range(W + S):
            if it < W:
                step = averaging.log_step.exp()
            elif it == W and W > 0:
                step = averaging.final_log_step.exp()
            depth = self.max_tree_depth
            if it < first_window_end:  # no metric estimate yet: cap the cost of a lockstep step
                depth = min(depth, INITIAL_MAX_TREE_DEPTH)
            t = nuts_transition(potential, q, u, g, step.to(dtype).unsqueeze(-1), inv_mass, gen,
                                depth, self.max_delta_energy, leaf_fn)
            q, u, g = t.z, t.potential, t.grad
            all_idle += t.idle_steps
            all_grads += t.n_steps
            if it < W:
                warm_grads += t.n_steps
                warm_idle += t.idle_steps
                warm_divergences += t.diverging
                averaging.update(t.acceptance_rate.to(torch.float64).mean(1))
                if it + 1 in phase_ends:  # as in the async schedule: restart stuck chains
                    q, u, g, n = reset_stuck_chains(q, u, g, (q != q_mark).any(-1), gen)
                    resets, q_mark = resets + n, q
                for first_it, last_it in windows:
                    if first_it <= it <= last_it:
                        variance.update(q)
                    if it == last_it:
                        inv_mass = variance.inverse_mass()
                        variance = PooledVariance((B, D), dtype, device)
                        log_step = find_step_size(potential, q, u, g, inv_mass,
                                                  averaging.log_step, gen)
                        averaging.restart(log_step)
            else:
                s = it - W
                draws[s] = q
                row = {"diverging": t.diverging, "energy": t.energy, "tree_depth": t.tree_depth,
                       "n_steps": t.n_steps, "step_size": step.to(dtype).unsqueeze(-1).expand(B, K),
                       "acceptance_rate": t.acceptance_rate, "lp": -u}
                for key in STATS:
                    stats[key].append(row[key])
            if it < W:
                live.update(1, "warmup", warm_divergences, step, t.tree_depth)
            else:
                sampled_divergences += t.diverging.sum()
                live.update(1, "sampling", sampled_divergences, step, t.tree_depth,
                            force=it == W + S - 1)
        live.close()
        stats = {k: torch.stack(v) if v else torch.empty(0, B, K) for k, v in stats.items()}
        stats["tree_depth"], stats["n_steps"] = stats["tree_depth"].long(), stats["n_steps"].long()
        return {"draws": draws, "stats": stats, "inv_mass": inv_mass, "warm_grads": warm_grads,
                "warm_idle": warm_idle, "warm_divergences": warm_divergences,
                "grads": all_grads, "idle": all_idle, "warmup_resets": resets, **info}

    # --- results ----------------------------------------------------------------------
    def _assemble(self, model, posteriors, state, seed):
        potential = state["potential"]
        draws, stats = state["draws"], state["stats"]
        S, B, K = draws.shape[:3]
        out = []
        for b, posterior in enumerate(posteriors):
            sites = posterior.validate()
            constrained = potential.constrain(draws[:, b].transpose(0, 1))  # (K, S, ...)
            flat = {k: v.reshape(K * S, *v.shape[2:]).detach() for k, v in constrained.items()}
            with torch.no_grad():
                extra = deterministic_sites(model, flat, posterior.data, sites)
            values = {k: v.detach().cpu().numpy() for k, v in constrained.items()}
            values.update({k: v.reshape(K, S, *v.shape[1:]) for k, v in extra.items()})
            sample_stats = {k: stats[k][:, b].transpose(0, 1).cpu().numpy() for k in STATS}
            sample_stats["diverging"] = sample_stats["diverging"].astype(bool)
            useful = int(state["grads"][b].sum())
            idle = int(state["idle"][b].sum())
            attrs = engine_attrs(self.name, asdict(self), seed, 0.0, useful, posterior)
            attrs.update(
                grad_evals_lockstep=useful + idle,
                lockstep_waste=idle / max(useful + idle, 1),
                potential_mode=potential.mode,
                schedule=self.schedule,
                potential_compiled=state["leaf_mode"],
                warmup_divergences=int(state["warm_divergences"][b].sum()),
                num_posteriors=B,
                num_superchains=self.num_superchains or 0,
                warmup_resets=int(state.get("warmup_resets", 0)),
                potential_setup_s=state["setup_s"],
            )
            # predictive groups only for a single posterior: not for SBC batches or images
            idata = make_inference_data(posterior, values, sample_stats, attrs,
                                        predictive=len(posteriors) == 1)
            out.append(idata)
        return out
