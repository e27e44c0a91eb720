"""Stan's windowed warm-up for an ensemble: one step size and one diagonal metric per posterior,
estimated from all of that posterior's chains together.

- Schedule (Stan reference manual, "HMC algorithm parameters" / ``windowed_adaptation``): an
  initial fast interval (75 iterations), slow windows of 25, 50, 100, ... iterations that
  end with a metric update, a terminal fast interval (50); the same 15% / 75% / 10% split
  when the warm-up is shorter than 150 iterations.
- Step size: Nesterov dual averaging (Hoffman & Gelman 2014, algorithm 5; Stan's
  ``stepsize_adaptation``: gamma 0.05, t0 10, kappa 0.75, mu = log(10 eps)), driven by the
  mean acceptance statistic over the posterior's chains, restarted after each metric update.
- Metric: the variance of each unconstrained coordinate over the slow window, pooled over
  the posterior's K chains (K times the draws of one Stan chain: cross-chain adaptation in
  the spirit of ChEES-HMC / MEADS, Hoffman et al. 2021, 2022), shrunk towards 1e-3 as Stan
  does: (n / (n + 5)) var + 1e-3 (5 / (n + 5)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["adaptation_schedule", "DualAveraging", "PooledVariance", "find_step_size"]


def adaptation_schedule(warmup_steps: int) -> list[tuple[int, int]]:
    """Stan's slow windows: ``(first, last)`` iterations (0-based, inclusive); the metric is
    updated at the end of each.

    :returns: windows in order; empty when ``warmup_steps < 20`` (step size only).
    """
    if warmup_steps < 20:
        return []
    init_buffer, term_buffer, base_window = 75, 50, 25
    if warmup_steps < init_buffer + term_buffer + base_window:
        init_buffer = int(0.15 * warmup_steps)
        term_buffer = int(0.1 * warmup_steps)
        base_window = warmup_steps - init_buffer - term_buffer
    ends = []
    start, window = init_buffer, base_window
    last = warmup_steps - term_buffer
    while start < last:
        end = start + window
        if end + 2 * window > last:  # the next window would not fit: stretch this one
            end = last
        ends.append((start, end - 1))
        start, window = end, 2 * window
    return ends


@dataclass
class DualAveraging:
    """Vectorized dual averaging of log step size, one state per posterior ``(B,)``."""

    log_step: torch.Tensor
    target: float
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75

    def __post_init__(self):
        self.restart(self.log_step)

    def restart(self, log_step: torch.Tensor) -> None:
        """Start afresh at step size exp(``log_step``) ``(B,)``."""
        self.mu = math.log(10.0) + log_step
        self.log_step = log_step.clone()
        self.x_bar = torch.zeros_like(log_step)
        self.g_bar = torch.zeros_like(log_step)
        self.t = 0

    def update(self, accept_stat: torch.Tensor) -> None:
        """One update with the mean acceptance statistic per posterior ``(B,)``."""
        self.t += 1
        t = self.t
        accept_stat = torch.nan_to_num(accept_stat, nan=0.0)
        self.g_bar = (1 - 1 / (t + self.t0)) * self.g_bar + (self.target - accept_stat) / (t + self.t0)
        self.log_step = self.mu - math.sqrt(t) / self.gamma * self.g_bar
        weight = t ** (-self.kappa)
        self.x_bar = weight * self.log_step + (1 - weight) * self.x_bar

    @property
    def final_log_step(self) -> torch.Tensor:
        """The averaged log step size used after warm-up ``(B,)``."""
        return self.x_bar if self.t > 0 else self.log_step


class PooledVariance:
    """Running per-coordinate variance of ``(B, K, D)`` draws pooled over K (Welford)."""

    def __init__(self, shape_bd: tuple[int, int], dtype: torch.dtype, device=None):
        self.n = 0
        self.mean = torch.zeros(shape_bd, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(shape_bd, dtype=torch.float64, device=device)
        self.dtype = dtype

    def update(self, z: torch.Tensor) -> None:
        """Add one iteration's positions ``(B, K, D)``."""
        z = z.to(torch.float64)
        k = z.shape[1]
        batch_mean = z.mean(1)
        batch_m2 = ((z - batch_mean.unsqueeze(1)) ** 2).sum(1)
        n = self.n + k
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (k / n)
        self.m2 = self.m2 + batch_m2 + delta ** 2 * (self.n * k / n)
        self.n = n

    def inverse_mass(self) -> torch.Tensor:
        """Stan's regularized variance estimate ``(B, 1, D)``: the diagonal of M^-1."""
        n = self.n
        var = self.m2 / max(n - 1, 1)
        var = (n / (n + 5.0)) * var + 1e-3 * (5.0 / (n + 5.0))
        return var.to(self.dtype).unsqueeze(1)


def find_step_size(potential, z, u, grad, inv_mass, log_step, generator,
                   target: float = 0.8, max_iter: int = 100) -> torch.Tensor:
    """Stan's ``init_stepsize`` per posterior: double or halve the step size until the mean
    one-leapfrog acceptance over the posterior's chains crosses ``target``.

    :param log_step: ``(B,)`` starting log step sizes.
    :returns: ``(B,)`` log step sizes.
    :raises RuntimeError: the step size ran to 0 or above 1e7 (a posterior with no scale).
    """
    from ._nuts_kernel import kinetic_energy, leapfrog

    log_step = log_step.clone()
    direction = None
    done = torch.zeros_like(log_step, dtype=torch.bool)
    finite = torch.isfinite(u)
    for _ in range(max_iter):
        r = torch.randn(z.shape, generator=generator, dtype=z.dtype).to(z.device) * inv_mass.rsqrt()
        h0 = u + kinetic_energy(r, inv_mass)
        step = log_step.exp().view(-1, 1, 1).to(device=z.device, dtype=z.dtype)
        _, r1, _, u1 = leapfrog(potential, z, r, grad, step, inv_mass)
        delta = h0 - (u1 + kinetic_energy(r1, inv_mass))
        delta = torch.where(torch.isnan(delta), torch.full_like(delta, -math.inf), delta)
        accept = torch.where(finite, delta.clamp(max=0).exp(), torch.nan).nanmean(1)
        accept = torch.nan_to_num(accept, nan=0.0)
        up = accept > target
        if direction is None:
            direction = torch.where(up, 1.0, -1.0).to(log_step.dtype)
        crossed = torch.where(direction > 0, ~up, up)
        done |= crossed
        if bool(done.all()):
            break
        log_step = torch.where(done, log_step, log_step + direction * math.log(2.0))
        if bool((log_step[~done] > math.log(1e7)).any()) or bool((log_step[~done] < math.log(1e-12)).any()):
            raise RuntimeError(
                "NUTS could not find a step size (it ran past 1e7 or below 1e-12): the "
                "posterior is improper or has no finite scale in some direction"
            )
    return log_step
