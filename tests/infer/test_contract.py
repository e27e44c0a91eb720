"""The engine contract: built-in engines satisfy the Engine protocol, a user engine with
only ``name`` and ``run(posterior, seed)`` is adapted once by ``get_engine``, and engine
variants are made with ``dataclasses.replace``, not by changing an engine."""

import dataclasses

import numpy as np
import pytest

from ppl_genmodels._arviz import from_dict

from ppl_genmodels.infer import (ENGINES, NUTS, SVI, Engine, EngineResult, GuideEngine,
                                 UserEngine, get_engine)
from ppl_genmodels.infer.pyro_nuts import IterationStats, stack_stats


class OldStyleEngine:
    name = "old"

    def __init__(self, returns=None):
        self.returns = returns

    def run(self, posterior, seed):
        if self.returns is not None:
            return self.returns
        return from_dict(posterior={"a": np.full((1, 3), float(seed))}, attrs={"who": posterior})


def test_builtin_engines_satisfy_the_protocol():
    for name, cls in ENGINES.items():
        engine = get_engine(name)
        assert isinstance(engine, cls) and isinstance(engine, Engine)
        assert get_engine(engine) is engine  # built-in objects are not wrapped
    assert isinstance(SVI(), GuideEngine) and not isinstance(NUTS(), GuideEngine)


def test_user_engine_is_adapted_once():
    user = OldStyleEngine()
    engine = get_engine(user)
    assert isinstance(engine, UserEngine) and engine.engine is user and engine.name == "old"
    assert get_engine(engine) is engine
    engine.validate("posterior")  # no validate of its own: nothing to check
    result = engine.run("posterior", 3, progress=False)  # progress is not passed on
    assert isinstance(result, EngineResult) and result.idata.posterior["a"].values[0, 0] == 3
    assert result.guide is None and result.param_state is None
    with pytest.raises(ValueError, match="needs a `name` and a `run"):
        get_engine(object())


def test_user_engine_must_return_inference_data():
    engine = get_engine(OldStyleEngine(returns={"a": [1.0, 2.0]}))
    with pytest.raises(TypeError, match=r"engine 'old'.*returned a dict, not an arviz\.InferenceData"):
        engine.run("posterior", 0)


def test_replace_makes_a_variant_and_results_are_frozen():
    svi = SVI(num_draws=10)
    more = dataclasses.replace(svi, num_draws=99)
    assert (svi.num_draws, more.num_draws) == (10, 99)
    with pytest.raises(dataclasses.FrozenInstanceError):
        EngineResult(idata=None).guide = "changed"


def test_nuts_statistics_are_named_per_iteration():
    one = IterationStats(diverging=True, energy=1.5, tree_depth=3, n_steps=7, step_size=0.1,
                         acceptance_rate=0.9, lp=-2.0)
    stats = stack_stats([[one, one._replace(diverging=False)], [one, one]])
    assert list(stats) == ["diverging", "energy", "tree_depth", "n_steps", "step_size",
                           "acceptance_rate", "lp"]
    assert stats["diverging"].dtype == bool and stats["diverging"].tolist() == [[True, False],
                                                                                [True, True]]
    assert stats["tree_depth"].dtype.kind == "i" and stats["energy"].shape == (2, 2)
