"""Reweighted wake-sleep with ``pyro.infer.ReweightedWakeSleep``."""

from __future__ import annotations

from dataclasses import dataclass

import pyro.poutine as poutine
from pyro.infer import ReweightedWakeSleep

from .._validate import check_fraction, check_int
from ._vi import VariationalEngine, accepts_observations


@dataclass
class RWS(VariationalEngine):
    """Fit the guide by reweighted wake-sleep (Bornschein & Bengio 2015; Le et al. 2019).

    Thin wrapper of ``pyro.infer.ReweightedWakeSleep`` driven by ``pyro.infer.SVI``. The
    guide loss is ``insomnia * wake-phi + (1 - insomnia) * sleep-phi``: ``insomnia=1`` is
    wake-phi only, ``0`` is sleep-phi only (classic wake-sleep's guide update). In the sleep
    phase Pyro simulates (z, x) from the model and calls the guide with
    ``observations={site: x}``. The wake-theta loss is computed and reported, but theta is
    frozen, so it updates nothing. Pyro's RWS does not rescale mini-batches; this engine
    always uses the full data.

    :param num_steps: optimisation steps.
    :param num_particles: importance samples per wake step (> 1, vectorized).
    :param insomnia: weight of wake-phi in [0, 1].
    :param lr: initial Adam learning rate.
    :param num_draws: draws from the fitted guide stored in ``posterior``.
    :param num_sleep_particles: model simulations per sleep step (default ``num_particles``).
    :raises ValueError: ``num_particles < 2``, ``insomnia`` outside [0, 1], a count that
        is not an integer, ``lr`` not > 0; in :meth:`validate`, also a guide without an
        ``observations=`` keyword when ``insomnia < 1`` (the sleep phase passes it).

    Result ``sample_stats``: ``log_weight`` (nats, per draw), ``loss_wake_theta`` = minus
    the importance-weighted log-evidence bound per step (nats) and ``loss_phi``.
    ``attrs['grad_evals']`` = ``num_steps * (num_particles + num_sleep_particles)``, the sleep
    term only when ``insomnia < 1``.
    """

    num_steps: int = 2000
    num_particles: int = 8
    insomnia: float = 1.0
    lr: float = 0.02
    num_draws: int = 1000
    num_sleep_particles: int | None = None

    name = "rws"
    loss_names = ("loss_wake_theta", "loss_phi")

    min_particles = 2

    def __post_init__(self):
        self._check_settings()

    def _check_settings(self) -> None:
        if isinstance(self.num_particles, int) and self.num_particles == 1:
            raise ValueError(
                f"ReweightedWakeSleep needs num_particles > 1 (got {self.num_particles}): with "
                "one particle the normalized weight is always 1"
            )
        super()._check_settings()
        check_fraction("insomnia", self.insomnia, self.name, closed=True)
        if self.num_sleep_particles is not None:
            check_int("num_sleep_particles", self.num_sleep_particles, 1, self.name)

    def validate(self, posterior) -> None:
        """As :meth:`VariationalEngine.validate`; with ``insomnia < 1`` the guide must take
        ``observations=`` (:raises ValueError: naming the guide otherwise)."""
        self._check_settings()
        if self.insomnia < 1 and posterior.guide is not None \
                and not accepts_observations(posterior.guide):
            name = getattr(posterior.guide, "__name__", type(posterior.guide).__name__)
            raise ValueError(
                f"rws with insomnia={self.insomnia} runs a sleep phase that calls the guide "
                f"as guide(**data, observations={{site: simulated x}}), but guide {name!r} "
                "takes no `observations` keyword; add `observations=None` (and read x from it "
                "when given) or use insomnia=1")
        super().validate(posterior)

    @property
    def particles_per_step(self) -> int:
        # Pyro computes the wake traces every step (they give the wake-theta loss).
        sleep = self.num_sleep_particles or self.num_particles
        return self.num_particles + (sleep if self.insomnia < 1 else 0)

    def _fit_model(self, model):
        # The sleep phase runs poutine.uncondition(model), which re-samples the Delta of a
        # pyro.deterministic site and, under vectorized particles, gives it the wrong
        # shape. Deterministic sites add nothing to log p(x, z), so hide them from the loss.
        return poutine.block(model, hide_fn=lambda msg: bool(msg["infer"].get("_deterministic")))

    def _make_loss(self, vectorize: bool = True):
        return ReweightedWakeSleep(
            num_particles=self.num_particles,
            insomnia=self.insomnia,
            num_sleep_particles=self.num_sleep_particles,
            vectorize_particles=vectorize,
        )
