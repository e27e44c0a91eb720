"""One multinomial NUTS transition for an ensemble of chains in lockstep.

All tensors carry a leading ``(B, K)`` batch: B posteriors, K chains each; positions and
momenta are ``(B, K, D)``. Every leapfrog step is one batched call of the potential for all
chains; a chain whose trajectory has stopped (U-turn, divergence) is masked and waits while
the others finish their doubling (the *lockstep waste*, counted in ``idle_steps``).

The algorithm is Stan's multinomial NUTS (Betancourt 2017, "A conceptual introduction to
Hamiltonian Monte Carlo", appendix A; Stan's ``base_nuts``): trajectories double forwards or
backwards at random; inside a new sub-tree the proposal is drawn progressively in proportion
to exp(-H) (uniform multinomial), across doublings by the biased progressive rule
min(1, w_new / w_old); the generalized no-U-turn criterion p#(-)·rho > 0 and p#(+)·rho > 0
(p# = M^-1 p) is checked on every sub-tree and, as in Stan >= 2.26 and NumPyro, also across
the two halves of every merge ("extra checks", stan-dev/stan#2800). Sub-trees are built
iteratively, leaf by leaf, as in NumPyro's ``_iterative_build_subtree`` and TFP's
``NoUTurnSampler`` (Lao et al. 2020), so the batch needs no recursion; every leaf of the
current sub-tree is kept so that all checks can be made at the leaf that completes a
sub-sub-tree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch

log = logging.getLogger(__name__)

__all__ = ["Transition", "nuts_transition", "leapfrog", "kinetic_energy", "leaf_update", "compile_leaf"]


@dataclass
class Transition:
    """What one NUTS iteration produced, per chain (shapes ``(B, K)`` unless stated).

    :ivar z: new positions ``(B, K, D)`` (unconstrained).
    :ivar potential: U(z) (nats); ``grad``: dU/dz ``(B, K, D)``.
    :ivar energy: Hamiltonian H = U + K at the returned point and its momentum (nats;
        Stan's ``energy__``, used for E-BFMI).
    :ivar acceptance_rate: mean over the trajectory's leaves of min(1, exp(H0 - H)).
    :ivar diverging: a leaf had H - H0 > ``max_delta_energy`` (or non-finite).
    :ivar tree_depth: doublings that were kept (Stan's ``treedepth__``).
    :ivar n_steps: leapfrog steps (gradient evaluations) this chain needed.
    :ivar idle_steps: gradient evaluations made for this chain while it waited (its
        trajectory had stopped, or it was not extending this doubling).
    """

    z: torch.Tensor
    potential: torch.Tensor
    grad: torch.Tensor
    energy: torch.Tensor
    acceptance_rate: torch.Tensor
    diverging: torch.Tensor
    tree_depth: torch.Tensor
    n_steps: torch.Tensor
    idle_steps: torch.Tensor


def kinetic_energy(r: torch.Tensor, inv_mass: torch.Tensor) -> torch.Tensor:
    """K(r) = r' M^-1 r / 2 for a diagonal M^-1 ``inv_mass`` (broadcast to r): ``(B, K)``."""
    return 0.5 * (r * r * inv_mass).sum(-1)


def leapfrog(potential: Callable, z, r, grad, step, inv_mass):
    """One velocity-Verlet step of size ``step`` ``(B, K, 1)`` (negative: backwards) for
    H(z, r) = U(z) + r' M^-1 r / 2 with diagonal ``inv_mass`` ``(B, 1, D)``.

    :returns: ``(z, r, grad, U)`` at the new point; U ``(B, K)`` (nats).
    """
    r_half = r - 0.5 * step * grad
    z_new = z + step * inv_mass * r_half
    u_new, g_new = potential(z_new)
    return z_new, r_half - 0.5 * step * g_new, g_new, u_new


def _criterion(p_sharp_minus, p_sharp_plus, rho):
    """Stan's ``compute_criterion``: True where the trajectory may go on (no U-turn)."""
    return ((p_sharp_minus * rho).sum(-1) > 0) & ((p_sharp_plus * rho).sum(-1) > 0)


LEAF_INPUTS = ("zc", "rc", "gc", "signed_eps", "inv_mass", "energy0", "building", "uniform",
               "sub_z", "sub_g", "sub_u", "sub_h", "sub_weight", "sum_accept", "n_steps",
               "idle", "diverging", "prefix")
LEAF_OUTPUTS = ("zc", "rc", "gc", "sub_z", "sub_g", "sub_u", "sub_h", "sub_weight",
                "sum_accept", "n_steps", "idle", "diverging", "prefix", "r1", "stop")


def leaf_update(potential, max_delta_energy, zc, rc, gc, signed_eps, inv_mass, energy0,
                building, uniform, sub_z, sub_g, sub_u, sub_h, sub_weight, sum_accept,
                n_steps, idle, diverging, prefix):
    """Add one leaf to the sub-trees being built (chains where ``building``).

    One leapfrog step from the sub-tree's outer end; the leaf enters the progressive
    multinomial draw with weight exp(H0 - H) using ``uniform`` ``(B, K)``; ``prefix`` is the
    running sum of the sub-tree's momenta. A pure tensor function (no Python branching on
    values), so it can be recorded once as a graph and compiled.

    :returns: the tensors named in :data:`LEAF_OUTPUTS`: updated state, the leaf's
        momentum ``r1`` and ``stop`` (divergent leaf).
    """
    z1, r1, g1, u1 = leapfrog(potential, zc, rc, gc, signed_eps, inv_mass)
    m3 = building.unsqueeze(-1)
    zc = torch.where(m3, z1, zc)
    rc = torch.where(m3, r1, rc)
    gc = torch.where(m3, g1, gc)
    n_steps = n_steps + building.long()
    idle = idle + (~building).long()
    delta = u1 + kinetic_energy(r1, inv_mass) - energy0
    delta = torch.where(torch.isnan(delta), torch.full_like(delta, math.inf), delta)
    sum_accept = sum_accept + torch.where(building, torch.exp(-delta).clamp(max=1.0), 0.0)
    new_weight = torch.logaddexp(sub_weight, -delta)
    take = building & (uniform < torch.exp(-delta - new_weight))
    take3 = take.unsqueeze(-1)
    sub_z = torch.where(take3, z1, sub_z)
    sub_g = torch.where(take3, g1, sub_g)
    sub_u = torch.where(take, u1, sub_u)
    sub_h = torch.where(take, energy0 + delta, sub_h)
    sub_weight = torch.where(building, new_weight, sub_weight)
    prefix = prefix + r1
    stop = delta > max_delta_energy
    diverging = diverging | (building & stop)
    return (zc, rc, gc, sub_z, sub_g, sub_u, sub_h, sub_weight, sum_accept, n_steps, idle,
            diverging, prefix, r1, stop)


def compile_leaf(potential, max_delta_energy: float, z, u, grad, inv_mass, mode: str = "fx"):
    """:func:`leaf_update` for this potential, compiled to fused kernels for
    ``mode="inductor"`` (recorded with ``make_fx``, then ``torch.compile``); for any other
    mode the eager function (an interpreted ATen graph of the whole leaf measured about
    3x slower than eager torch calls around the recorded potential). The recorded function is
    checked against the eager one on an example leaf; on any failure or disagreement the
    eager function is returned.

    :param z, u, grad, inv_mass: example state ``(B, K, D)``, ``(B, K)``, ``(B, K, D)``,
        ``(B, 1, D)`` with the shapes the sampler will use.
    :returns: ``(leaf_fn, mode_used)``.
    """
    eager = partial(leaf_update, potential, max_delta_energy)
    if mode != "inductor":  # an interpreted ATen graph runs slower than eager torch here
        return eager, "none"
    shape = z.shape[:2]
    gen = torch.Generator().manual_seed(0)
    dev = z.device
    r = torch.randn(z.shape, generator=gen, device="cpu", dtype=z.dtype).to(dev) * inv_mass.rsqrt()
    energy0 = u + kinetic_energy(r, inv_mass)
    building = (torch.rand(shape, generator=gen, device="cpu") < 0.8).to(dev)

    def noisy(t):  # a distinct tensor with other values: make_fx treats one object passed
        return t + 0.1 * torch.randn(t.shape, generator=gen, device="cpu", dtype=t.dtype).to(dev)  # twice as one input

    # Every argument a distinct tensor with distinct values (sub_h != energy0, ...).
    args = (z.clone(), r, grad.clone(), torch.full_like(z[..., :1], 1e-3), inv_mass.clone(),
            energy0, building, torch.rand(shape, generator=gen, device="cpu", dtype=z.dtype).to(dev),
            noisy(z), noisy(grad), noisy(u), noisy(energy0), noisy(torch.zeros_like(u)),
            torch.rand(shape, generator=gen, device="cpu", dtype=z.dtype).to(dev),
            torch.zeros_like(u, dtype=torch.long), torch.zeros_like(u, dtype=torch.long),
            torch.zeros_like(u, dtype=torch.bool), noisy(torch.zeros_like(z)))
    try:
        from torch.fx.experimental.proxy_tensor import make_fx

        fn = make_fx(eager)(*args)
        if mode == "inductor":
            fn = torch.compile(fn, dynamic=False, fullgraph=True)
        expected, got = eager(*args), fn(*args)
        same = all(_close(a, b) for a, b in zip(expected, got))
    except (RuntimeError, ValueError, TypeError, NotImplementedError, AssertionError) as exc:
        log.warning("could not compile the leapfrog leaf (%s); running eager", exc)
        return eager, "none"
    if not same:
        log.warning("compiled leapfrog leaf disagrees with eager beyond rounding; running eager")
        return eager, "none"
    return fn, mode


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float rounding relative to the tensors' scale (energies are differences
    of numbers of order 1e2-1e4 nats)."""
    if a.dtype == torch.bool or not a.is_floating_point():
        return bool(torch.equal(a, b))
    a, b = a.double(), b.double()
    finite = torch.isfinite(a) & torch.isfinite(b)
    if not torch.equal(finite, torch.isfinite(a)) or not torch.equal(finite, torch.isfinite(b)):
        return False
    scale = max(1.0, float(b[finite].abs().max())) if bool(finite.any()) else 1.0
    return bool(torch.allclose(a[finite], b[finite], rtol=1e-4, atol=1e-5 * scale))


def nuts_transition(
    potential: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    z: torch.Tensor,
    potential_energy: torch.Tensor,
    grad: torch.Tensor,
    step_size: torch.Tensor,
    inv_mass: torch.Tensor,
    generator: torch.Generator,
    max_tree_depth: int = 10,
    max_delta_energy: float = 1000.0,
    leaf_fn: Callable | None = None,
) -> Transition:
    """Advance every chain by one NUTS iteration.

    :param potential: ``q (B, K, D) -> (U (B, K), dU/dq (B, K, D))``; U = +inf where the
        density is zero or not finite.
    :param z: current positions ``(B, K, D)``; ``potential_energy`` ``(B, K)`` and ``grad``
        ``(B, K, D)`` at z.
    :param step_size: ``(B, 1)`` or ``(B, K)`` leapfrog step sizes.
    :param inv_mass: ``(B, 1, D)`` diagonal inverse mass matrix per posterior.
    :param generator: the torch random generator (momenta, directions, proposals).
    :param leaf_fn: :func:`leaf_update` with ``potential`` and ``max_delta_energy`` bound,
        possibly recorded/compiled (:func:`compile_leaf`); default: eager.
    :returns: :class:`Transition`.
    """
    shape = z.shape[:2]
    dtype, device = z.dtype, z.device  # random numbers come from a CPU generator, then move
    if leaf_fn is None:
        leaf_fn = partial(leaf_update, potential, max_delta_energy)
    eps = step_size.expand(shape).unsqueeze(-1)
    momentum = torch.randn(z.shape, generator=generator, device="cpu", dtype=dtype).to(device) * inv_mass.rsqrt()
    energy0 = potential_energy + kinetic_energy(momentum, inv_mass)

    # The whole trajectory so far (trajectory order: left = backwards end).
    z_left, r_left, g_left = z, momentum, grad
    z_right, r_right, g_right = z, momentum, grad
    z_prop, u_prop, g_prop, h_prop = z, potential_energy, grad, energy0
    log_weight = torch.zeros(shape, dtype=dtype, device=device)
    rho = momentum.clone()
    active = torch.isfinite(potential_energy)
    depth = torch.zeros(shape, dtype=torch.long, device=device)
    n_steps = torch.zeros(shape, dtype=torch.long, device=device)
    idle = torch.zeros(shape, dtype=torch.long, device=device)
    sum_accept = torch.zeros(shape, dtype=dtype, device=device)
    diverging = torch.zeros(shape, dtype=torch.bool, device=device)
    zeros_b = torch.zeros(shape, dtype=torch.bool, device=device)

    for d in range(max_tree_depth):
        if not bool(active.any()):
            break
        go_right = (torch.rand(shape, generator=generator, device="cpu") < 0.5).to(device)
        gr = go_right.unsqueeze(-1)
        zc = torch.where(gr, z_right, z_left)
        rc = torch.where(gr, r_right, r_left)
        gc = torch.where(gr, g_right, g_left)
        signed_eps = torch.where(gr, eps, -eps)
        # The new sub-tree, built leaf by leaf.
        building = active.clone()
        sub_weight = torch.full(shape, -math.inf, dtype=dtype, device=device)
        sub_z, sub_u, sub_g, sub_h = zc, torch.zeros(shape, dtype=dtype, device=device), gc, energy0
        leaves_r: list[torch.Tensor] = []
        prefix: list[torch.Tensor] = []  # prefix[n] = sum of r over leaves 0..n
        invalid = zeros_b.clone()
        prefix_n = torch.zeros_like(z)
        for n in range(2 ** d):
            if not bool(building.any()):
                break
            m = building
            uniform = torch.rand(shape, generator=generator, device="cpu", dtype=dtype).to(device)
            (zc, rc, gc, sub_z, sub_g, sub_u, sub_h, sub_weight, sum_accept, n_steps, idle,
             diverging, prefix_n, r1, stop) = leaf_fn(
                zc, rc, gc, signed_eps, inv_mass, energy0, m, uniform, sub_z, sub_g, sub_u,
                sub_h, sub_weight, sum_accept, n_steps, idle, diverging, prefix_n)
            leaves_r.append(r1)
            prefix.append(prefix_n)
            # U-turn checks of every sub-sub-tree that leaf n completes.
            size = 2
            while n > 0 and (n + 1) % size == 0:
                a = n + 1 - size
                rho_sub = prefix[n] - (prefix[a - 1] if a > 0 else 0.0)
                ok = _criterion(inv_mass * leaves_r[a], inv_mass * r1, rho_sub)
                if size > 2:
                    mid = n + 1 - size // 2
                    rho_a = prefix[mid] - (prefix[a - 1] if a > 0 else 0.0)
                    ok &= _criterion(inv_mass * leaves_r[a], inv_mass * leaves_r[mid], rho_a)
                    rho_b = prefix[n] - prefix[mid - 2] if mid >= 2 else prefix[n]
                    ok &= _criterion(inv_mass * leaves_r[mid - 1], inv_mass * r1, rho_b)
                stop |= ~ok
                size *= 2
            invalid |= m & stop
            building = m & ~stop
        # Merge the completed sub-tree into the trajectory.
        valid = active & ~invalid
        v3 = valid.unsqueeze(-1)
        accept_new = torch.rand(shape, generator=generator, device="cpu", dtype=dtype).to(device) < torch.exp(
            sub_weight - log_weight)
        take = valid & accept_new
        take3 = take.unsqueeze(-1)
        z_prop = torch.where(take3, sub_z, z_prop)
        g_prop = torch.where(take3, sub_g, g_prop)
        u_prop = torch.where(take, sub_u, u_prop)
        h_prop = torch.where(take, sub_h, h_prop)
        log_weight = torch.where(valid, torch.logaddexp(log_weight, sub_weight), log_weight)
        first_r, last_r = leaves_r[0], rc
        # Ends of the old trajectory: the one we extended from (junction) and the far one.
        old_junction = torch.where(gr, r_right, r_left)
        old_far = torch.where(gr, r_left, r_right)
        rho_old = rho
        rho_new = prefix[-1]
        rho = torch.where(v3, rho_old + rho_new, rho_old)
        z_right = torch.where(v3 & gr, zc, z_right)
        r_right = torch.where(v3 & gr, rc, r_right)
        g_right = torch.where(v3 & gr, gc, g_right)
        z_left = torch.where(v3 & ~gr, zc, z_left)
        r_left = torch.where(v3 & ~gr, rc, r_left)
        g_left = torch.where(v3 & ~gr, gc, g_left)
        depth += valid
        ok = _criterion(inv_mass * r_left, inv_mass * r_right, rho)
        ok &= _criterion(inv_mass * old_far, inv_mass * first_r, rho_old + first_r)
        ok &= _criterion(inv_mass * old_junction, inv_mass * last_r, rho_new + old_junction)
        active = valid & ok
    n_total = n_steps.clamp(min=1)
    return Transition(
        z=z_prop,
        potential=u_prop,
        grad=g_prop,
        energy=h_prop,
        acceptance_rate=sum_accept / n_total,
        diverging=diverging,
        tree_depth=depth,
        n_steps=n_steps,
        idle_steps=idle,
    )
