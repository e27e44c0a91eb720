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

__all__ = ["adaptation_schedule", "DualAveraging", "PooledVariance", "find_step_size",
           "reset_stuck_chains"]


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
    """Vectorized dual averaging of log step size: one state per entry of ``log_step``
    (``(B,)``: per posterior, or ``(B, K)``: per chain, each with its own count of updates)."""

    log_step: torch.Tensor
    target: float
    gamma: float = 0.05
    t0: float = 10.0
    kappa: float = 0.75

    def __post_init__(self):
        self.restart(self.log_step)

    def restart(self, log_step: torch.Tensor) -> None:
        """Start afresh at step size exp(``log_step``)."""
        self.mu = math.log(10.0) + log_step
        self.log_step = log_step.clone()
        self.x_bar = torch.zeros_like(log_step)
        self.g_bar = torch.zeros_like(log_step)
        self.t = torch.zeros_like(log_step)

    def update(self, accept_stat: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """One update with the acceptance statistic ``accept_stat`` (shape of ``log_step``),
        for the entries in ``mask`` (all when ``None``)."""
        if mask is None:
            mask = torch.ones_like(self.log_step, dtype=torch.bool)
        accept_stat = torch.nan_to_num(accept_stat.to(self.log_step.dtype), nan=0.0)
        t = self.t + mask.to(self.t.dtype)
        safe_t = t.clamp(min=1)
        g_bar = (1 - 1 / (safe_t + self.t0)) * self.g_bar + (self.target - accept_stat) / (safe_t + self.t0)
        log_step = self.mu - safe_t.sqrt() / self.gamma * g_bar
        weight = safe_t ** (-self.kappa)
        x_bar = weight * log_step + (1 - weight) * self.x_bar
        self.g_bar = torch.where(mask, g_bar, self.g_bar)
        self.log_step = torch.where(mask, log_step, self.log_step)
        self.x_bar = torch.where(mask, x_bar, self.x_bar)
        self.t = t

    @property
    def final_log_step(self) -> torch.Tensor:
        """The averaged log step size used after warm-up (where no update was made: the
        current one)."""
        return torch.where(self.t > 0, self.x_bar, self.log_step)


class PooledVariance:
    """Running per-coordinate variance of ``(B, K, D)`` draws pooled over each posterior's
    K chains (Welford / Chan et al.'s parallel update; chains may be added selectively)."""

    def __init__(self, shape_bd: tuple[int, int], dtype: torch.dtype, device=None):
        self.n = torch.zeros(shape_bd[0], 1, dtype=torch.float64, device=device)
        self.mean = torch.zeros(shape_bd, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(shape_bd, dtype=torch.float64, device=device)
        self.dtype = dtype

    def update(self, z: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Add positions ``(B, K, D)`` of the chains in ``mask`` ``(B, K)`` (all if ``None``)."""
        z = z.to(torch.float64)
        w = (torch.ones(z.shape[:2], dtype=torch.float64, device=z.device) if mask is None
             else mask.to(torch.float64)).unsqueeze(-1)
        count = w.sum(1)  # (B, 1)
        batch_mean = (z * w).sum(1) / count.clamp(min=1)
        batch_m2 = (((z - batch_mean.unsqueeze(1)) ** 2) * w).sum(1)
        n = self.n + count
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (count / n.clamp(min=1))
        self.m2 = self.m2 + batch_m2 + delta ** 2 * (self.n * count / n.clamp(min=1))
        self.n = n

    def inverse_mass(self) -> torch.Tensor:
        """Stan's regularized variance estimate ``(B, 1, D)``: the diagonal of M^-1."""
        n = self.n
        var = self.m2 / (n - 1).clamp(min=1)
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
        r = torch.randn(z.shape, generator=generator, device="cpu", dtype=z.dtype).to(z.device) * inv_mass.rsqrt()
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


def reset_stuck_chains(z, u, g, moved: torch.Tensor, generator: torch.Generator):
    """Warm-up only: a chain that did not move for a whole warm-up phase (every transition
    rejected: typically started where the density is tiny and the posterior's shared step
    size is far too large for it) restarts from the state of a chain of the same posterior
    that did move, drawn at random. Draws after warm-up are untouched, so the chains'
    stationary distribution is unchanged; only where warm-up starts them changes (as
    re-initialising a chain would).

    :param moved: ``(B, K)`` bool, whether each chain moved during the phase.
    :returns: ``(z, u, g, num_reset)``.
    """
    stuck = ~moved
    donors_exist = moved.any(1)
    reset = stuck & donors_exist.unsqueeze(1)
    if not bool(reset.any()):
        return z, u, g, 0
    weights = moved.to(torch.float64).cpu()
    weights[~donors_exist.cpu()] = 1.0  # rows without donors: unused
    B, K = moved.shape
    donor = torch.multinomial(weights, K, replacement=True, generator=generator).to(z.device)
    bidx = torch.arange(B, device=z.device).view(-1, 1).expand(B, K)
    r3 = reset.unsqueeze(-1)
    z = torch.where(r3, z[bidx, donor], z)
    g = torch.where(r3, g[bidx, donor], g)
    u = torch.where(reset, u[bidx, donor], u)
    return z, u, g, int(reset.sum())
