"""Pyro's own No-U-Turn sampler (``pyro.infer.MCMC``), one chain at a time: engine
``pyro_nuts``, kept for cross-checks of the ensemble sampler :class:`~ppl_genmodels.infer.NUTS`."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import MCMC
from pyro.infer import NUTS as PyroNUTS
from pyro.poutine.messenger import Messenger

from ..posterior import Posterior
from .._validate import check_fraction, check_int, check_seed
from ._draws import deterministic_sites
from .base import EngineResult
from .nuts import check_nuts_sites
from .result import engine_attrs, make_inference_data


class _Tape(Messenger):
    """Record the values of sample sites (repeated names allowed, first value kept)."""

    def __enter__(self):
        self.values = {}
        return super().__enter__()

    def _pyro_post_sample(self, msg):
        self.values.setdefault(msg["name"], msg["value"])


class IterationStats(NamedTuple):
    """The statistics of one NUTS iteration, named as ArviZ's ``sample_stats`` schema names
    them (the fields become the ``sample_stats`` variables of a :class:`NUTS` result)."""

    diverging: bool  # the trajectory diverged
    energy: float  # Hamiltonian at the start of the iteration (nats)
    tree_depth: int  # tree doublings
    n_steps: int  # gradient evaluations (leapfrog steps)
    step_size: float  # leapfrog step size (unconstrained units)
    acceptance_rate: float  # mean Metropolis acceptance probability over the trajectory
    lp: float  # log density at the new point, unconstrained space (nats)


_STAT_DTYPES = {"diverging": bool, "tree_depth": np.int64, "n_steps": np.int64}


def stack_stats(chains: list[list[IterationStats]]) -> dict[str, np.ndarray]:
    """Per-chain lists of :class:`IterationStats` -> name -> ``(chain, draw)`` array."""
    return {
        name: np.asarray([[getattr(r, name) for r in chain] for chain in chains],
                         dtype=_STAT_DTYPES.get(name, np.float64))
        for name in IterationStats._fields
    }


class _RecordingNUTS(PyroNUTS):
    """Pyro's NUTS kernel, unchanged, plus a record of each iteration's statistics.

    Pyro keeps per-iteration statistics local to ``NUTS.sample``; its random choices are
    ``pyro.sample`` sites, so tracing one call recovers the momentum (hence the energy) and
    the number of tree doublings. Gradient evaluations are counted by wrapping the
    potential function.
    """

    def setup(self, warmup_steps, *args, **kwargs):
        super().setup(warmup_steps, *args, **kwargs)
        self.num_grad_evals = 0
        self.records = []
        inner = self.potential_fn

        def counted(params):
            self.num_grad_evals += 1
            with poutine.block():  # keep the model's sites out of the tape in `sample`
                return inner(params)

        self._uncounted_potential_fn = inner
        self.potential_fn = counted

    def sample(self, params):
        t = self._t
        potential = self._potential_energy_last
        if potential is None:
            potential = self._uncounted_potential_fn(params)
        mean_before = self._mean_accept_prob
        divergences_before = len(self._divergences)
        evals_before = self.num_grad_evals
        with _Tape() as tape:
            z = super().sample(params)
        nodes = tape.values
        r_unscaled = {
            key: nodes[f"r_t={t}_{key}"]
            for key in self.mass_matrix_adapter.mass_matrix_size
            if f"r_t={t}_{key}" in nodes
        }
        energy = potential + self._kinetic_energy(r_unscaled) if r_unscaled else potential
        n = self._t - self._warmup_steps if self._t > self._warmup_steps else self._t
        self.records.append(IterationStats(
            diverging=len(self._divergences) > divergences_before,
            energy=float(energy),
            tree_depth=sum(name.startswith(f"direction_t={t}_") for name in nodes),
            n_steps=self.num_grad_evals - evals_before,
            step_size=float(self.step_size),
            # Pyro keeps only a running mean; invert its update (clip rounding error).
            acceptance_rate=min(
                max(mean_before + n * (self._mean_accept_prob - mean_before), 0.0), 1.0),
            lp=-float(self._potential_energy_last),
        ))
        return z




@contextlib.contextmanager
def _progress_logging(progress: bool):
    """Pyro's MCMC advances its tqdm bar from ``logger.info`` records of the logger
    ``pyro.infer.mcmc`` (``MCMCLoggingHandler``): with the ``pyro`` logger at WARNING (as
    the CLI sets it, to hide "Guessed max_plate_nesting") those records are dropped and the
    bar stays at 0/N for the whole run. Let that logger's INFO records through while a
    run shows progress (it does not propagate: Pyro's handler writes above the bar)."""
    logger = logging.getLogger("pyro.infer.mcmc")
    level = logger.level
    if progress and logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(level)


@dataclass
class PyroNUTS:
    """Sample the posterior with the No-U-Turn sampler (Hoffman & Gelman 2014).

    ``pyro.infer.MCMC`` with ``pyro.infer.NUTS``, one chain at a time in this process
    (Pyro's multiprocess chains are known to hang), each with its own seed and random
    initialisation (``init_to_uniform``). Discrete latent sites must be marked
    ``infer={'enumerate': 'parallel'}`` so Pyro sums them out.

    :param num_samples: post-warmup draws per chain.
    :param warmup_steps: adaptation iterations per chain (step size, diagonal mass matrix).
    :param num_chains: chains (default 2, so R-hat is defined).
    :param target_accept_prob: dual-averaging target.
    :param jit_compile: ``torch.jit.trace`` the potential (deprecated in torch 2.13).
    :param max_tree_depth: maximum tree doublings per iteration.
    :raises ValueError: the model has discrete latent sites not marked for enumeration, or
        a count is < 1.

    Result ``sample_stats`` use ArviZ's schema names: ``diverging``, ``energy`` (Hamiltonian
    at the start of the iteration, nats), ``tree_depth`` (doublings), ``n_steps`` (gradient
    evaluations), ``step_size``, ``acceptance_rate``, ``lp`` (log density in unconstrained
    space). ``attrs['grad_evals']`` counts every gradient evaluation, warm-up included.
    """

    num_samples: int = 1000
    warmup_steps: int = 1000
    num_chains: int = 2
    target_accept_prob: float = 0.8
    jit_compile: bool = False
    max_tree_depth: int = 10

    name = "pyro_nuts"

    def validate(self, posterior: Posterior) -> None:
        """:raises ValueError: before sampling, for discrete latents or bad counts."""
        self.__post_init__()
        check_nuts_sites(posterior)

    def __post_init__(self):
        for key in ("num_samples", "num_chains", "max_tree_depth"):
            check_int(key, getattr(self, key), 1, "pyro_nuts")
        check_int("warmup_steps", self.warmup_steps, 0, "pyro_nuts")
        check_fraction("target_accept_prob", self.target_accept_prob, "pyro_nuts")

    def run(self, posterior: Posterior, seed: int = 0, *, progress: bool = True) -> EngineResult:
        """Run ``num_chains`` chains and return their draws as InferenceData.

        :returns: :class:`~.base.EngineResult` whose InferenceData has ``num_chains``
            chains of ``num_samples`` draws (no guide).
        """
        seed = check_seed(seed)
        self.validate(posterior)
        sites = posterior.validate()
        start = time.perf_counter()
        chain_seeds = np.random.SeedSequence(seed).generate_state(self.num_chains)
        samples, stats, grad_evals = [], [], 0
        with posterior.session() as (model, _), _progress_logging(progress):
            for chain, chain_seed in enumerate(chain_seeds):
                pyro.set_rng_seed(int(chain_seed))
                kernel = _RecordingNUTS(
                    model,
                    target_accept_prob=self.target_accept_prob,
                    jit_compile=self.jit_compile,
                    ignore_jit_warnings=True,
                    max_tree_depth=self.max_tree_depth,
                    max_plate_nesting=sites.max_plate_nesting if sites.enumerated else None,
                )
                mcmc = MCMC(kernel, num_samples=self.num_samples, warmup_steps=self.warmup_steps,
                            num_chains=1, disable_progbar=not progress)
                mcmc.run(**posterior.data)
                draws = {k: v.detach() for k, v in mcmc.get_samples().items()}
                draws.update(
                    {k: torch.as_tensor(v) for k, v in
                     deterministic_sites(model, draws, posterior.data, sites).items()}
                )
                samples.append({k: v.cpu().numpy() for k, v in draws.items()})
                stats.append(kernel.records[-self.num_samples:])
                grad_evals += kernel.num_grad_evals
        wall = time.perf_counter() - start
        draws = {k: np.stack([s[k] for s in samples]) for k in samples[0]}
        attrs = engine_attrs(self.name, asdict(self), seed, wall, grad_evals, posterior)
        return EngineResult(make_inference_data(posterior, draws, stack_stats(stats), attrs))
