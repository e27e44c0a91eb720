"""EM for the parameters theta of a Gaussian mixture, and k-means as its hard-assignment,
equal-variance limit.

Model (a Pyro program, :func:`mixture_model`), x: ``(N, D)``::

    assignment[n] ~ Categorical(weights)            infer={"enumerate": "parallel"}
    x[n] ~ MultivariateNormal(locs[assignment[n]], covariances[assignment[n]])

theta = (weights ``(K,)``, locs ``(K, D)``, covariances ``(K, D, D)``) is a point estimate,
learned by expectation-maximisation (Dempster, Laird & Rubin 1977; Bishop 2006, §9.2.2):

- **E-step** (exact): the responsibilities r[n, k] = p(assignment[n] = k | x[n], theta) are the
  posterior marginals of the enumerated site and log p(x | theta) its normalizer, both from
  one trace of the Pyro model under ``poutine.enum`` (:func:`e_step`); they equal Pyro's
  ``TraceEnum_ELBO.compute_marginals`` and minus ``TraceEnum_ELBO.loss`` with an empty guide
  (:func:`e_step_elbo`, the tested cross-check). No density is written by hand.
- **M-step** (closed form, Bishop eqs. 9.24-9.27): weighted counts, means and covariances.

EM is variational inference's coordinate ascent with q(assignment) unrestricted: the E-step
makes the bound tight, the M-step raises it, so log p(x | theta) never decreases
(Neal & Hinton 1998). :class:`EMResult` records it after every iteration.

**k-means limit** (Bishop §9.3.2): with the weights fixed equal and every covariance fixed at
``scale**2 * I``, the E-step assigns each point to the nearest mean as ``scale -> 0`` and the
M-step moves each mean to the average of its points: Lloyd's k-means.
:func:`kmeans_agreement` checks this against ``sklearn.cluster.KMeans`` started at the same
centres (k-means itself is scikit-learn's, not rewritten here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO
from pyro.ops.indexing import Vindex
from tqdm.auto import tqdm

from .._validate import check_int, check_positive, check_seed

__all__ = ["mixture_model", "EMResult", "em", "e_step", "e_step_elbo", "kmeans_agreement", "load_iris_petals",
           "COVARIANCES"]

COVARIANCES = ("full", "fixed")
"""``full``: weights, means and a full covariance per component are learned; ``fixed``:
equal weights, every covariance ``scale**2 * I``, only the means are learned (k-means limit)."""

_ELBO = TraceEnum_ELBO(max_plate_nesting=1)


def mixture_model(x, weights, locs, scale_tril):
    """The Gaussian mixture as a Pyro program with the assignments enumerated.

    :param x: ``(N, D)`` observations.
    :param weights: ``(K,)`` mixing weights (a simplex).
    :param locs: ``(K, D)`` component means.
    :param scale_tril: ``(K, D, D)`` Cholesky factors of the component covariances.
    """
    with pyro.plate("data", x.shape[0]):
        assignment = pyro.sample("assignment", dist.Categorical(weights),
                                 infer={"enumerate": "parallel"})
        pyro.sample("x", dist.MultivariateNormal(Vindex(locs)[..., assignment, :],
                                                 scale_tril=Vindex(scale_tril)[..., assignment, :, :]),
                    obs=x)


def _no_guide(*args, **kwargs):
    """theta is a point estimate and the assignments are enumerated: nothing to guide."""


def e_step(x: torch.Tensor, weights: torch.Tensor, locs: torch.Tensor,
           covariances: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The exact E-step from the Pyro model's own log density, assignments enumerated.

    One trace of :func:`mixture_model` under ``poutine.enum`` holds log p(assignment = k)
    and log p(x[n] | assignment = k) for every k at once (shape ``(K, N)``); their sum,
    normalized over k, gives the responsibilities, and its ``logsumexp`` over k summed over
    n gives log p(x | theta) -- the same numbers as ``TraceEnum_ELBO.compute_marginals`` and
    minus ``TraceEnum_ELBO.loss`` with an empty guide (:func:`e_step_elbo`; tested), at a
    fraction of their cost.

    :param x: ``(N, D)``; :param weights: ``(K,)``; :param locs: ``(K, D)``;
    :param covariances: ``(K, D, D)`` positive definite.
    :returns: ``(responsibilities (N, K), log p(x | theta) in nats)``.
    """
    scale_tril = torch.linalg.cholesky(covariances)
    model = poutine.enum(mixture_model, first_available_dim=-2)
    with poutine.block():
        trace = poutine.trace(model).get_trace(x, weights, locs, scale_tril)
    trace.compute_log_prob()
    joint = trace.nodes["assignment"]["log_prob"] + trace.nodes["x"]["log_prob"]   # (K, N)
    log_marginal = joint.logsumexp(0)
    return (joint - log_marginal).exp().T, float(log_marginal.sum())


