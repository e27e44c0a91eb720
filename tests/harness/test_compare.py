"""compare(): custom model/guide pairs, frozen theta, isolated engines, user engines, report."""

import numpy as np
import pyro
import pytest
import torch

from harness_data import QUICK
from helpers import (TinyDecoder, TinyEncoder, regression_data, regression_guide,
                     regression_model, tiny_model_factory)
from ppl_genmodels import Posterior, _arviz, compare
from ppl_genmodels.harness import Comparison
from ppl_genmodels.infer import NUTS, RWS, SVI


def test_unseen_model_guide_pair_goes_through_compare(tmp_path, regression_comparison):
    result = regression_comparison  # compare() on regression_model, regression_guide
    assert set(result.idata) == {"svi", "rws", "nuts"}
    table = result.table
    assert set(table.index.get_level_values("parameter")) == {"w", "b"}
    # no reference: distances are to NUTS, and NUTS's own distances are undefined
    assert result.baseline == "nuts"
    assert np.isnan(table.loc[("nuts", "w"), "std_mean_error"])
    assert table.loc[("svi", "w"), "std_mean_error"] < 1.0
    engines = result.engine_table
    assert {"wall_time_s", "grad_evals", "divergences", "elbo", "log_evidence", "k_hat"} <= set(engines)
    assert np.isnan(engines.loc["nuts", "elbo"]) and np.isfinite(engines.loc["svi", "elbo"])
    assert engines.loc["nuts", "divergences"] == 0

    report = result.save(tmp_path / "out")
    written = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"svi.nc", "rws.nc", "nuts.nc", "summary.csv", "engines.csv", "report.md", "forest.png",
            "densities.png", "pair_svi_vs_nuts.png", "pair_rws_vs_nuts.png", "nuts_trace_rank.png",
            "loss.png"} <= written
    assert not [n for n in written if n.endswith(".tmp")]
    text = report.read_text()
    assert "# Posterior comparison: regression" in text and "k_hat" in text


def test_theta_unchanged_and_engines_isolated():
    torch.manual_seed(0)
    decoder, encoder = TinyDecoder(), TinyEncoder()
    x = torch.randn(12, 3)
    posterior = Posterior(tiny_model_factory(decoder), encoder, {"x": x}, params=decoder)
    theta_before = {k: v.detach().clone() for k, v in decoder.state_dict().items()}
    guide_before = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
    pyro.param("user_param", torch.tensor(1.5))  # something the user has in the global store

    result = compare(posterior, engine_config=QUICK, progress=False)

    for k, v in decoder.state_dict().items():
        assert torch.equal(v, theta_before[k]), k  # bit for bit
    assert all(p.requires_grad for p in decoder.parameters())  # flags restored
    assert all(p.grad is None for p in decoder.parameters())
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, guide_before[k]), k  # the user's guide was never trained
    assert set(pyro.get_param_store().keys()) == {"user_param"}
    assert pyro.param("user_param").item() == 1.5
    svi_guide, rws_guide = result.results["svi"].guide, result.results["rws"].guide
    assert svi_guide is not rws_guide and svi_guide is not encoder
    shared = {p.data_ptr() for p in svi_guide.parameters()} & {p.data_ptr() for p in rws_guide.parameters()}
    assert not shared
    assert not torch.equal(svi_guide.net.weight, rws_guide.net.weight)  # each trained its own


def test_table_is_cached_until_a_result_is_replaced(regression_comparison):
    comparison = Comparison(regression_comparison.posterior_name, dict(regression_comparison.idata))
    table = comparison.table
    assert comparison.table is table  # not recomputed on a second access
    comparison.idata["svi_again"] = comparison.idata["svi"].copy()
    recomputed = comparison.table
    assert recomputed is not table and "svi_again" in recomputed.index.get_level_values("engine")
    assert comparison.table is recomputed


def test_theta_in_param_store_mapping_is_frozen():
    """theta given as Pyro param-store entries (params={name: tensor})."""

    def model(x):
        w = pyro.param("w", torch.ones(3))
        with pyro.plate("rows", x.shape[0]):
            z = pyro.sample("z", pyro.distributions.Normal(x.new_zeros(x.shape[0]), 1.0))
            pyro.sample("x", pyro.distributions.Normal(z.unsqueeze(-1) * w, 0.5).to_event(1), obs=x)

    def guide(x, observations=None):
        loc = pyro.param("z_loc", torch.zeros(x.shape[0]))
        with pyro.plate("rows", x.shape[0]):
            pyro.sample("z", pyro.distributions.Normal(loc, 0.5))

    w = torch.tensor([2.0, -1.0, 0.5])
    posterior = Posterior(model, guide, {"x": torch.randn(5, 3)}, params={"w": w})
    svi = SVI(num_steps=100, num_draws=10)
    param_state = compare(posterior, engines=(svi,), progress=False).results["svi"].param_state
    assert torch.equal(param_state["w"], w)  # the model saw theta and left it alone
    assert not torch.equal(param_state["z_loc"], torch.zeros(5))  # the guide learned


