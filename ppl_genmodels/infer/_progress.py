"""The ensemble NUTS sampler's live progress bar: one ``tqdm`` tick per iteration, and a
postfix with the ensemble's shape, the phase, divergences so far, the step size and the
deepest tree of the last iteration (refreshed at most every ``mininterval`` seconds, so a
GPU run is not synchronised every iteration for it)."""

from __future__ import annotations

import time

import torch

__all__ = ["NutsProgress"]


class NutsProgress:
    """Wraps a ``tqdm`` bar of ``warmup_steps + num_samples`` iterations.

    :param bar: the tqdm bar (``disable=True`` makes every call a no-op).
    :param posteriors: B; ``chains``: K per posterior (shown as ``chains=BxK``).
    """

    def __init__(self, bar, posteriors: int, chains: int):
        self.bar = bar
        self.chains = f"{posteriors}x{chains}"
        self._last = -float("inf")
        self._interval = float(getattr(bar, "mininterval", 0.1) or 0.0)

    def update(self, n: float, phase: str, divergences, step, depth, force: bool = False) -> None:
        """Advance by ``n`` iterations; refresh the postfix when due (or ``force``).

        :param phase: ``"warmup"`` or ``"sampling"``.
        :param divergences: divergent transitions so far (tensor or int).
        :param step: step sizes (tensor; the smallest is shown).
        :param depth: tree depths of the last transitions (tensor; the largest is shown).
        """
        if getattr(self.bar, "disable", False):
            return
        self.bar.update(n)
        now = time.monotonic()
        if not force and now - self._last < self._interval:
            return
        self._last = now
        as_float = (lambda v: float(v.min()) if isinstance(v, torch.Tensor) else float(v))
        self.bar.set_postfix(
            chains=self.chains, phase=phase,
            divergences=int(divergences.sum()) if isinstance(divergences, torch.Tensor)
            else int(divergences),
            step=f"{as_float(step):.3g}",
            depth=int(depth.max()) if isinstance(depth, torch.Tensor) and depth.numel()
            else int(depth) if not isinstance(depth, torch.Tensor) else 0,
            refresh=False)

    def close(self) -> None:
        self.bar.close()
