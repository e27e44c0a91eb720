"""Multinomial NUTS for an ensemble whose chains do not wait for each other.

:func:`run_transitions` advances every chain by a given number of NUTS transitions. Each
global step is one batched leapfrog step for all chains, but each chain keeps its own place
in its own trajectory (depth, leaf index, direction: a per-chain "program counter", as in
Radul et al. 2020, "Automatically batching control-intensive programs for modern
accelerators", and TFP's ``NoUTurnSampler``): a chain whose trajectory ends starts its next
transition on the next step instead of idling until the longest trajectory of the ensemble
has ended. Chains idle only at the end of a call (the phases between adaptation windows).

The transition itself is the same as :func:`._nuts_kernel.nuts_transition` (Stan's
multinomial NUTS with the extra U-turn checks): the leaf update is shared
(:func:`._nuts_kernel.leaf_update`); the U-turn checks read the momenta and running sums of
the current sub-tree from a per-chain history of 2^(max_tree_depth - 1) leaves.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from ._nuts_kernel import _criterion, kinetic_energy, leaf_update

__all__ = ["run_transitions"]


def _gather(hist: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``hist[b, k, index[b, k]]`` for every chain: ``(B, K, L, D)``, ``(B, K)`` -> ``(B, K, D)``."""
    idx = index.clamp(min=0).unsqueeze(-1).unsqueeze(-1).expand(*index.shape, 1, hist.shape[-1])
    return hist.gather(2, idx).squeeze(2)


