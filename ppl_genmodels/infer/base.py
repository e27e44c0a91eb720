"""The engine contract: what every inference engine is and what its run returns.

An engine is any object that satisfies :class:`Engine`:

- ``name: str``: unique within a comparison; used for file names and table rows.
- ``validate(posterior) -> None``: every check that can fail before any work starts
  (missing guide, discrete latents NUTS cannot sample, bad counts); raises ``ValueError``.
  ``compare`` and ``sbc`` call it for every engine before the first one runs.
- ``run(posterior, seed, *, progress=True) -> EngineResult``: the draws of one run. It
  must leave theta (``posterior.params``) unchanged (the harness checks it bit for bit)
  and work in ``posterior.session()`` (its own param store and guide copy). The same
  ``seed`` must give the same result.

An engine's settings are its (dataclass) fields; an engine is not changed by ``run`` --
a variant with other settings is ``dataclasses.replace(engine, num_draws=...)``.

The result is a value, :class:`EngineResult`: the ``arviz.InferenceData`` (layout in
:mod:`ppl_genmodels.infer.result`) plus, for engines that fit or evaluate a guide (SVI,
RWS, amortized), the fitted private guide and its Pyro param-store state. This follows
NumPyro's ``SVIRunResult(params, state, losses)`` and BlackJAX's ``SamplingAlgorithm``
(``init``/``step`` returning a state and an info value) rather than results left as
attributes on the engine.

User engines written for the older, looser contract (``name`` and ``run(posterior, seed)``
returning ``InferenceData``; ``validate`` optional) are adapted once, by
:class:`UserEngine` in :func:`ppl_genmodels.infer.get_engine`; nothing else inspects an
engine's methods at run time.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

if TYPE_CHECKING:  # the contract needs no import of Pyro at run time
    from ..posterior import Posterior

__all__ = ["Engine", "GuideEngine", "BatchedEngine", "EngineResult", "UserEngine", "EngineContractError"]


@dataclass(frozen=True)
class EngineResult:
    """What one :meth:`Engine.run` returns.

    :ivar idata: ``arviz.InferenceData`` with the layout of :mod:`ppl_genmodels.infer.result`
        (``posterior`` draws with dims ``(chain, draw, *site_shape)``, ``sample_stats``,
        ``log_likelihood``, ``posterior_predictive``, ``prior``, ``prior_predictive``,
        ``observed_data``, ``constant_data``, the posterior's dims and coords, engine
        ``attrs``).
    :ivar guide: the guide the draws came from (a private, fitted copy for SVI/RWS; the
        given guide's copy for the amortized engine); ``None`` for MCMC and user engines.
    :ivar param_state: Pyro param-store name -> tensor after the run (the guide's
        ``pyro.param`` values, and theta when given as param-store entries); ``None`` where
        ``guide`` is ``None``.
    """

    idata: Any
    guide: Any = None
    param_state: Mapping[str, Any] | None = None


@runtime_checkable
class Engine(Protocol):
    """An inference engine (see the module docstring for the contract)."""

    name: str

    def validate(self, posterior: Posterior) -> None:
        """:raises ValueError: the engine cannot run on ``posterior`` as configured."""

    def run(self, posterior: Posterior, seed: int, *, progress: bool = True) -> EngineResult:
        """Draw from p(z | x, theta) of ``posterior`` (``seed``: the run's only source of
        randomness; ``progress``: show a progress bar). :returns: :class:`EngineResult`."""


@runtime_checkable
class GuideEngine(Engine, Protocol):
    """An engine whose draws are ``num_draws`` iid draws from a guide q(z | x) (SVI, RWS,
    amortized): no thinning is needed, PSIS and VSBC apply. Such engines are dataclasses,
    so ``dataclasses.replace(engine, num_draws=L)`` gives one with L draws."""

    num_draws: int


@runtime_checkable
class BatchedEngine(Engine, Protocol):
    """An engine that samples many posteriors of one model in one run (the ensemble
    :class:`~ppl_genmodels.infer.NUTS`): SBC's simulated data sets and the images of a
    fixed-theta comparison are given to it together. ``num_chains`` is per posterior; such
    engines are dataclasses (``dataclasses.replace`` makes variants)."""

    num_chains: int

    def run_many(self, posteriors, seed: int, *, progress: bool = True) -> list[EngineResult]:
        """:returns: one :class:`EngineResult` per posterior, in order."""


class EngineContractError(TypeError):
    """An engine broke the engine contract (e.g. ``run`` returned no ``InferenceData``): a bug
    in the engine, which ``compare`` raises at once instead of recording as a failed run."""


class UserEngine:
    """Adapter of a user engine with ``name`` and ``run(posterior, seed)`` returning
    ``InferenceData`` (optionally ``validate(posterior)`` and a ``progress`` keyword) to
    :class:`Engine`. Built once by :func:`ppl_genmodels.infer.get_engine`; what the user
    object offers is read there, not at every call.

    :ivar engine: the user's object (unchanged).
    :raises ValueError: the object has no ``name`` or no callable ``run``.
    """

    def __init__(self, engine: Any):
        if not (hasattr(engine, "name") and callable(getattr(engine, "run", None))):
            raise ValueError(
                f"an engine needs a `name` and a `run(posterior, seed)` method: {engine!r}")
        self.engine = engine
        self.name = str(engine.name)
        self._validate = getattr(engine, "validate", None)
        self._takes_progress = "progress" in inspect.signature(engine.run).parameters

    def validate(self, posterior) -> None:
        """The user's ``validate`` if it has one."""
        if callable(self._validate):
            self._validate(posterior)

    def run(self, posterior, seed: int, *, progress: bool = True) -> EngineResult:
        """The user's ``run``; its return value becomes ``EngineResult.idata`` (an
        :class:`EngineResult` is passed through), with ArviZ's default dims of variables the
        posterior declares dims for renamed to those dims and given their coords
        (:func:`ppl_genmodels._arviz.apply_dims`).

        :raises EngineContractError: (a ``TypeError``) naming the engine, when ``run`` returns
            something other than an ``arviz.InferenceData`` (or an :class:`EngineResult`
            holding one)."""
        from .._arviz import InferenceData, apply_dims

        if self._takes_progress:
            out = self.engine.run(posterior, seed, progress=progress)
        else:
            out = self.engine.run(posterior, seed)
        result = out if isinstance(out, EngineResult) else EngineResult(idata=out)
        if not isinstance(result.idata, InferenceData):
            raise EngineContractError(
                f"engine {self.name!r}: run(posterior, seed) returned a "
                f"{type(result.idata).__name__}, not an arviz.InferenceData (see "
                "ppl_genmodels.infer.result.make_inference_data for the layout)")
        idata = apply_dims(result.idata, getattr(posterior, "dims", None),
                           getattr(posterior, "coords", None) or {})
        if idata is not result.idata:  # ArviZ's default dims renamed to the posterior's
            result = dataclasses.replace(result, idata=idata)
        return result

    def __repr__(self) -> str:
        return f"UserEngine({self.engine!r})"
