"""Annealed importance sampling (AIS; Neal 2001) with HMC transitions, per image, batched.

For each image x_n, M independent chains anneal from the proposal q(z | x_n) to the posterior
p(z | x_n) along the geometric path

    pi_t(z) ∝ q(z | x_n)^(1 - beta_t) p(x_n, z)^beta_t,    0 = beta_0 < ... < beta_T = 1,

with z_0 ~ q and, for t = 1..T, the weight increment (beta_t - beta_{t-1}) times
[log p(x_n, z_{t-1}) - log q(z_{t-1} | x_n)], followed by one HMC transition
z_t ~ K_t(. | z_{t-1}) that leaves pi_t invariant (Neal 2001, sec. 2; the same accounting as TFP's
``tfp.mcmc.sample_annealed_importance_chain``). E[w] = p(x_n), so log Ẑ = log (1/M) sum_m w_m
is a stochastic lower bound on log p(x_n) (Jensen), as in Wu et al. (2017, "On the quantitative
analysis of decoder-based generative models"), who use it with HMC for VAEs. The transition at
t = T would not change any weight and is skipped, so T = 1 is plain importance sampling from q
with M samples, and a run costs (T - 1) transitions.

HMC (Neal 2011): ``num_leapfrog`` leapfrog steps with a diagonal mass matrix taken from the
proposal's spread (the sd of each latent over ``scale_draws`` fresh draws from q per image; the
whitened coordinates u = z / s get unit mass), then a Metropolis accept/reject per chain. Each
chain's step is jittered at every transition by a factor uniform in [1 - jitter, 1 + jitter],
drawn independently of the state (a mixture of valid kernels): with a fixed step and trajectory
length, HMC on near-Gaussian targets can resonate (a trajectory of half a period reflects the
state through the mean and leaves its radius unchanged; Neal 2011, sec. 5.4.2).

Step sizes and unbiasedness. An AIS weight is unbiased when each K_t is fixed before the chains
run, or depends only on the past of other, independent chains. Adapting a chain's own step size
from its own acceptances (Wu et al.'s code: ×1.02 above, ×0.98 below 0.65 acceptance, the
Theano HMC tutorial rule) makes K_t depend on the chain's past, which can bias the weights
(slightly, in practice). ``adapt="pilot"`` (the default) keeps the estimator exact: a pilot of
``pilot_chains`` independent chains per image runs that rule over the same schedule, and the
per-image step sizes it used at each t are then frozen for the M chains whose weights are
returned. ``adapt="online"`` is Wu et al.'s rule on the returned chains themselves (one step
size per image, from its chains' mean acceptance); ``adapt="none"`` uses ``step_size`` throughout.

Bidirectional Monte Carlo (BDMC; Grosse, Ghahramani & Adams 2015; Wu et al. 2017, sec. 4):
given exact posterior samples -- on simulated data, the z that generated x --
``posterior_samples=`` runs the same chains in reverse, from p(z | x) at beta = 1 down to q.
Their weights estimate 1 / p(x) without bias, so -log-mean-exp of them is a stochastic *upper*
bound on log p(x); the forward run's lower bound and this upper bound sandwich log p(x), and
their difference bounds the forward estimator's error on such data. Step sizes come from a
forward pilot, reversed in time. All M chains may start from one exact sample per image: each
chain's weight is still unbiased for 1 / p(x).

Standard errors: the delta-method sd(w) / (sqrt(M) mean(w)) over the M chains
(:func:`~ppl_genmodels.diagnostics.importance_summary`); with heavy-tailed weights (too few
steps) it underestimates, so compare runs at several T.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.poutine.util import site_is_subsample
from tqdm.auto import tqdm

from ..diagnostics import importance_summary
from .objectives import _site_log_probs

__all__ = ["AISResult", "annealed_importance_sampling", "ais_schedule"]

SCHEDULES = ("sigmoid", "linear")
ADAPT = ("pilot", "online", "none")
ONLINE_RATE, PILOT_RATE = 0.02, 0.05  # step size × (1 ± rate) per step (module docstring)


def ais_schedule(num_steps: int, kind: str = "sigmoid", delta: float = 4.0) -> np.ndarray:
    """Inverse temperatures ``(T + 1,)`` from 0 to 1, float64.

    ``"linear"``: t / T; ``"sigmoid"``: sigma(delta (2t/T - 1)) rescaled to [0, 1] (Grosse,
    Maddison & Salakhutdinov 2013; Wu et al. 2017, delta = 4): small steps at both ends.

    :raises ValueError: ``num_steps < 1`` or unknown ``kind``.
    """
    if int(num_steps) != num_steps or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps}")
    if kind not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
    t = np.arange(num_steps + 1) / num_steps
    if kind == "linear":
        return t
    s = 1.0 / (1.0 + np.exp(-delta * (2.0 * t - 1.0)))
    return (s - s[0]) / (s[-1] - s[0])


@dataclass
class AISResult:
    """Result of :func:`annealed_importance_sampling`; log quantities in nats.

    :ivar log_evidence: ``(B,)`` log Ẑ_n = log-mean-exp of the M chains' log weights.
    :ivar log_evidence_se: ``(B,)`` its delta-method standard error (NaN for M = 1).
    :ivar log_weights: ``(M, B)`` the chains' log weights.
    :ivar acceptance: ``(B,)`` mean HMC acceptance probability over chains and the T - 1
        transitions (NaN for T = 1: none).
    :ivar step_size: ``(T, B)`` the leapfrog step (whitened units) used at each step, per image.
    :ivar seconds: wall time, pilot included.
    :ivar reverse: True for a reverse (BDMC) run: ``log_evidence`` is then the stochastic upper
        bound -log-mean-exp of the reverse log weights (which estimate -log p(x)).
    """

    log_evidence: np.ndarray
    log_evidence_se: np.ndarray
    log_weights: np.ndarray
    acceptance: np.ndarray
    step_size: np.ndarray
    num_steps: int
    num_chains: int
    seconds: float
    reverse: bool = False


class _Target:
    """log q, log p(x, z) and their gradients for a batch of latents ``(M, B, Dz)``."""

    def __init__(self, model, guide, x, sites):
        self.model, self.guide, self.x, self.sites = model, guide, x, sites  # sites: name -> event shape

    def unflatten(self, z):
        out, start = {}, 0
        for name, shape in self.sites.items():
            size = math.prod(shape)
            out[name] = z[..., start:start + size].reshape(*z.shape[:-1], *shape)
            start += size
        return out

    def __call__(self, z):
        """``(log_p, log_q, grad log p, grad log q)``: ``(M, B)`` twice, ``(M, B, Dz)`` twice."""
        z = z.detach().requires_grad_(True)
        values = self.unflatten(z)
        with torch.enable_grad(), pyro.plate("particles", z.shape[0], dim=-2):
            guide_trace = poutine.trace(poutine.condition(self.guide, data=values)).get_trace(self.x)
            model_trace = poutine.trace(poutine.condition(self.model, data=values)).get_trace(self.x)
            log_q, log_p = _site_log_probs(guide_trace), _site_log_probs(model_trace)
            grad_p, = torch.autograd.grad(log_p.sum(), z)
            grad_q, = torch.autograd.grad(log_q.sum(), z)
        return log_p.detach(), log_q.detach(), grad_p, grad_q


def _latent_sites(model, guide, x, num):
    """Draw ``num`` latents per image from the guide; ``(sites, z (num, B, Dz))``."""
    with torch.no_grad(), pyro.plate("particles", num, dim=-2):
        guide_trace = poutine.trace(guide).get_trace(x)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(x)
    def names(trace):
        return [n for n, s in trace.nodes.items()
                if s["type"] == "sample" and not s["is_observed"] and not site_is_subsample(s)]

    latents, model_latents = names(guide_trace), names(model_trace)
    if not latents or sorted(latents) != sorted(model_latents):
        raise ValueError(f"the guide's latent sites {latents} must be the model's {model_latents}")
    sites, flat = {}, []
    for name in latents:
        site = guide_trace.nodes[name]
        support = site["fn"].support
        while isinstance(support, constraints.independent):
            support = support.base_constraint
        if support is not constraints.real:
            raise ValueError(f"AIS with HMC needs real-valued latents; site {name!r} has support "
                             f"{site['fn'].support}")
        value = site["value"]
        if value.shape[:2] != (num, x.shape[0]):
            raise ValueError(f"site {name!r} has shape {tuple(value.shape)}; expected (particles, "
                             f"images, ...) with pyro.plate('images', B, dim=-1)")
        sites[name] = tuple(value.shape[2:])
        flat.append(value.reshape(num, x.shape[0], -1))
    return sites, torch.cat(flat, -1)


def _run(target, z, betas, scale, step_size, num_leapfrog, adapt, target_accept, jitter,
         progress, desc):
    """AIS chains from z ``(M, B, Dz)``; ``step_size``: ``(T, B)`` fixed or ``(B,)`` initial;
    ``adapt``: 0 (fixed) or the adaptation rate (step size × (1 ± rate) per step).
    Returns ``(log_weights (M, B) float64, acceptance (B,) over the T - 1 transitions (NaN for
    T = 1), step sizes used (T, B))``."""
    num_chains, num_images = z.shape[:2]
    steps = len(betas) - 1
    dev = z.device
    log_w = torch.zeros(num_chains, num_images, dtype=torch.float64, device=dev)
    log_p, log_q, grad_p, grad_q = target(z)
    eps = step_size[0] if not adapt else step_size.clone()
    avg_accept = torch.full((num_images,), target_accept, device=dev)
    used, accept_sum = [], torch.zeros(num_images, device=dev)
    bar = tqdm(range(1, steps + 1), desc=desc, disable=not progress, leave=False)
    for t in bar:
        beta, prev = float(betas[t]), float(betas[t - 1])
        log_w += (beta - prev) * (log_p - log_q).double()
        if not adapt:
            eps = step_size[t - 1]
        used.append(eps.clone())
        if t == steps:  # the last weight is in; a transition at beta_T would not change it
            break
        grad = (1 - beta) * grad_q + beta * grad_p
        log_pi0 = (1 - beta) * log_q + beta * log_p
        factor = 1.0 + jitter * (2.0 * torch.rand(num_chains, num_images, 1, device=dev) - 1.0)
        e = eps[None, :, None] * factor * scale
        r0 = torch.randn_like(z)
        r = r0 + 0.5 * e * grad
        z_new = z
        for k in range(num_leapfrog):
            z_new = z_new + e * r
            lp, lq, gp, gq = target(z_new)
            r = r + (e if k < num_leapfrog - 1 else 0.5 * e) * ((1 - beta) * gq + beta * gp)
        log_pi1 = (1 - beta) * lq + beta * lp
        log_ratio = log_pi1 - log_pi0 - 0.5 * (r ** 2 - r0 ** 2).sum(-1)
        log_ratio = torch.nan_to_num(log_ratio, nan=-math.inf)
        prob = log_ratio.clamp(max=0.0).exp()
        accept = torch.rand_like(prob) < prob
        z = torch.where(accept[..., None], z_new, z)
        grad_p = torch.where(accept[..., None], gp, grad_p)
        grad_q = torch.where(accept[..., None], gq, grad_q)
        log_p, log_q = torch.where(accept, lp, log_p), torch.where(accept, lq, log_q)
        accept_sum += prob.mean(0)
        if adapt:  # Theano HMC tutorial / Wu et al. rule on a moving average of acceptance
            avg_accept = 0.9 * avg_accept + 0.1 * prob.mean(0)
            eps = (eps * torch.where(avg_accept > target_accept, 1 + adapt, 1 - adapt)).clamp(1e-4, 2.0)
        if progress and t % 10 == 0:
            bar.set_postfix(accept=f"{float(prob.mean()):.2f}", step=f"{float(eps.mean()):.3g}")
    bar.close()
    return log_w, accept_sum / (steps - 1) if steps > 1 else accept_sum * math.nan, torch.stack(used)


def annealed_importance_sampling(model, guide, x: torch.Tensor, num_steps: int = 100,
                                 num_chains: int = 16, num_leapfrog: int = 5,
                                 step_size: float = 0.5, schedule: str = "sigmoid",
                                 adapt: str = "pilot", target_accept: float = 0.65,
                                 jitter: float = 0.5, pilot_chains: int = 2,
                                 scale_draws: int = 64, seed: int = 0, progress: bool = False,
                                 posterior_samples=None) -> AISResult:
    """log p(x_n) per image by AIS with HMC transitions from the proposal ``guide`` (module
    docstring; Neal 2001; Wu et al. 2017), all B × M chains in one tensor.

    :param model: Pyro model ``model(x)``; its latents and ``x`` in ``pyro.plate("images", B,
        dim=-1)`` with ``.to_event`` dims (the VAE convention of :mod:`..models.vae`); theta is
        used as is (no parameter gets a gradient).
    :param guide: Pyro guide ``guide(x)`` over the same real-valued latent sites: the initial
        distribution q(z | x); its log density is evaluated at every state, so a flow guide
        whose inverse is sequential (IAF) is slow here -- prefer a Gaussian proposal.
    :param x: ``(B, D)`` images (or observations).
    :param num_steps: T intermediate distributions (T = 1: importance sampling from q).
    :param num_chains: M independent chains per image.
    :param num_leapfrog: leapfrog steps per HMC transition; ``step_size``: the initial (or, for
        ``adapt="none"``, fixed) leapfrog step in whitened units z / s; ``jitter``: its
        per-transition random factor's half-width, in [0, 1).
    :param schedule: ``"sigmoid"`` or ``"linear"`` (:func:`ais_schedule`).
    :param adapt: ``"pilot"``, ``"online"`` or ``"none"`` (module docstring).
    :param scale_draws: fresh draws from q per image for the diagonal mass matrix.
    :param posterior_samples: exact posterior samples for a reverse (BDMC) run: ``{site:
        (M or 1, B, *event)}``; ``None``: the forward run.
    :returns: :class:`AISResult` (nats per image).
    :raises ValueError: bad settings or ``x`` not ``(B, D)`` finite with B >= 1 (before any
        work); latent sites that differ between model and guide or are not real-valued;
        ``posterior_samples`` without the guide's sites or of the wrong shape.
    """
    betas = ais_schedule(num_steps, schedule)
    for name, value in (("num_chains", num_chains), ("num_leapfrog", num_leapfrog),
                        ("pilot_chains", pilot_chains), ("scale_draws", scale_draws)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value}")
    if scale_draws < 2:
        raise ValueError(f"scale_draws must be >= 2 (a standard deviation), got {scale_draws}")
    if not (isinstance(step_size, (int, float)) and step_size > 0 and math.isfinite(step_size)):
        raise ValueError(f"step_size must be a positive number, got {step_size}")
    if not 0.0 <= jitter < 1.0:
        raise ValueError(f"jitter must be in [0, 1), got {jitter}")
    if adapt not in ADAPT:
        raise ValueError(f"adapt must be one of {ADAPT}, got {adapt!r}")
    if not 0.0 < target_accept < 1.0:
        raise ValueError(f"target_accept must be in (0, 1), got {target_accept}")
    x = torch.as_tensor(x, dtype=torch.get_default_dtype()) if not isinstance(x, torch.Tensor) else x
    if x.dim() != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be (B, D) with B >= 1, got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("x has NaN or infinite values")
    start = time.perf_counter()
    with pyro.get_param_store().scope(), torch.random.fork_rng():
        torch.manual_seed(seed)
        sites, draws = _latent_sites(model, guide, x, max(scale_draws, 2))
        scale = draws.std(0).clamp(min=1e-3)[None]  # (1, B, Dz), independent of the chains
        target = _Target(model, guide, x, sites)
        eps0 = torch.full((x.shape[0],), float(step_size), device=x.device)
        reverse = posterior_samples is not None
        if reverse:
            z = _flat_samples(posterior_samples, sites, num_chains, x.shape[0]).to(draws)
        if adapt == "pilot":
            pilot = _latent_sites(model, guide, x, pilot_chains)[1]
            eps0 = _run(target, pilot, betas, scale, eps0, num_leapfrog, PILOT_RATE, target_accept,
                        jitter, progress, "AIS pilot")[2]
            if reverse:  # the step for beta_t at reverse step T - t; beta_0 takes beta_1's
                eps0 = torch.cat([eps0.flip(0)[1:], eps0[:1]])
        elif adapt == "none":
            eps0 = eps0.expand(num_steps, -1)
        if not reverse:
            z = _latent_sites(model, guide, x, num_chains)[1]
        log_w, accept, used = _run(target, z, betas[::-1].copy() if reverse else betas, scale,
                                   eps0, num_leapfrog, ONLINE_RATE if adapt == "online" else 0.0,
                                   target_accept, jitter, progress,
                                   f"AIS{' reverse' if reverse else ''} (T={num_steps}, M={num_chains})")
    lw = log_w.cpu().numpy()
    if not np.isfinite(lw).all():
        raise ValueError("non-finite AIS log weights: the guide proposes latents with zero density "
                         "under the model, or the model's log density overflowed")
    summary = importance_summary(lw, axis=0)
    log_z = np.atleast_1d(summary["log_evidence"])
    return AISResult(-log_z if reverse else log_z, np.atleast_1d(summary["log_evidence_se"]),
                     lw, accept.cpu().numpy(), used.cpu().numpy(), int(num_steps), int(num_chains),
                     time.perf_counter() - start, reverse)


def _flat_samples(samples, sites, num_chains, num_images):
    """``{site: (M or 1, B, *event)}`` -> ``(M, B, Dz)`` in the sites' order."""
    if not isinstance(samples, dict) or sorted(samples) != sorted(sites):
        got = sorted(samples) if isinstance(samples, dict) else type(samples).__name__
        raise ValueError(f"posterior_samples must be a dict over the latent sites {list(sites)}, "
                         f"got {got}")
    flat = []
    for name, event in sites.items():
        value = torch.as_tensor(samples[name])
        if value.dim() != 2 + len(event) or value.shape[0] not in (1, num_chains) or \
                tuple(value.shape[1:]) != (num_images, *event):
            raise ValueError(f"posterior_samples[{name!r}] has shape {tuple(value.shape)}; expected "
                             f"({num_chains} or 1, {num_images}, {', '.join(map(str, event))})")
        flat.append(value.expand(num_chains, *value.shape[1:]).reshape(num_chains, num_images, -1))
    return torch.cat(flat, -1).detach()