def test_engine_that_changes_theta_is_caught():
    decoder = TinyDecoder()
    posterior = Posterior(tiny_model_factory(decoder), TinyEncoder(), {"x": torch.randn(4, 3)},
                          params=decoder)

    class Vandal:
        name = "vandal"

        def run(self, posterior, seed):
            with torch.no_grad():
                decoder.linear.bias.add_(1.0)
            return _arviz.from_dict(posterior={"z": np.zeros((1, 10, 4))})  # a valid result

    with pytest.raises(RuntimeError, match="engine 'vandal' changed the frozen generative parameter"):
        compare(posterior, engines=(Vandal(),), progress=False)


def test_user_engine_object_and_resume(tmp_path):
    class PriorSampler:
        """Draws from the prior: a deliberately poor approximation."""

        name = "prior"

        def run(self, posterior, seed):
            from ppl_genmodels.infer.result import engine_attrs, make_inference_data

            g = torch.Generator().manual_seed(seed)
            draws = {"w": 3 * torch.randn(1, 100, generator=g).numpy(),
                     "b": 3 * torch.randn(1, 100, generator=g).numpy()}
            return make_inference_data(posterior, draws, {}, engine_attrs(
                self.name, {}, seed, 0.0, 0, posterior))

    posterior = Posterior(regression_model, regression_guide, regression_data())
    nuts = NUTS(num_samples=100, warmup_steps=100)
    first = compare(posterior, engines=(PriorSampler(), nuts), progress=False, checkpoint_dir=tmp_path)
    assert first.table.loc[("prior", "w"), "sd_ratio"] > 5  # the prior is far wider
    assert (tmp_path / "nuts.nc").exists()
    again = compare(posterior, engines=(PriorSampler(), nuts), progress=False, checkpoint_dir=tmp_path)
    np.testing.assert_array_equal(again.idata["nuts"].posterior["w"].values,
                                  first.idata["nuts"].posterior["w"].values)
    assert again.idata["nuts"].posterior.attrs["wall_time_s"] == first.idata["nuts"].posterior.attrs["wall_time_s"]


def test_bad_engine_specs():
    posterior = Posterior(regression_model, regression_guide, regression_data())
    with pytest.raises(ValueError, match="unknown engine 'hmc'"):
        compare(posterior, engines=("hmc",), progress=False)
    with pytest.raises(ValueError, match="names must be unique"):
        compare(posterior, engines=(SVI(), SVI()), progress=False)
    with pytest.raises(ValueError, match="needs num_particles > 1"):
        RWS(num_particles=1)


class Crashing:
    """A user engine that dies mid-run (as a NaN loss or an out-of-memory error would)."""

    name = "crashing"

    def run(self, posterior, seed):
        raise FloatingPointError("loss became NaN at step 17")


@pytest.mark.parametrize("position", ["first", "last"])
def test_an_engine_that_fails_is_recorded_and_the_others_finish(position, tmp_path):
    posterior = Posterior(regression_model, regression_guide, regression_data())
    svi = SVI(num_steps=50, num_draws=50)
    engines = (Crashing(), svi) if position == "first" else (svi, Crashing())
    result = compare(posterior, engines=engines, progress=False, checkpoint_dir=tmp_path / "ck")
    assert set(result.idata) == {"svi"}  # the good engine ran, before or after the crash
    assert result.failures == {"crashing": "FloatingPointError: loss became NaN at step 17"}
    assert (tmp_path / "ck" / "svi.nc").exists() and not (tmp_path / "ck" / "crashing.nc").exists()
    table = result.engine_table
    assert table.loc["crashing", "verdict"] == "do not trust"
    assert "loss became NaN" in table.loc["crashing", "because"]
    assert np.isnan(table.loc["crashing", "wall_time_s"]) and np.isfinite(table.loc["svi", "wall_time_s"])
    assert "failed" in result.warnings["crashing"][0]
    text = result.save(tmp_path / "out", figures=False).read_text()
    assert "Failed, no result" in text and "loss became NaN at step 17" in text


def test_on_error_raise_and_every_engine_failing():
    posterior = Posterior(regression_model, regression_guide, regression_data())
    with pytest.raises(FloatingPointError, match="step 17"):
        compare(posterior, engines=(Crashing(),), progress=False, on_error="raise")
    with pytest.raises(RuntimeError, match="every engine failed: crashing: FloatingPointError"):
        compare(posterior, engines=(Crashing(),), progress=False)
    with pytest.raises(ValueError, match="on_error must be"):
        compare(posterior, engines=("svi",), progress=False, on_error="ignore")
