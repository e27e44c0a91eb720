"""The bad-input table: every public entry point refuses bad input up front.

Each row is one bad input to the Python API (``Posterior``, ``compare``, ``get_engine``,
the engines' constructors and ``validate``/``run``, ``sbc``, ``train``, the data loaders)
or to the command line (``main(argv)`` in-process). A row asserts the exception type (CLI:
exit status 2), that the message names the offending site, file or argument (a regex),
and that nothing was written: the row's output folder (``tmp_path / "out"``) must not
exist afterwards. Everything is refused before any engine runs, so the table is fast.
"""

from __future__ import annotations

import math

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from helpers import (TinyDecoder, TinyEncoder, regression_data, regression_guide,
                     regression_model, tiny_model_factory)
from ppl_genmodels import Posterior, compare
from ppl_genmodels.cli import main
from ppl_genmodels.infer import NUTS, RWS, SVI, Amortized, PyroNUTS, get_engine


# --- small model/guide pairs ---------------------------------------------------------------
def _post(**data):
    return Posterior(regression_model, regression_guide, {**regression_data(), **data})


def _good():
    return _post()


def scale_model(y):
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(0.0, sigma), obs=y)


def lognormal_model(y):
    sigma = pyro.sample("sigma", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(0.0, sigma), obs=y)


def normal_guide_for(site, loc=0.0):
    def guide(y, observations=None):
        pyro.sample(site, dist.Normal(loc, 1.0))
    return guide


def coin_model(y):
    p = pyro.sample("p", dist.Beta(2.0, 2.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Bernoulli(p), obs=y)


def no_latent_model(y):
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(0.0, 1.0), obs=y)


def discrete_model(y):
    k = pyro.sample("k", dist.Bernoulli(0.5))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", dist.Normal(k, 1.0), obs=y)


def discrete_guide(y, observations=None):
    pyro.sample("k", dist.Bernoulli(0.5))


def sleepless_guide(x, y):  # no observations= keyword
    regression_guide(x, y)


Y = torch.tensor([0.5, -0.2, 1.3])


class DictEngine:
    name = "dict_engine"

    def run(self, posterior, seed):
        return {"w": np.zeros(10)}


def _int_x_posterior():
    decoder = TinyDecoder()
    return Posterior(tiny_model_factory(decoder), TinyEncoder(),
                     {"x": torch.ones(4, 3, dtype=torch.int64)}, params=decoder)


def _empty_npz(tmp_path, name="binarized_mnist.npz"):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    empty = np.zeros((0, 784), dtype=np.uint8)
    np.savez(data_dir / name, x_train=empty, x_valid=empty, x_test=empty)
    return data_dir


