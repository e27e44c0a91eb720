"""Bayesian Gaussian mixture with conjugate priors (Bishop 2006, §10.2), 1-D, exchangeable.

    weights ~ Dirichlet(alpha0 * 1_K)
    precisions[k] ~ Gamma(a0, b0)                           (shape, rate)
    locs[k] | precisions[k] ~ Normal(m0, 1 / sqrt(beta0 * precisions[k]))
    assignment[n] ~ Categorical(weights)                    infer={"enumerate": "parallel"}
    y[n] ~ Normal(locs[assignment[n]], 1 / sqrt(precisions[assignment[n]])),   n = 1..N

This is Bishop's model (eqs. 10.37-10.40) in one dimension, where the Gaussian-Wishart
prior is a Normal-Gamma (Wishart(W0, nu0) in 1-D = Gamma(nu0 / 2, rate 1 / (2 W0))). Every
complete conditional is in the family of its prior, so mean-field coordinate ascent (CAVI,
:class:`ppl_genmodels.infer.CAVI`) has closed-form updates. The assignments are discrete:
NUTS and SVI (``TraceEnum_ELBO``) sum them out exactly by Pyro's parallel enumeration, so the
guide covers ``weights``, ``precisions`` and ``locs`` only.

Unlike :mod:`.gauss_mix`, the components are **exchangeable** (no ordering constraint): the
posterior has K! symmetric modes (label switching). NUTS chains started at random points
settle in different modes; CAVI (and SVI) find one. The comparison report shows both.

Data: posteriordb's ``low_dim_gauss_mix`` y (N = 1000, simulated by the posteriordb authors;
see :mod:`.gauss_mix`), the same data as the ``gauss_mix`` model.

Reference: none in closed form (a mixture posterior); distances are to NUTS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyro
import pyro.distributions as dist
import torch
from pyro.ops.indexing import Vindex

from ..posterior import Posterior
from .gauss_mix import load_data

NAME = "bayes_gauss_mix"
ASSIGNMENTS = ("enumerate", "marginal")
"""How the model sums the assignments out: ``enumerate`` (a ``Categorical`` site marked
``infer={"enumerate": "parallel"}``, summed out by Pyro) or ``marginal``
(``dist.MixtureSameFamily``, Stan's ``log_mix``). Both define the same posterior of the
globals; ``marginal`` lets NUTS evaluate all chains in one ``vmap``-ed call (Pyro's
enumeration uses an autograd function ``torch.func`` cannot transform, so enumerated models
run one chain at a time)."""

__all__ = ["ConjugateMixture", "make_posterior", "load_data", "reference", "engine_config"]


@dataclass(frozen=True)
class ConjugateMixture:
    """The Pyro model above with its hyperparameters; call it as ``model(y)``, y: ``(N,)``.

    :ivar num_components: K >= 1.
    :ivar alpha0: Dirichlet concentration per component (> 0).
    :ivar m0: prior mean of the locations (data units).
    :ivar beta0: prior precision of a location, relative to its component's precision (> 0).
    :ivar a0: Gamma shape of the precisions (> 0).
    :ivar b0: Gamma rate of the precisions (> 0; units: data units squared).
    :ivar assignments: :data:`ASSIGNMENTS`.
    :raises ValueError: a hyperparameter out of range (naming it).
    """

    num_components: int = 2
    alpha0: float = 5.0
    m0: float = 0.0
    beta0: float = 0.25
    a0: float = 2.0
    b0: float = 2.0
    assignments: str = "enumerate"

    __name__ = NAME  # Posterior and the fingerprint read a model's name

    def __post_init__(self):
        if isinstance(self.num_components, bool) or not isinstance(self.num_components, int) \
                or self.num_components < 1:
            raise ValueError(f"num_components must be an integer >= 1, got {self.num_components!r}")
        if self.assignments not in ASSIGNMENTS:
            raise ValueError(f"assignments must be one of {ASSIGNMENTS}, got {self.assignments!r}")
        for key in ("alpha0", "beta0", "a0", "b0"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and value > 0 and value < float("inf")):
                raise ValueError(f"{key} must be a finite number > 0, got {value!r}")

    def __call__(self, y):
        k = self.num_components
        ones = y.new_ones(k)
        weights = pyro.sample("weights", dist.Dirichlet(self.alpha0 * ones))
        precisions = pyro.sample("precisions", dist.Gamma(self.a0 * ones, self.b0 * ones).to_event(1))
        locs = pyro.sample("locs", dist.Normal(self.m0 * ones,
                                               (self.beta0 * precisions).rsqrt()).to_event(1))
        if self.assignments == "marginal":  # Stan's log_mix: the same posterior of the globals
            with pyro.plate("data", y.shape[-1]):
                components = dist.Normal(locs, precisions.rsqrt())
                pyro.sample("y", dist.MixtureSameFamily(dist.Categorical(weights), components),
                            obs=y)
            return
        with pyro.plate("data", y.shape[-1]):
            assignment = pyro.sample("assignment", dist.Categorical(weights),
                                     infer={"enumerate": "parallel"})
            # Vindex: the globals may carry particle batch dims, assignment enumeration dims.
            pyro.sample("y", dist.Normal(Vindex(locs)[..., assignment],
                                         Vindex(precisions)[..., assignment].rsqrt()), obs=y)


def guide_for(model: ConjugateMixture):
    """A mean-field Gaussian guide on the unconstrained globals (``AutoDiagonalNormal``,
    :class:`~.flows.FFGGuide`) for SVI; the enumerated assignments are hidden from it
    (``poutine.block``)."""
    from pyro import poutine

    from .flows import FFGGuide

    return FFGGuide(poutine.block(model, expose=["weights", "precisions", "locs"]),
                    init_scale=0.05)


def make_posterior(quick: bool = False, seed: int = 0, model: ConjugateMixture | None = None,
                   y: torch.Tensor | None = None) -> Posterior:
    """The posterior of :class:`ConjugateMixture` (default hyperparameters) on posteriordb's
    low_dim_gauss_mix data, or on ``y`` ``(N,)`` if given."""
    torch.manual_seed(seed)
    model = model or ConjugateMixture()
    data = {"y": y} if y is not None else load_data()
    return Posterior(model, guide_for(model), data, name=NAME)


def reference(posterior: Posterior | None = None):
    """None: a mixture posterior has no closed form; distances are measured to NUTS."""
    return None


def engine_config(quick: bool = False) -> dict:
    if quick:
        return {"svi": {"num_steps": 300}, "cavi": {"max_iter": 200},
                "nuts": {"num_samples": 50, "warmup_steps": 50, "num_chains": 4}}
    # NUTS evaluates enumerated models one chain at a time (see ASSIGNMENTS): a modest budget.
    return {"svi": {"num_steps": 2000}, "cavi": {"max_iter": 500},
            "nuts": {"num_samples": 200, "warmup_steps": 200, "num_chains": 4}}