def run_transitions(
    potential: Callable,
    z: torch.Tensor,
    potential_energy: torch.Tensor,
    grad: torch.Tensor,
    step_size: Callable[[], torch.Tensor],
    inv_mass: torch.Tensor,
    generator: torch.Generator,
    num_transitions: int,
    on_transition: Callable[[torch.Tensor, dict], None],
    max_tree_depth: int = 10,
    max_delta_energy: float = 1000.0,
    leaf_fn: Callable | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict]:
    """Advance each chain by ``num_transitions`` NUTS transitions.

    :param potential: ``q (B, K, D) -> (U (B, K), dU/dq (B, K, D))``.
    :param z, potential_energy, grad: the chains' states ``(B, K, D)``, ``(B, K)``, ``(B, K, D)``.
    :param step_size: returns the current ``(B, K)`` step sizes; read when a chain starts a
        transition (so a chain's step size may change between its transitions).
    :param inv_mass: ``(B, 1, D)`` diagonal inverse metric, fixed during the call.
    :param on_transition: called after every global step with ``done`` ``(B, K)`` (the
        chains that completed a transition at this step) and a dict of ``(B, K[, D])``
        tensors: ``z``, ``potential``, ``energy`` (H at the new draw), ``acceptance_rate``,
        ``diverging``, ``tree_depth``, ``n_steps``, ``step_size``, ``index`` (the chain's
        transition count before this one, within the call).
    :returns: ``(z, potential, grad, counts)``; ``counts`` has ``grad_evals`` and
        ``idle_steps`` per chain ``(B, K)`` (gradients computed while the chain was waiting).
    """
    shape = z.shape[:2]
    dtype, device = z.dtype, z.device
    L = 2 ** max(max_tree_depth - 1, 0)
    if leaf_fn is None:
        def leaf_fn(*args):
            return leaf_update(potential, max_delta_energy, *args)
    zeros = torch.zeros(shape, dtype=dtype, device=device)
    long0 = torch.zeros(shape, dtype=torch.long, device=device)
    false = torch.zeros(shape, dtype=torch.bool, device=device)
    hist_r = torch.zeros(*shape, L, z.shape[-1], dtype=dtype, device=device)
    hist_pre = torch.zeros_like(hist_r)

    def rand(*extra):
        return torch.rand(shape + extra, generator=generator, device="cpu", dtype=dtype).to(device)

    # Per-chain program state.
    done_count = long0.clone()  # transitions completed in this call
    running = torch.ones(shape, dtype=torch.bool, device=device)
    s = {}

    def start(mask: torch.Tensor, zq, uq, gq):
        """Chains in ``mask`` start a transition from (zq, uq, gq): fresh momentum, first
        doubling of depth 0 in a random direction."""
        m3 = mask.unsqueeze(-1)
        r0 = torch.randn(z.shape, generator=generator, device="cpu", dtype=dtype).to(device) * inv_mass.rsqrt()
        h0 = uq + kinetic_energy(r0, inv_mass)
        eps = step_size().to(device=device, dtype=dtype).expand(shape)
        new = {
            "energy0": h0, "eps": eps,
            "z_left": zq, "r_left": r0, "g_left": gq, "z_right": zq, "r_right": r0, "g_right": gq,
            "z_prop": zq, "u_prop": uq, "g_prop": gq, "h_prop": h0, "rho": r0,
            "log_weight": zeros, "depth": long0, "kept": long0, "sum_accept": zeros,
            "n_steps": long0, "diverging": false,
        }
        for key, value in new.items():
            if key not in s:
                s[key] = value.clone()
            else:
                s[key] = torch.where(m3 if value.dim() == 3 else mask, value, s[key])
        begin_doubling(mask)

    def begin_doubling(mask: torch.Tensor):
        m3 = mask.unsqueeze(-1)
        go_right = rand() < 0.5
        gr = go_right.unsqueeze(-1)
        new = {
            "go_right": go_right,
            "cur_z": torch.where(gr, s["z_right"], s["z_left"]),
            "cur_r": torch.where(gr, s["r_right"], s["r_left"]),
            "cur_g": torch.where(gr, s["g_right"], s["g_left"]),
            "leaf": long0, "sub_weight": torch.full(shape, -math.inf, dtype=dtype, device=device),
            "sub_z": s["z_left"], "sub_g": s["g_left"], "sub_u": zeros, "sub_h": s["energy0"],
            "prefix": torch.zeros_like(z),
        }
        for key, value in new.items():
            if key not in s:
                s[key] = value.clone()
            else:
                s[key] = torch.where(m3 if value.dim() == 3 else mask, value, s[key])

    all_chains = torch.ones(shape, dtype=torch.bool, device=device)
    start(all_chains, z, potential_energy, grad)
    grads = long0.clone()
    idle = long0.clone()
    u_now, g_now, z_now = potential_energy.clone(), grad.clone(), z.clone()
    if num_transitions < 1:
        running = false.clone()
    while bool(running.any()):
        building = running
        signed = torch.where(s["go_right"], s["eps"], -s["eps"]).unsqueeze(-1)
        (cur_z, cur_r, cur_g, sub_z, sub_g, sub_u, sub_h, sub_weight, sum_accept, n_steps, idle,
         diverging, prefix, r1, stop) = leaf_fn(
            s["cur_z"], s["cur_r"], s["cur_g"], signed, inv_mass, s["energy0"], building,
            rand(), s["sub_z"], s["sub_g"], s["sub_u"], s["sub_h"], s["sub_weight"],
            s["sum_accept"], s["n_steps"], idle, s["diverging"], s["prefix"])
        s.update(cur_z=cur_z, cur_r=cur_r, cur_g=cur_g, sub_z=sub_z, sub_g=sub_g, sub_u=sub_u,
                 sub_h=sub_h, sub_weight=sub_weight, sum_accept=sum_accept, n_steps=n_steps,
                 diverging=diverging, prefix=prefix)
        grads += building
        leaf = s["leaf"]
        bidx = torch.arange(shape[0], device=device).view(-1, 1).expand(shape)
        kidx = torch.arange(shape[1], device=device).view(1, -1).expand(shape)
        hist_r[bidx, kidx, leaf.clamp(max=L - 1)] = r1
        hist_pre[bidx, kidx, leaf.clamp(max=L - 1)] = prefix
        # U-turn checks of the sub-sub-trees that this leaf completes (per chain).
        size_of_subtree = 2 ** s["depth"]
        largest = int(size_of_subtree[building].max()) if bool(building.any()) else 0
        stop = stop.clone()
        size = 2
        while size <= largest:
            m = building & ((leaf + 1) % size == 0) & (size <= size_of_subtree)
            if bool(m.any()):
                a = leaf + 1 - size
                before_a = torch.where((a > 0).unsqueeze(-1), _gather(hist_pre, a - 1), 0.0)
                r_a = _gather(hist_r, a)
                ok = _criterion(inv_mass * r_a, inv_mass * r1, prefix - before_a)
                if size > 2:
                    mid = leaf + 1 - size // 2
                    ok &= _criterion(inv_mass * r_a, inv_mass * _gather(hist_r, mid),
                                     _gather(hist_pre, mid) - before_a)
                    before_mid = torch.where((mid >= 2).unsqueeze(-1),
                                             _gather(hist_pre, mid - 2), 0.0)
                    ok &= _criterion(inv_mass * _gather(hist_r, mid - 1), inv_mass * r1,
                                     prefix - before_mid)
                stop |= m & ~ok
            size *= 2
        invalid = building & stop
        complete = building & (stop | (leaf + 1 == size_of_subtree))
        s["leaf"] = torch.where(building & ~complete, leaf + 1, leaf)
        if bool(complete.any()):
            _merge(s, complete, invalid, hist_r, inv_mass, rand, max_tree_depth, start,
                   begin_doubling, running, done_count, num_transitions, on_transition,
                   z_now, u_now, g_now)
            running = done_count < num_transitions
    return z_now, u_now, g_now, {"grad_evals": grads, "idle_steps": idle}


