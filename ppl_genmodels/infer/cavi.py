"""Mean-field coordinate-ascent variational inference (CAVI) for the conjugate Bayesian
Gaussian mixture (engine ``cavi``).

The variational family is Bishop's (2006, §10.2.1) factorization

    q(assignment, weights, locs, precisions) = prod_n q(a_n) * q(weights) * prod_k q(locs_k, precisions_k)

with q(a_n) = Categorical(r_n), q(weights) = Dirichlet(alpha), and q(locs_k, precisions_k) =
Normal-Gamma(m_k, beta_k, a_k, b_k) (Bishop's Gaussian-Wishart in one dimension). Each
coordinate update maximises the ELBO in that factor exactly (Bishop eqs. 10.46-10.63 in 1-D;
Blei, Kucukelbir & McAuliffe 2017, "Variational inference: a review for statisticians",
Algorithm 1), so the ELBO cannot decrease from one sweep to the next. The ELBO is

    ELBO = sum_nk r_nk (E[log pi_k] + E[log N(y_n | mu_k, 1/lambda_k)] - log r_nk)
           - KL(q(weights) || p(weights)) - sum_k KL(q(mu_k, lambda_k) || p(mu_k, lambda_k))

with the KL terms from ``torch.distributions.kl_divergence`` (Dirichlet, Gamma) and the
closed form of E_lambda KL(Normal || Normal).

Only :class:`~ppl_genmodels.models.bayes_gauss_mix.ConjugateMixture` models qualify
(``validate`` says so otherwise): CAVI needs conditional conjugacy, which a general Pyro
model does not declare.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from torch.distributions import kl_divergence
from tqdm.auto import tqdm

from .._validate import check_int, check_positive, check_seed
from ..models.bayes_gauss_mix import ConjugateMixture
from ..posterior import Posterior
from ._draws import guide_draws
from .base import EngineResult
from .result import engine_attrs, make_inference_data

__all__ = ["CAVI", "MixtureQ", "cavi_fit", "INITS"]

INITS = ("kmeans", "random")


@dataclass(frozen=True)
class MixtureQ:
    """The mean-field posterior of a :class:`ConjugateMixture` after CAVI.

    Tensors (float64): ``responsibilities`` ``(N, K)`` (rows sum to 1), ``alpha`` ``(K,)``
    (Dirichlet), ``m``, ``beta``, ``a``, ``b`` ``(K,)`` (Normal-Gamma: locs_k | lambda_k ~
    Normal(m_k, 1/sqrt(beta_k lambda_k)), lambda_k ~ Gamma(a_k, rate b_k)); ``elbo``
    ``(iterations,)`` nats, one value after each full sweep; ``converged``.
    """

    responsibilities: torch.Tensor
    alpha: torch.Tensor
    m: torch.Tensor
    beta: torch.Tensor
    a: torch.Tensor
    b: torch.Tensor
    elbo: np.ndarray
    converged: bool

    def mean(self) -> dict[str, np.ndarray]:
        """Means of q: ``weights``, ``locs``, ``precisions`` ``(K,)``."""
        return {"weights": (self.alpha / self.alpha.sum()).numpy(), "locs": self.m.numpy(),
                "precisions": (self.a / self.b).numpy()}

    def sd(self) -> dict[str, np.ndarray]:
        """Standard deviations of q's marginals (the locs' is Student-t: sqrt(b / (beta (a - 1))),
        finite for a > 1)."""
        a0 = self.alpha.sum()
        w = self.alpha / a0
        return {"weights": (w * (1 - w) / (a0 + 1)).sqrt().numpy(),
                "locs": (self.b / (self.beta * (self.a - 1))).sqrt().numpy(),
                "precisions": (self.a.sqrt() / self.b).numpy()}

    def guide(self, y):
        """q as a Pyro guide over the model's global sites (for draws and log weights)."""
        def like(t):
            return t.to(y)
        pyro.sample("weights", dist.Dirichlet(like(self.alpha)))
        precisions = pyro.sample("precisions", dist.Gamma(like(self.a), like(self.b)).to_event(1))
        pyro.sample("locs", dist.Normal(like(self.m), (like(self.beta) * precisions).rsqrt()).to_event(1))


def _expectations(prior: ConjugateMixture, q: dict, y: torch.Tensor) -> torch.Tensor:
    """E_q[log pi_k] + E_q[log N(y_n | mu_k, 1/lambda_k)], ``(N, K)`` nats (Bishop 10.64-10.66)."""
    e_log_pi = torch.digamma(q["alpha"]) - torch.digamma(q["alpha"].sum())
    e_log_lam = torch.digamma(q["a"]) - q["b"].log()
    e_quad = 1.0 / q["beta"] + (q["a"] / q["b"]) * (y[:, None] - q["m"]) ** 2
    return e_log_pi + 0.5 * e_log_lam - 0.5 * math.log(2 * math.pi) - 0.5 * e_quad