def _empty_mnist_npz(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    x, y = np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8)
    np.savez(data_dir / "mnist.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    return data_dir / "mnist.npz"


def _sbc(**kw):
    from ppl_genmodels.sbc import sbc

    def call(out):
        args = dict(model_name_or_factory="normal_normal", engine="nuts", num_simulations=20,
                    num_draws=9, checkpoint_dir=out, progress=False)
        args.update(kw)
        return sbc(**args)
    return call


def _train(**kw):
    from ppl_genmodels.learning import train

    def call(out):
        return train(**{"model": "vae", "data": "digits", "epochs": 1, "out": out,
                        "progress": False, **kw})
    return call


# --- the Python API ------------------------------------------------------------------------
V, T = ValueError, TypeError
API = [
    # Posterior(...): data entries
    ("posterior-empty-tensor", lambda out: _post(y=torch.zeros(0)), V, r"data\['y'\] is empty \(shape \(0,\)\)"),
    ("posterior-empty-array", lambda out: _post(x=np.zeros((0, 2))), V, r"data\['x'\] is empty"),
    ("posterior-empty-list", lambda out: _post(x=[]), V, r"data\['x'\] is empty"),
    ("posterior-object-strings", lambda out: _post(x=np.array(["a", 1.0], dtype=object)), V,
     r"data\['x'\] is a numpy object array; e\.g\. 'a' \(str\)"),
    ("posterior-string-array", lambda out: _post(x=np.array(["1", "2"])), V, r"data\['x'\] has dtype <U1"),
    ("posterior-complex-array", lambda out: _post(y=np.ones(30) + 1j), V, r"data\['y'\] is complex"),
    ("posterior-complex-tensor", lambda out: _post(y=torch.ones(30, dtype=torch.complex64)), V,
     r"data\['y'\] is complex"),
    ("posterior-nan", lambda out: _post(y=np.r_[np.nan, np.zeros(29)]), V, r"data\['y'\] has NaN at rows \[0\]"),
    ("posterior-inf-scalar", lambda out: _post(s=math.inf), V, r"data\['s'\] is inf"),
    ("posterior-data-not-mapping", lambda out: Posterior(regression_model, None, [1, 2]), V,
     r"data must be a mapping"),
    ("posterior-model-not-callable", lambda out: Posterior("model", None, {}), V, r"model must be callable"),
    ("posterior-guide-not-callable", lambda out: Posterior(regression_model, 3, {}), V, r"guide must be callable"),
    ("posterior-name-not-str", lambda out: Posterior(regression_model, None, {}, name=3), V, r"name must be a string"),
    ("posterior-params-type", lambda out: Posterior(regression_model, None, {}, params=[1]), V, r"params must be"),
    ("posterior-params-entry", lambda out: Posterior(regression_model, None, {}, params={"w": 1.0}), V,
     r"params\['w'\] is a float"),
    # Posterior.validate(): sites, integer data, guide support
    ("validate-integer-data", lambda out: _int_x_posterior().validate(), V,
     r"(?s)(model|guide)\(\*\*data\) failed.*data\['x'\] \(torch\.int64\) holds integers.*\.float\(\)"),
    ("validate-no-latent", lambda out: Posterior(no_latent_model, None, {"y": Y}).validate(), V,
     r"has no latent sample sites"),
    ("validate-halfnormal-support", lambda out: Posterior(scale_model, normal_guide_for("sigma"), {"y": Y}).validate(),
     V, r"site 'sigma': the guide drew -?[\d.e-]+, outside the model's support GreaterThanEq\(lower_bound=0\.0\) \(HalfNormal\)"),
    ("validate-lognormal-support", lambda out: Posterior(lognormal_model, normal_guide_for("sigma"), {"y": Y}).validate(),
     V, r"site 'sigma'.*outside the model's support GreaterThan\(lower_bound=0\.0\) \(LogNormal\)"),
    ("validate-probability-support", lambda out: Posterior(coin_model, normal_guide_for("p", 0.5), {"y": torch.ones(3)}).validate(),
     V, r"site 'p'.*outside the model's support Interval\(lower_bound=0\.0, upper_bound=1\.0\) \(Beta\)"),
    ("validate-extra-guide-site", lambda out: Posterior(scale_model, normal_guide_for("tau"), {"y": Y}).validate(), V,
     r"guide samples site 'tau' which the model does not have"),
    ("validate-observed-shape", lambda out: _post(y=torch.zeros(29)).validate(), V,
     r"model\(\*\*data\) failed|observed site 'y'"),
    # engine constructors: settings
    ("svi-num-steps-float", lambda out: SVI(num_steps=10.5), V, r"svi: num_steps must be an integer >= 0, got 10\.5"),
    ("svi-num-steps-str", lambda out: SVI(num_steps="100"), V, r"svi: num_steps must be an integer >= 0, got '100'"),
    ("svi-num-steps-negative", lambda out: SVI(num_steps=-1), V, r"svi: num_steps"),
    ("svi-num-draws-zero", lambda out: SVI(num_draws=0), V, r"svi: num_draws must be an integer >= 1"),
    ("svi-num-particles-zero", lambda out: SVI(num_particles=0), V, r"svi: num_particles"),
    ("svi-num-particles-bool", lambda out: SVI(num_particles=True), V, r"svi: num_particles"),
    ("svi-lr-zero", lambda out: SVI(lr=0), V, r"svi: lr must be a finite number > 0, got 0"),
    ("svi-lr-negative", lambda out: SVI(lr=-0.1), V, r"svi: lr must be"),
    ("svi-lr-nan", lambda out: SVI(lr=math.nan), V, r"svi: lr must be"),
    ("svi-lr-str", lambda out: SVI(lr="0.01"), V, r"svi: lr must be"),
    ("svi-elbo", lambda out: SVI(elbo="renyi"), V, r"elbo must be one of"),
    ("rws-one-particle", lambda out: RWS(num_particles=1), V, r"num_particles > 1"),
    ("rws-particles-float", lambda out: RWS(num_particles=4.0), V, r"rws: num_particles must be an integer"),
    ("rws-insomnia", lambda out: RWS(insomnia=1.5), V, r"rws: insomnia must lie in \[0, 1\]"),
    ("rws-sleep-particles", lambda out: RWS(num_sleep_particles=0), V, r"rws: num_sleep_particles"),
    ("rws-lr-zero", lambda out: RWS(lr=0.0), V, r"rws: lr must be"),
    ("nuts-accept-one", lambda out: NUTS(target_accept_prob=1.0), V, r"NUTS: target_accept_prob must lie in \(0, 1\)"),
    ("nuts-accept-zero", lambda out: NUTS(target_accept_prob=0), V, r"NUTS: target_accept_prob"),
    ("nuts-accept-str", lambda out: NUTS(target_accept_prob="0.8"), V, r"NUTS: target_accept_prob"),
    ("nuts-samples-str", lambda out: NUTS(num_samples="100"), V, r"NUTS: num_samples must be an integer >= 1, got '100'"),
    ("nuts-samples-float", lambda out: NUTS(num_samples=10.5), V, r"NUTS: num_samples must be an integer"),
    ("nuts-warmup-negative", lambda out: NUTS(warmup_steps=-1), V, r"NUTS: warmup_steps must be an integer >= 0"),
    ("nuts-warmup-bool", lambda out: NUTS(warmup_steps=True), V, r"NUTS: warmup_steps"),
    ("nuts-chains-zero", lambda out: NUTS(num_chains=0), V, r"NUTS: num_chains"),
    ("nuts-potential", lambda out: NUTS(potential="jit"), V, r"NUTS: potential must be one of"),
    ("nuts-init-radius", lambda out: NUTS(init_radius=0), V, r"NUTS: init_radius"),
    ("pyro-nuts-accept", lambda out: PyroNUTS(target_accept_prob=1.5), V, r"pyro_nuts: target_accept_prob"),
    ("pyro-nuts-chains", lambda out: PyroNUTS(num_chains=0), V, r"pyro_nuts: num_chains"),
    ("amortized-draws", lambda out: Amortized(num_draws=0), V, r"amortized: num_draws"),
    # get_engine(...)
    ("get-engine-unknown", lambda out: get_engine("hmc"), V, r"unknown engine 'hmc'"),
    ("get-engine-setting", lambda out: get_engine("svi", num_step=5), V, r"svi: unknown setting\(s\) \['num_step'\]"),
    ("get-engine-object", lambda out: get_engine(object()), V, r"needs a `name` and a `run"),
    ("get-engine-object-config", lambda out: get_engine(SVI(), num_steps=3), V, r"settings \['num_steps'\] apply to engines named"),
    # engine validate / run on a posterior
    ("rws-sleep-needs-observations", lambda out: RWS(insomnia=0.5).validate(
        Posterior(regression_model, sleepless_guide, regression_data())), V,
     r"guide 'sleepless_guide' takes no `observations` keyword"),
    ("svi-no-guide", lambda out: SVI().validate(Posterior(regression_model, None, regression_data())), V,
     r"svi needs a guide"),
    ("nuts-discrete", lambda out: NUTS().validate(Posterior(discrete_model, discrete_guide, {"y": Y})), V,
     r"discrete latent site\(s\) \['k'\]"),
    ("svi-run-seed-float", lambda out: SVI(num_steps=1).run(_good(), seed=1.5), V, r"seed must be an integer >= 0, got 1\.5"),
    ("nuts-run-seed-negative", lambda out: NUTS().run(_good(), seed=-1), V, r"seed must be an integer >= 0, got -1"),
    ("amortized-run-seed-str", lambda out: Amortized().run(_good(), seed="0"), V, r"seed must be an integer"),
    # compare(...)
    ("compare-seed-float", lambda out: compare(_good(), ["svi"], seed=0.5, checkpoint_dir=out), V, r"seed must be an integer.*0\.5"),
    ("compare-seed-str", lambda out: compare(_good(), ["svi"], seed="0", checkpoint_dir=out), V, r"seed must be an integer.*'0'"),
    ("compare-seed-bool", lambda out: compare(_good(), ["svi"], seed=True, checkpoint_dir=out), V, r"seed must be an integer.*True"),
    ("compare-seed-negative", lambda out: compare(_good(), ["svi"], seed=-3, checkpoint_dir=out), V, r"seed must be an integer.*-3"),
    ("compare-engines-str", lambda out: compare(_good(), "svi", checkpoint_dir=out), V, r"not the string 'svi'"),
    ("compare-engines-empty", lambda out: compare(_good(), [], checkpoint_dir=out), V, r"no engines given"),
    ("compare-engine-setting", lambda out: compare(_good(), ["svi"], engine_config={"svi": {"steps": 3}},
                                                    checkpoint_dir=out), V, r"svi: unknown setting\(s\) \['steps'\]"),
    ("compare-engine-lr", lambda out: compare(_good(), ["svi"], engine_config={"svi": {"lr": 0}},
                                               checkpoint_dir=out), V, r"svi: lr must be"),
    ("compare-duplicate", lambda out: compare(_good(), [SVI(), SVI()], checkpoint_dir=out), V, r"two engines are named 'svi'"),
    ("compare-not-posterior", lambda out: compare({"x": 1}, ["svi"], checkpoint_dir=out), V, r"posterior must be a ppl_genmodels\.Posterior"),
    ("compare-support", lambda out: compare(Posterior(scale_model, normal_guide_for("sigma"), {"y": Y}),
                                            ["svi", "nuts"], checkpoint_dir=out), V, r"site 'sigma'.*support"),
    ("compare-sleep-guide", lambda out: compare(Posterior(regression_model, sleepless_guide, regression_data()),
                                                ["nuts", "rws"], engine_config={"rws": {"insomnia": 0.0}},
                                                checkpoint_dir=out), V, r"takes no `observations` keyword"),
    ("compare-user-engine-result", lambda out: compare(_good(), [DictEngine()], checkpoint_dir=out), T,
     r"engine 'dict_engine'.*returned a dict, not an arviz\.InferenceData"),
    # sbc(...)
    ("sbc-seed-negative", _sbc(seed=-1), V, r"seed must be an integer >= 0"),
    ("sbc-seed-float", _sbc(seed=2.0), V, r"seed must be an integer"),
    ("sbc-simulations", _sbc(num_simulations=5), V, r"num_simulations must be an int >= 10"),
    ("sbc-draws-str", _sbc(num_draws="99"), V, r"num_draws must be an int >= 1"),
    ("sbc-alpha", _sbc(alpha=1.5), V, r"alpha must lie in \(0, 1\)"),
    ("sbc-bins", _sbc(bins=1), V, r"bins must be an integer >= 2"),
    ("sbc-unknown-model", _sbc(model_name_or_factory="no_such_model"), V, r"no_such_model"),
    ("sbc-nuts-accept", _sbc(engine_config={"target_accept_prob": 1.2}), V, r"target_accept_prob"),
    # train(...) / data files
    ("train-lr", _train(lr=0.0), V, r"lr must be a finite number > 0"),
    ("train-epochs", _train(epochs=0), V, r"epochs must be an integer >= 1"),
    ("train-seed", _train(seed=-1), V, r"seed must be an integer >= 0"),
    ("train-insomnia", _train(insomnia=2.0), V, r"insomnia must lie in \[0, 1\]"),
    ("train-method", _train(method="vi"), V, r"unknown method 'vi'"),
    ("train-batch-float", _train(batch_size=10.5), V, r"batch_size must be an integer"),
]


@pytest.mark.parametrize("call, error, pattern", [pytest.param(*row[1:], id=row[0]) for row in API])
def test_api_refuses(call, error, pattern, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(error, match=pattern):
        call(out)
    assert not out.exists()


def test_train_refuses_zero_row_npz(tmp_path):
    from ppl_genmodels.learning import train

    data_dir, out = _empty_npz(tmp_path), tmp_path / "out"
    with pytest.raises(ValueError, match=r"binarized_mnist\.npz: x_train has zero rows"):
        train("vae", "binarized_mnist", data_dir=data_dir, out=out, progress=False)
    assert not out.exists()


def test_mnist_npz_with_zero_rows(tmp_path):
    from ppl_genmodels.data import load_mnist_npz

    with pytest.raises(ValueError, match=r"mnist\.npz: x_train has zero rows"):
        load_mnist_npz(_empty_mnist_npz(tmp_path))


# --- the command line ----------------------------------------------------------------------
CLI = [
    ("compare-threads-zero", ["compare", "eight_schools", "--threads", "0"], r"--threads: must be an integer >= 1, got '0'"),
    ("compare-threads-negative", ["compare", "--threads", "-2"], r"--threads: must be an integer >= 1"),
    ("compare-threads-float", ["compare", "--threads", "1.5"], r"--threads: must be an integer >= 1, got '1\.5'"),
    ("compare-engines-empty", ["compare", "eight_schools", "--engines", ""], r"--engines '' names no engine"),
    ("compare-engines-commas", ["compare", "eight_schools", "--engines", " , "], r"--engines ' , ' names no engine"),
    ("compare-engine-unknown", ["compare", "eight_schools", "--engines", "svi,hmc"], r"unknown engine\(s\) \['hmc'\]"),
    ("compare-model-unknown", ["compare", "no_such_model"], r"unknown model\(s\) \['no_such_model'\]"),
    ("compare-seed-negative", ["compare", "--seed", "-1"], r"--seed: must be an integer >= 0 \(a seed\), got '-1'"),
    ("compare-seed-float", ["compare", "--seed", "0.5"], r"--seed: must be an integer >= 0"),
    ("compare-images-zero", ["compare", "vae", "--checkpoint", "run", "--images", "0"], r"--images: must be an integer >= 1"),
    ("compare-num-samples", ["compare", "--num-samples", "0"], r"--num-samples: must be an integer >= 1"),
    ("compare-checkpoint-model", ["compare", "eight_schools", "--checkpoint", "run"], r"--checkpoint compares one image model"),
    ("sbc-simulations", ["sbc", "normal_normal", "--simulations", "5"], r"num_simulations must be an int >= 10"),
    ("sbc-simulations-zero", ["sbc", "normal_normal", "--simulations", "0"], r"--simulations: must be an integer >= 1"),
    ("sbc-draws", ["sbc", "normal_normal", "--draws", "0"], r"--draws: must be an integer >= 1"),
    ("sbc-alpha", ["sbc", "normal_normal", "--alpha", "1.5"], r"--alpha: must be a number in \(0, 1\)"),
    ("sbc-alpha-nan", ["sbc", "normal_normal", "--alpha", "nan"], r"--alpha: must be a number in \(0, 1\)"),
    ("sbc-threads", ["sbc", "normal_normal", "--threads", "0"], r"--threads: must be an integer >= 1"),
    ("sbc-seed", ["sbc", "normal_normal", "--seed", "x"], r"--seed: must be an integer >= 0"),
    ("sbc-model", ["sbc", "no_such_model"], r"unknown model 'no_such_model'"),
    ("sbc-engine", ["sbc", "normal_normal", "--engine", "hmc"], r"unknown engine 'hmc'"),
    ("train-lr", ["train", "vae", "--lr", "0"], r"--lr: must be a number > 0, got '0'"),
    ("train-epochs", ["train", "vae", "--epochs", "0"], r"--epochs: must be an integer >= 1"),
    ("train-batch", ["train", "vae", "--batch-size", "2.5"], r"--batch-size: must be an integer >= 1"),
    ("train-insomnia", ["train", "sbn", "--method", "rws", "--insomnia", "2"], r"--insomnia: must be a number in \[0, 1\]"),
    ("train-max-time", ["train", "vae", "--max-time", "-1"], r"--max-time: must be a number > 0"),
    ("train-threads", ["train", "vae", "--threads", "0"], r"--threads: must be an integer >= 1"),
    ("train-seed", ["train", "vae", "--seed", "-5"], r"--seed: must be an integer >= 0"),
    ("train-data-unknown", ["train", "vae", "--data", "cifar"], r"unknown data set 'cifar'"),
    ("train-rws-one-particle", ["train", "sbn", "--method", "rws", "--num-particles", "1"], r"rws needs num_particles >= 2"),
    ("evaluate-num-samples", ["evaluate", "RUN", "--num-samples", "0"], r"--num-samples: must be an integer >= 1"),
    ("evaluate-num-test", ["evaluate", "RUN", "--num-test", "-1"], r"--num-test: must be an integer >= 0"),
    ("evaluate-threads", ["evaluate", "RUN", "--threads", "0"], r"--threads: must be an integer >= 1"),
    ("evaluate-missing-run", ["evaluate", "RUN"], r"not found"),
]


def _fill(argv, tmp_path):
    out = tmp_path / "out"
    argv = [str(tmp_path / "missing_run") if a in ("RUN", "run") else a for a in argv]
    if argv[0] == "evaluate":
        return argv, out
    return argv + ["--out", str(out), "--no-progress"], out


@pytest.mark.parametrize("argv, pattern", [pytest.param(*row[1:], id=row[0]) for row in CLI])
def test_cli_refuses(argv, pattern, tmp_path, capsys):
    argv, out = _fill(argv, tmp_path)
    listing = sorted(p.name for p in tmp_path.iterdir())
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse: usage and the error on stderr
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    assert __import__("re").search(pattern, err), err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == listing


def test_cli_train_zero_row_npz(tmp_path, capsys):
    data_dir, out = _empty_npz(tmp_path), tmp_path / "out"
    assert main(["train", "vae", "--data", "binarized_mnist", "--data-dir", str(data_dir),
                 "--out", str(out), "--no-progress"]) == 2
    assert "x_train has zero rows" in capsys.readouterr().err
    assert not out.exists()
