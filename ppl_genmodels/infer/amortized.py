"""The amortized guide as it is: draws from q(z | x) with no fitting at all."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import pyro

from .._validate import check_int, check_seed
from ..posterior import Posterior
from ._draws import guide_draws, param_store_state
from .base import EngineResult
from .result import engine_attrs, make_inference_data


@dataclass
class Amortized:
    """Evaluate the posterior's guide (an amortized encoder) without refitting it.

    This is the inference network's answer on the target data: the amortization gap
    (Cremer, Li & Duvenaud 2018) is the ELBO difference between this and a guide refit to
    the same data. Draws and log weights come from
    ``pyro.infer.importance.vectorized_importance_weights``, as for the VI engines.

    :param num_draws: draws from the guide stored in ``posterior``.
    :raises ValueError: ``num_draws < 1`` or the posterior has no guide.

    Result ``sample_stats``: ``log_weight`` (nats per draw); ``attrs['grad_evals']`` = 0.
    """

    num_draws: int = 1000

    name = "amortized"

    def __post_init__(self):
        check_int("num_draws", self.num_draws, 1, "amortized")

    def validate(self, posterior: Posterior) -> None:
        """:raises ValueError: ``num_draws`` not an integer >= 1, or no guide."""
        self.__post_init__()
        posterior.validate()
        if posterior.guide is None:
            raise ValueError("amortized needs a guide; Posterior.guide is None")

    def run(self, posterior: Posterior, seed: int = 0, *, progress: bool = True) -> EngineResult:
        """:returns: :class:`~.base.EngineResult`: InferenceData with one chain of
            ``num_draws`` iid guide draws, the guide (a private copy) and the param-store state."""
        seed = check_seed(seed)
        self.validate(posterior)
        sites = posterior.validate()
        pyro.set_rng_seed(seed)
        start = time.perf_counter()
        with posterior.session() as (model, guide):
            values, log_weights = guide_draws(model, guide, posterior.data, sites, self.num_draws)
            param_state = param_store_state()
        attrs = engine_attrs(self.name, asdict(self), seed, time.perf_counter() - start, 0, posterior)
        idata = make_inference_data(posterior, draws={k: v[None] for k, v in values.items()},
                                    sample_stats={"log_weight": log_weights[None]}, attrs=attrs)
        return EngineResult(idata, guide=guide, param_state=param_state)