def _update_globals(prior: ConjugateMixture, r: torch.Tensor, y: torch.Tensor) -> dict:
    """q(weights), q(locs, precisions) given the responsibilities ``r`` (Bishop 10.58-10.63)."""
    nk = r.sum(0)
    safe = nk.clamp_min(1e-12)
    ybar = (r * y[:, None]).sum(0) / safe
    sk = (r * (y[:, None] - ybar) ** 2).sum(0) / safe
    beta = prior.beta0 + nk
    return {"alpha": prior.alpha0 + nk,
            "beta": beta,
            "m": (prior.beta0 * prior.m0 + nk * ybar) / beta,
            "a": prior.a0 + nk / 2,
            "b": prior.b0 + 0.5 * (nk * sk + prior.beta0 * nk / beta * (ybar - prior.m0) ** 2)}


def _responsibilities(prior: ConjugateMixture, q: dict, y: torch.Tensor) -> torch.Tensor:
    """q(a_n) = softmax_k of :func:`_expectations` (Bishop 10.46-10.49), ``(N, K)``."""
    return torch.softmax(_expectations(prior, q, y), -1)


def mixture_elbo(prior: ConjugateMixture, r: torch.Tensor, q: dict, y: torch.Tensor) -> float:
    """The ELBO (nats) of the mean-field q (responsibilities ``r`` ``(N, K)``, globals ``q``)
    for the model ``prior`` on data ``y`` ``(N,)`` (see the module docstring)."""
    k = prior.num_components
    ones = y.new_ones(k)
    expected = (r * _expectations(prior, q, y)).sum() - torch.special.xlogy(r, r).sum()
    kl_weights = kl_divergence(dist.Dirichlet(q["alpha"]), dist.Dirichlet(prior.alpha0 * ones))
    kl_prec = kl_divergence(dist.Gamma(q["a"], q["b"]), dist.Gamma(prior.a0 * ones, prior.b0 * ones))
    ratio = prior.beta0 / q["beta"]
    # E_{q(lambda)} KL(N(m, 1/(beta lambda)) || N(m0, 1/(beta0 lambda)))
    kl_locs = 0.5 * (ratio - 1 - ratio.log() + prior.beta0 * (q["a"] / q["b"]) * (q["m"] - prior.m0) ** 2)
    return float(expected - kl_weights - (kl_prec + kl_locs).sum())


def _initial_responsibilities(y: torch.Tensor, k: int, init: str, seed: int) -> torch.Tensor:
    if init == "random":
        gen = torch.Generator().manual_seed(seed)
        return _dirichlet_rows(len(y), k, gen, y.dtype)
    from sklearn.cluster import KMeans

    labels = KMeans(k, n_init=1, random_state=seed).fit_predict(y[:, None].numpy())
    r = torch.full((len(y), k), 0.1 / max(k - 1, 1), dtype=y.dtype)
    r[torch.arange(len(y)), torch.as_tensor(labels)] = 0.9 if k > 1 else 1.0
    return r


def _dirichlet_rows(n: int, k: int, gen: torch.Generator, dtype) -> torch.Tensor:
    """n rows of Dirichlet(1_k) (normalized exponentials), seeded by ``gen``."""
    e = -torch.rand(n, k, generator=gen, dtype=dtype).clamp_min(1e-12).log()
    return e / e.sum(-1, keepdim=True)