def e_step_elbo(x: torch.Tensor, weights: torch.Tensor, locs: torch.Tensor,
                covariances: torch.Tensor) -> tuple[torch.Tensor, float]:
    """:func:`e_step` by ``TraceEnum_ELBO``: ``compute_marginals`` for the responsibilities
    and minus ``loss`` (exact: no continuous latents, empty guide) for log p(x | theta).
    Slower; the cross-check of :func:`e_step`. Same arguments and returns."""
    scale_tril = torch.linalg.cholesky(covariances)
    with poutine.block():
        marginals = _ELBO.compute_marginals(mixture_model, _no_guide, x, weights, locs, scale_tril)
        log_likelihood = -_ELBO.loss(mixture_model, _no_guide, x, weights, locs, scale_tril)
    return marginals["assignment"].probs, float(log_likelihood)


@dataclass(frozen=True)
class EMResult:
    """theta after EM and the run's trace.

    :ivar weights: ``(K,)``; :ivar locs: ``(K, D)``; :ivar covariances: ``(K, D, D)``.
    :ivar responsibilities: ``(N, K)`` at the final theta.
    :ivar log_likelihood: ``(iterations + 1,)`` log p(x | theta_t) in nats, t = 0 (the
        initial theta) .. final.
    :ivar converged: the last iteration gained less than ``tol * |log-likelihood|``.
    """

    weights: np.ndarray
    locs: np.ndarray
    covariances: np.ndarray
    responsibilities: np.ndarray
    log_likelihood: np.ndarray
    converged: bool

    @property
    def labels(self) -> np.ndarray:
        """Hard assignments argmax_k r[n, k], ``(N,)``."""
        return self.responsibilities.argmax(-1)


def _as_data(x) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach()
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"x must have shape (N,) or (N, D) with N, D >= 1; got {tuple(x.shape)}")
    if x.is_complex():
        raise ValueError("x is complex; EM needs real data")
    x = x.double()
    if not torch.isfinite(x).all():
        rows = torch.nonzero(~torch.isfinite(x).all(-1)).flatten()[:5].tolist()
        raise ValueError(f"x holds NaN or inf (rows {rows})")
    return x


