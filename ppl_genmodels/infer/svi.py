"""Stochastic variational inference: maximise the ELBO with ``pyro.infer.SVI``."""

from __future__ import annotations

from dataclasses import dataclass

from pyro.infer import Trace_ELBO, TraceEnum_ELBO, TraceMeanField_ELBO

from ._vi import VariationalEngine

_ELBOS = {"trace": Trace_ELBO, "meanfield": TraceMeanField_ELBO}


@dataclass
class SVI(VariationalEngine):
    """Fit the guide by maximising the ELBO (Kingma & Welling 2014; Hoffman et al. 2013).

    Thin wrapper of ``pyro.infer.SVI`` with ``Trace_ELBO`` (``elbo="trace"``) or
    ``TraceMeanField_ELBO`` (``"meanfield"``: analytic KL where Pyro knows it), optimised by
    ``pyro.optim.ClippedAdam`` with the learning rate decayed tenfold over ``num_steps``.
    Only guide parameters are optimised; theta is frozen (see :class:`~ppl_genmodels.Posterior`).

    Discrete latent sites marked ``infer={'enumerate': 'parallel'}`` are summed out
    exactly: the loss is then ``TraceEnum_ELBO(max_plate_nesting=...)`` whatever ``elbo``
    says, the guide covers only the other latents, and ``log_weight`` uses the
    marginal log p(x, z | theta) = log sum_a p(x, z, a | theta).

    :param num_steps: optimisation steps (full data each step).
    :param num_particles: ELBO particles per step (vectorized when the model broadcasts).
    :param elbo: ``"trace"`` or ``"meanfield"``.
    :param lr: initial Adam learning rate.
    :param num_draws: draws from the fitted guide stored in ``posterior``.
    :raises ValueError: unknown ``elbo``, a count that is not an integer (``num_steps >= 0``,
        ``num_particles, num_draws >= 1``) or ``lr`` not > 0.

    Result ``sample_stats``: ``log_weight`` (nats, per draw) and ``loss`` = negative ELBO
    estimate per step (nats). ``attrs['grad_evals']`` = ``num_steps * num_particles``.
    """

    num_steps: int = 2000
    num_particles: int = 4
    elbo: str = "trace"
    lr: float = 0.02
    num_draws: int = 1000

    name = "svi"
    loss_names = ("loss",)
    supports_enumeration = True

    def __post_init__(self):
        if self.elbo not in _ELBOS:
            raise ValueError(f"elbo must be one of {sorted(_ELBOS)}, got {self.elbo!r}")
        self._check_settings()

    @property
    def particles_per_step(self) -> int:
        return self.num_particles

    def _make_loss(self, vectorize: bool = True):
        return _ELBOS[self.elbo](num_particles=self.num_particles, vectorize_particles=vectorize)

    def _make_enum_loss(self, max_plate_nesting: int, vectorize: bool = True):
        # Pyro puts enumeration dims left of the particle dim it adds at
        # -(max_plate_nesting + 1), so it must know the model's plate nesting.
        return TraceEnum_ELBO(num_particles=self.num_particles, vectorize_particles=vectorize,
                              max_plate_nesting=max_plate_nesting)