def cavi_fit(prior: ConjugateMixture, y: torch.Tensor, max_iter: int = 500, tol: float = 1e-8,
             init: str = "kmeans", seed: int = 0, progress: bool = False,
             responsibilities: torch.Tensor | None = None) -> MixtureQ:
    """Run CAVI sweeps (globals given responsibilities, then responsibilities given globals)
    until the ELBO gains less than ``tol * |ELBO|`` in a sweep, or ``max_iter`` sweeps.

    :param prior: the model (its hyperparameters).
    :param y: ``(N,)`` data (any float dtype; computed in float64).
    :param init: ``"kmeans"`` (``sklearn.cluster.KMeans`` labels, softened to 0.9) or
        ``"random"`` (Dirichlet(1) rows); ignored when ``responsibilities`` ``(N, K)`` is given.
    :returns: :class:`MixtureQ` with the ELBO after each sweep (nats).
    :raises ValueError: ``y`` not 1-D, empty or not finite; bad ``init``, ``max_iter``, ``tol``.
    """
    y = torch.as_tensor(y)
    if y.dim() != 1 or y.numel() == 0:
        raise ValueError(f"CAVI needs 1-D data y of shape (N,), N >= 1; got shape {tuple(y.shape)}")
    y = y.detach().cpu().double()
    if not torch.isfinite(y).all():
        raise ValueError("CAVI: y holds NaN or inf")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    check_int("max_iter", max_iter, 1, "cavi")
    check_positive("tol", tol, "cavi")
    k = prior.num_components
    if responsibilities is None:
        r = _initial_responsibilities(y, k, init, seed)
    else:
        r = torch.as_tensor(responsibilities, dtype=torch.float64)
        if r.shape != (len(y), k):
            raise ValueError(f"responsibilities must have shape {(len(y), k)}, got {tuple(r.shape)}")
    elbos, converged = [], False
    bar = tqdm(range(max_iter), desc="cavi", disable=not progress, leave=False, mininterval=0.5)
    for _ in bar:
        q = _update_globals(prior, r, y)
        r = _responsibilities(prior, q, y)
        elbos.append(mixture_elbo(prior, r, q, y))
        if len(elbos) > 1 and elbos[-1] - elbos[-2] < tol * abs(elbos[-1]):
            converged = True
            break
    return MixtureQ(r, q["alpha"], q["m"], q["beta"], q["a"], q["b"], np.asarray(elbos), converged)


@dataclass(frozen=True)
class CAVI:
    """Mean-field CAVI for a conjugate Bayesian Gaussian mixture (see the module docstring).

    :param max_iter: maximum sweeps.
    :param tol: stop when a sweep gains less than ``tol * |ELBO|`` nats.
    :param init: ``"kmeans"`` or ``"random"`` initial responsibilities (:func:`cavi_fit`).
    :param num_draws: iid draws from q(weights) q(locs, precisions) stored in ``posterior``.
    :raises ValueError: bad settings.

    Result ``sample_stats``: ``log_weight`` (log p(y, z) with the assignments summed out
    minus log q(z), nats, per draw; PSIS k-hat applies) and ``elbo`` per sweep (dim
    ``step``, nats); ``attrs['converged']``, ``attrs['iterations']``. ``grad_evals`` is 0.
    """

    max_iter: int = 500
    tol: float = 1e-10
    init: str = "kmeans"
    num_draws: int = 1000

    name = "cavi"

    def __post_init__(self):
        check_int("max_iter", self.max_iter, 1, self.name)
        check_int("num_draws", self.num_draws, 1, self.name)
        check_positive("tol", self.tol, self.name)
        if self.init not in INITS:
            raise ValueError(f"cavi: init must be one of {INITS}, got {self.init!r}")

    def validate(self, posterior: Posterior) -> None:
        """:raises ValueError: the posterior's model is not a ConjugateMixture, or its data
        is not one 1-D entry ``y``."""
        if not isinstance(posterior.model, ConjugateMixture):
            raise ValueError(
                f"cavi needs the conjugate Bayesian Gaussian mixture "
                f"(ppl_genmodels.models.bayes_gauss_mix.ConjugateMixture, e.g. model "
                f"'bayes_gauss_mix'); posterior {posterior.name!r} has model "
                f"{getattr(posterior.model, '__name__', posterior.model)!r}, whose conditional "
                "conjugacy CAVI cannot know: use svi or nuts")
        y = posterior.data.get("y")
        if set(posterior.data) != {"y"} or y is None or y.dim() != 1:
            raise ValueError(f"cavi: data must be {{'y': (N,) tensor}}, got "
                             f"{ {k: tuple(v.shape) for k, v in posterior.data.items()} }")

    def run(self, posterior: Posterior, seed: int = 0, *, progress: bool = True) -> EngineResult:
        """Fit q by CAVI, then draw ``num_draws`` times from it with importance weights.

        :returns: :class:`~.base.EngineResult` (one chain; ``guide`` is q as a Pyro guide).
        """
        seed = check_seed(seed)
        self.validate(posterior)
        sites = posterior.validate()
        start = time.perf_counter()
        y = posterior.data["y"]
        q = cavi_fit(posterior.model, y, self.max_iter, self.tol, self.init, seed, progress)
        pyro.set_rng_seed(seed)
        with posterior.session() as (model, _):
            values, log_weights = guide_draws(model, q.guide, posterior.data, sites, self.num_draws)
        wall = time.perf_counter() - start
        attrs = engine_attrs(self.name, asdict(self), seed, wall, 0, posterior)
        attrs.update(converged=int(q.converged), iterations=len(q.elbo))
        idata = make_inference_data(posterior, draws={k: v[None] for k, v in values.items()},
                                    sample_stats={"log_weight": log_weights[None]}, attrs=attrs,
                                    step_stats={"elbo": q.elbo})
        return EngineResult(idata, guide=q.guide, param_state={})