def em(x, num_components: int | None = None, init_locs=None, covariance: str = "full",
       scale: float | None = None, max_iter: int = 200, tol: float = 1e-10, seed: int = 0,
       progress: bool = False) -> EMResult:
    """Maximum-likelihood theta of a Gaussian mixture by EM (see the module docstring).

    :param x: ``(N, D)`` or ``(N,)`` data (computed in float64).
    :param num_components: K (default: ``len(init_locs)``).
    :param init_locs: ``(K, D)`` initial means (default: K distinct data points chosen with
        ``seed``). Initial weights are equal, initial covariances the data's covariance
        (``full``) or ``scale**2 * I`` (``fixed``).
    :param covariance: ``"full"`` or ``"fixed"`` (:data:`COVARIANCES`).
    :param scale: the fixed component sd for ``covariance="fixed"`` (data units, > 0).
    :param max_iter: maximum EM iterations; :param tol: stop when an iteration gains less
        than ``tol * |log-likelihood|`` nats.
    :returns: :class:`EMResult`.
    :raises ValueError: bad shapes, NaN/inf data, K < 1 or K > N, ``init_locs`` of the wrong
        shape, unknown ``covariance``, ``scale`` missing or not > 0 for ``fixed`` (or given
        for ``full``), or a component that collapses (its covariance is singular) --
        all shape and setting checks before the first iteration.
    """
    x = _as_data(x)
    n, d = x.shape
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}, got {covariance!r}")
    if covariance == "fixed":
        if scale is None:
            raise ValueError("covariance='fixed' needs scale (the components' sd, > 0)")
        check_positive("scale", scale, "em")
    elif scale is not None:
        raise ValueError("scale applies to covariance='fixed' only")
    check_int("max_iter", max_iter, 1, "em")
    check_positive("tol", tol, "em")
    check_seed(seed)
    if init_locs is not None:
        locs = torch.as_tensor(np.asarray(init_locs), dtype=torch.float64).clone()
        if locs.dim() == 1 and d == 1:
            locs = locs[:, None]
        if locs.dim() != 2 or locs.shape[1] != d or locs.shape[0] == 0:
            raise ValueError(f"init_locs must have shape (K, {d}) for data of shape {tuple(x.shape)}; "
                             f"got {tuple(locs.shape)}")
        if num_components is not None and locs.shape[0] != num_components:
            raise ValueError(f"init_locs has {locs.shape[0]} rows but num_components={num_components}")
        if not torch.isfinite(locs).all():
            raise ValueError("init_locs holds NaN or inf")
    else:
        if num_components is None:
            raise ValueError("give num_components or init_locs")
        check_int("num_components", num_components, 1, "em")
        if num_components > n:
            raise ValueError(f"num_components={num_components} exceeds the N={n} data points")
        rng = np.random.default_rng(seed)
        locs = x[torch.as_tensor(rng.choice(n, num_components, replace=False))].clone()
    k = locs.shape[0]
    if k > n:
        raise ValueError(f"{k} components exceed the N={n} data points")
    eye = torch.eye(d, dtype=torch.float64)
    weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
    if covariance == "fixed":
        covariances = (scale ** 2 * eye).expand(k, d, d).clone()
    else:
        centred = x - x.mean(0)
        covariances = (centred.T @ centred / n + 1e-12 * eye).expand(k, d, d).clone()
    trace, converged = [], False
    bar = tqdm(range(max_iter), desc="em", disable=not progress, leave=False, mininterval=0.5)
    for _ in bar:
        r, log_likelihood = e_step(x, weights, locs, covariances)
        trace.append(log_likelihood)
        if len(trace) > 1 and trace[-1] - trace[-2] < tol * abs(trace[-1]):
            converged = True
            break
        # M-step (Bishop 9.24-9.27)
        counts = r.sum(0)
        if (counts <= 0).any():
            raise ValueError(f"component(s) {torch.nonzero(counts <= 0).flatten().tolist()} "
                             "have no responsibility left; use other init_locs or fewer components")
        locs = (r.T @ x) / counts[:, None]
        if covariance == "full":
            weights = counts / n
            diff = x[None] - locs[:, None]                                    # (K, N, D)
            covariances = torch.einsum("kn,kni,knj->kij", r.T, diff, diff) / counts[:, None, None]
            if (torch.linalg.eigvalsh(covariances)[:, 0] <= 1e-12 * covariances.diagonal(0, -2, -1).amax(-1)).any():
                raise ValueError("a component collapsed onto too few points (singular covariance); "
                                 "use other init_locs or fewer components")
    else:
        r, log_likelihood = e_step(x, weights, locs, covariances)
        trace.append(log_likelihood)
    return EMResult(weights.numpy(), locs.numpy(), covariances.numpy(), r.numpy(),
                    np.asarray(trace), converged)


def kmeans_agreement(x, init_locs, scales, max_iter: int = 300) -> list[dict]:
    """EM in the k-means limit against ``sklearn.cluster.KMeans`` from the same centres.

    For each ``scale`` (the fixed component sd, data units) EM runs with ``covariance="fixed"``
    from ``init_locs``; KMeans runs once with ``init=init_locs, n_init=1,
    algorithm="lloyd"``.

    :param x: ``(N, D)`` data; :param init_locs: ``(K, D)`` initial centres.
    :returns: one dict per scale: ``scale``, ``agreement`` (fraction of points whose EM hard
        assignment equals KMeans's label), ``max_centre_distance`` (data units, between EM's
        means and KMeans's centres), ``iterations``, EM's ``labels`` ``(N,)`` and ``locs``
        ``(K, D)``, and KMeans's ``kmeans_labels`` and ``kmeans_centres`` (the same in every row).
    :raises ValueError: as :func:`em`.
    """
    from sklearn.cluster import KMeans

    x = _as_data(x)
    init = np.asarray(init_locs, dtype=np.float64)
    init = init[:, None] if init.ndim == 1 and x.shape[1] == 1 else init
    km = KMeans(n_clusters=len(init), init=init, n_init=1, algorithm="lloyd", max_iter=max_iter,
                tol=0.0).fit(x.numpy())
    rows = []
    for scale in scales:
        result = em(x, init_locs=init, covariance="fixed", scale=float(scale), max_iter=max_iter)
        rows.append({"scale": float(scale),
                     "agreement": float((result.labels == km.labels_).mean()),
                     "max_centre_distance": float(np.abs(result.locs - km.cluster_centers_).max()),
                     "iterations": len(result.log_likelihood) - 1,
                     "labels": result.labels, "locs": result.locs,
                     "kmeans_labels": km.labels_, "kmeans_centres": km.cluster_centers_})
    return rows


def load_iris_petals(standardize: bool = True) -> np.ndarray:
    """scikit-learn's iris data (Fisher 1936; shipped with scikit-learn, no download): petal
    length and width, ``(150, 2)``, in cm or standardized to mean 0, sd 1 per column."""
    from sklearn.datasets import load_iris

    x = load_iris().data[:, 2:4].astype(np.float64)
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
    return x