def _merge(s, complete, invalid, hist_r, inv_mass, rand, max_tree_depth, start, begin_doubling,
           running, done_count, num_transitions, on_transition, z_now, u_now, g_now):
    """Merge completed sub-trees into their trajectories; end the transitions that stop;
    report them and start the next ones."""
    valid = complete & ~invalid
    v3 = valid.unsqueeze(-1)
    take = valid & (rand() < torch.exp(s["sub_weight"] - s["log_weight"]))
    t3 = take.unsqueeze(-1)
    s["z_prop"] = torch.where(t3, s["sub_z"], s["z_prop"])
    s["g_prop"] = torch.where(t3, s["sub_g"], s["g_prop"])
    s["u_prop"] = torch.where(take, s["sub_u"], s["u_prop"])
    s["h_prop"] = torch.where(take, s["sub_h"], s["h_prop"])
    s["log_weight"] = torch.where(valid, torch.logaddexp(s["log_weight"], s["sub_weight"]),
                                  s["log_weight"])
    gr = s["go_right"].unsqueeze(-1)
    first_r = hist_r[:, :, 0]
    last_r = s["cur_r"]
    old_junction = torch.where(gr, s["r_right"], s["r_left"])
    old_far = torch.where(gr, s["r_left"], s["r_right"])
    rho_old, rho_new = s["rho"], s["prefix"]
    s["rho"] = torch.where(v3, rho_old + rho_new, rho_old)
    for side, mask in (("right", v3 & gr), ("left", v3 & ~gr)):
        s[f"z_{side}"] = torch.where(mask, s["cur_z"], s[f"z_{side}"])
        s[f"r_{side}"] = torch.where(mask, s["cur_r"], s[f"r_{side}"])
        s[f"g_{side}"] = torch.where(mask, s["cur_g"], s[f"g_{side}"])
    s["kept"] = s["kept"] + valid.long()
    ok = _criterion(inv_mass * s["r_left"], inv_mass * s["r_right"], s["rho"])
    ok &= _criterion(inv_mass * old_far, inv_mass * first_r, rho_old + first_r)
    ok &= _criterion(inv_mass * old_junction, inv_mass * last_r, rho_new + old_junction)
    s["depth"] = torch.where(complete, s["depth"] + 1, s["depth"])
    ended = complete & (invalid | ~ok | (s["depth"] >= max_tree_depth))
    again = complete & ~ended
    if bool(again.any()):
        begin_doubling(again)
    if bool(ended.any()):
        e3 = ended.unsqueeze(-1)
        info = {"z": s["z_prop"], "potential": s["u_prop"], "energy": s["h_prop"],
                "acceptance_rate": s["sum_accept"] / s["n_steps"].clamp(min=1),
                "diverging": s["diverging"], "tree_depth": s["kept"], "n_steps": s["n_steps"],
                "step_size": s["eps"], "index": done_count.clone()}
        on_transition(ended, info)
        z_now.copy_(torch.where(e3, s["z_prop"], z_now))
        u_now.copy_(torch.where(ended, s["u_prop"], u_now))
        g_now.copy_(torch.where(e3, s["g_prop"], g_now))
        done_count += ended.long()
        restart = ended & (done_count < num_transitions)
        if bool(restart.any()):
            start(restart, z_now, u_now, g_now)


def sample_async(potential, q, u, g, inv_mass, gen, *, warmup_steps: int, num_samples: int,
                 target_accept_prob: float, max_tree_depth: int, max_delta_energy: float,
                 leaf_fn=None, initial_max_tree_depth: int = 6, progress_bar=None) -> dict:
    """Warm-up and sampling with :func:`run_transitions`, phase by phase.

    Phases end where Stan's windowed adaptation needs every chain of a posterior at the
    same iteration: at the start and end of each slow window (the metric of each posterior
    is then re-estimated from all its chains' draws in the window, and the step size
    searched again) and at the end of warm-up. Inside a phase each chain runs on at its own
    pace; a transition starts with its posterior's current step size, and the posterior's
    dual averaging is updated with the mean acceptance statistic of every K transitions
    its chains finish (each transition weighs the same, as in lockstep).

    Chains that did not move during a warm-up phase restart from a moving chain of their
    posterior (:func:`._adaptation.reset_stuck_chains`; counted in ``warmup_resets``).

    :returns: ``draws`` ``(S, B, K, D)``, ``stats`` (name -> ``(S, B, K)``), ``inv_mass``,
        ``warm_grads``, ``warm_idle``, ``warm_divergences`` (``(B, K)``), ``grads``, ``idle``,
        ``warmup_resets``.
    """
    from ._adaptation import (DualAveraging, PooledVariance, adaptation_schedule,
                              find_step_size, reset_stuck_chains)

    B, K, D = q.shape
    dtype, device = q.dtype, q.device
    W, S = warmup_steps, num_samples
    log_step = find_step_size(potential, q, u, g, inv_mass,
                              torch.zeros(B, dtype=torch.float64, device=device), gen)
    averaging = DualAveraging(log_step, target_accept_prob)  # one per posterior, pooled
    pending = [torch.zeros(B, dtype=torch.float64, device=device),
               torch.zeros(B, dtype=torch.long, device=device)]
    windows = adaptation_schedule(W)
    bounds = sorted({0, W, W + S, *(first for first, _ in windows),
                     *(last + 1 for _, last in windows)})
    variance = PooledVariance((B, D), dtype, device)
    draws = torch.empty(S, B, K, D, dtype=dtype, device=device)
    names = ("diverging", "energy", "tree_depth", "n_steps", "step_size", "acceptance_rate", "lp")
    stats = {k: torch.zeros(S, B, K, dtype=torch.bool if k == "diverging" else
                            torch.long if k in ("tree_depth", "n_steps") else dtype,
                            device=device) for k in names}
    warm_divergences = torch.zeros(B, K, dtype=torch.long, device=device)
    bidx = torch.arange(B, device=device).view(-1, 1).expand(B, K)
    kidx = torch.arange(K, device=device).view(1, -1).expand(B, K)
    final_step = None
    grads = torch.zeros(B, K, dtype=torch.long, device=device)
    idle = torch.zeros_like(grads)
    warm_grads = warm_idle = None
    resets = 0
    for start, end in zip(bounds[:-1], bounds[1:]):
        warm = end <= W
        in_window = next(((a, b) for a, b in windows if a <= start <= b), None)

        if warm:
            step_fn = lambda: averaging.log_step.exp().to(dtype).unsqueeze(-1).expand(B, K)  # noqa: E731
        else:
            if final_step is None:
                final_step = averaging.final_log_step.exp().to(dtype).unsqueeze(-1).expand(B, K)
            step_fn = lambda: final_step  # noqa: E731

        def on_transition(done, info, start=start, warm=warm, in_window=in_window, step_fn=step_fn):
            iteration = start + info["index"]
            if warm:
                # One update per K finished transitions of a posterior, so that every
                # transition weighs the same (updating whenever some chain finishes would
                # weigh the short trajectories, often the divergent ones, more).
                pending[0] += (info["acceptance_rate"].to(torch.float64) * done).sum(1)
                pending[1] += done.sum(1)
                full = pending[1] >= K
                if bool(full.any()):
                    averaging.update(pending[0] / pending[1].clamp(min=1), full)
                    pending[0] = torch.where(full, 0.0, pending[0])
                    pending[1] = torch.where(full, 0, pending[1])
                warm_divergences.add_(done & info["diverging"])
                if in_window is not None:
                    variance.update(info["z"], done)
            else:
                sel = done.nonzero(as_tuple=True)
                s_index = (iteration - W)[sel]
                draws[s_index, bidx[sel], kidx[sel]] = info["z"][sel]
                row = dict(info, lp=-info["potential"])
                for key in names:
                    stats[key][s_index, bidx[sel], kidx[sel]] = row[key][sel].to(stats[key].dtype)
            if progress_bar is not None:  # a NutsProgress
                depth = info["tree_depth"][done] if bool(done.any()) else info["tree_depth"]
                progress_bar.update(int(done.sum()) / K / B, "warmup" if warm else "sampling",
                                    warm_divergences if warm else stats["diverging"],
                                    step_fn(), depth)

        depth = max_tree_depth
        if warm and windows and end <= windows[0][1] + 1:  # no metric estimate yet: cap
            depth = min(depth, initial_max_tree_depth)
        q_start = q
        q, u, g, counts = run_transitions(potential, q, u, g, step_fn, inv_mass, gen, end - start,
                                          on_transition, depth, max_delta_energy, leaf_fn)
        if warm and end - start >= 10:
            q, u, g, n = reset_stuck_chains(q, u, g, (q != q_start).any(-1), gen)
            resets += n
        grads += counts["grad_evals"]
        idle += counts["idle_steps"]
        if end == W:
            warm_grads, warm_idle = grads.clone(), idle.clone()
        if in_window is not None and end == in_window[1] + 1:  # a slow window ends
            inv_mass = variance.inverse_mass()
            variance = PooledVariance((B, D), dtype, device)
            log_step = find_step_size(potential, q, u, g, inv_mass, averaging.log_step, gen)
            averaging.restart(log_step)
            pending[0].zero_(), pending[1].zero_()
    if warm_grads is None:
        warm_grads, warm_idle = torch.zeros_like(grads), torch.zeros_like(idle)
    return {"draws": draws, "stats": stats, "inv_mass": inv_mass, "warm_grads": warm_grads,
            "warm_idle": warm_idle, "warm_divergences": warm_divergences, "grads": grads,
            "idle": idle, "warmup_resets": resets}
