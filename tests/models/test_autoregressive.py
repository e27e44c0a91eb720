"""Autoregressive image models (fvbn, made, pixelcnn): masking checked by gradients, exact
log-likelihood = sum of per-pixel Bernoulli terms, normalisation over all 2^D images,
ancestral sampling, training by mle with bit-identical resume, and refusals of the commands
that need latent variables. Negative controls: a deliberately broken mask fails the gradient
check and does not normalise."""

import itertools
import json

import numpy as np
import pyro
import pytest
import torch

from ppl_genmodels.models import autoregressive as ar

KINDS = ["fvbn", "made", "pixelcnn"]
SMALL = {"fvbn": {}, "made": {"hidden": (32,)}, "pixelcnn": {"channels": 4, "layers": 2}}


def _model(kind: str, pixels: int, seed: int = 0, scale: float = 1.0):
    """A model with random (non-zero) weights, in float64."""
    torch.manual_seed(seed)
    model, guide = ar.build(pixels, kind, **SMALL[kind])
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, scale / max(1, p.shape[-1]) ** 0.5 if p.dim() > 1 else 0.1)
    return model.double(), guide


def _break_mask(kind: str, model) -> None:
    """Negative control: let output i see input i (or later ones)."""
    with torch.no_grad():
        if kind == "fvbn":
            model.mask.copy_(torch.ones_like(model.mask).tril(0))
        elif kind == "made":
            model.layers[-1].mask.fill_(1.0)
        else:  # type-B instead of type-A vertical mask in the first layer: sees its own row
            model.v_in.mask.copy_(ar.vertical_mask(model.v_in.mask.shape[-1], "B")[None, None])


def _jacobian(model, x):
    """``(D, D)`` d logits_i / d x_j at one image ``x`` ``(D,)``."""
    return torch.autograd.functional.jacobian(lambda v: model.logits(v[None])[0], x)


def _violations(model, pixels: int, seed: int = 1):
    """Number of (i, j >= i) with a non-zero gradient, and the summed |jacobian| over twenty
    random inputs (a ReLU may be off at some of them)."""
    gen = torch.Generator().manual_seed(seed)
    jac = sum(_jacobian(model, torch.randn(pixels, generator=gen, dtype=torch.float64)).abs()
              for _ in range(20))
    forbidden = torch.ones(pixels, pixels, dtype=torch.bool).triu(0)  # j >= i
    return int((jac[forbidden].abs() > 0).sum()), jac


@pytest.mark.parametrize("kind", KINDS)
def test_output_i_does_not_depend_on_inputs_from_i_on(kind):
    pixels = 16  # a 4 x 4 image
    model, _ = _model(kind, pixels)
    bad, jac = _violations(model, pixels)
    assert bad == 0
    # positive control: every output after the first sees every earlier pixel
    allowed = torch.ones(pixels, pixels, dtype=torch.bool).tril(-1)
    assert (jac[allowed] > 0).all(), kind


@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_mask_fails_the_gradient_check(kind):
    model, _ = _model(kind, 16)
    _break_mask(kind, model)
    assert _violations(model, 16)[0] > 0


@pytest.mark.parametrize("kind", KINDS)
def test_exact_log_likelihood_is_the_sum_of_per_pixel_terms(kind):
    pixels = 16
    model, guide = _model(kind, pixels, seed=2)
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(5, pixels, generator=gen) < 0.4).double()
    # pixel i's logit recomputed from x_<i alone: later pixels replaced by noise
    terms = torch.zeros(5, pixels, dtype=torch.float64)
    for i in range(pixels):
        noisy = x.clone()
        noisy[:, i:] = torch.rand(5, pixels - i, generator=gen, dtype=torch.float64)
        p = torch.sigmoid(model.logits(noisy)[:, i])
        terms[:, i] = x[:, i] * p.log() + (1 - x[:, i]) * (1 - p).log()
    torch.testing.assert_close(model.log_prob(x), terms.sum(1))
    # the Pyro model's only site, and Trace_ELBO with the empty guide, give the same value
    trace = pyro.poutine.trace(model.model).get_trace(x)
    assert [n for n, s in trace.nodes.items() if s["type"] == "sample" and not n == "images"] == ["x"]
    assert trace.nodes["x"]["is_observed"]
    torch.testing.assert_close(trace.log_prob_sum(), model.log_prob(x).sum())
    loss = pyro.infer.Trace_ELBO().loss(model.model, guide, x)
    assert loss == pytest.approx(-float(model.log_prob(x).sum().detach()), rel=1e-9)
    # ... and the same gradient as the direct loss that method mle uses
    pyro.infer.Trace_ELBO().loss_and_grads(model.model, guide, x)
    via_pyro = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    (-model.log_prob(x).sum()).backward()
    for a, b in zip(via_pyro, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b)


def _all_images(pixels):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=pixels)), dtype=torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_a_tiny_model_normalises_over_all_images(kind):
    pixels = 9  # 3 x 3: 512 images
    model, _ = _model(kind, pixels, seed=4, scale=2.0)
    images = _all_images(pixels)
    with torch.no_grad():
        log_p = model.log_prob(images)
        assert abs(float(torch.logsumexp(log_p, 0))) < 1e-9
        assert float(log_p.max() - log_p.min()) > 1.0  # not the uniform distribution
        _break_mask(kind, model)  # negative control
        assert abs(float(torch.logsumexp(model.log_prob(images), 0))) > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_ancestral_samples_follow_the_model(kind):
    """The sampler's per-pixel probabilities are the model's conditionals at the sampled
    image, and the mean log p of 2000 samples matches -entropy (enumerated) within 4 SE."""
    pixels = 9
    model, _ = _model(kind, pixels, seed=5, scale=2.0)
    gen = torch.Generator().manual_seed(6)
    x, probs = model.complete(torch.zeros(2000, pixels, dtype=torch.float64), 0, gen,
                              return_probs=True)
    with torch.no_grad():
        torch.testing.assert_close(probs, torch.sigmoid(model.logits(x)))
        log_p = model.log_prob(x)
        all_log_p = model.log_prob(_all_images(pixels))
    neg_entropy = float((all_log_p.exp() * all_log_p).sum())
    se = float(log_p.std()) / len(log_p) ** 0.5
    assert abs(float(log_p.mean()) - neg_entropy) < 4 * se
    # completion keeps the given pixels
    given = x[:3].clone()
    done = model.complete(given, 5, gen)
    assert torch.equal(done[:, :5], given[:, :5])


def _train(kind, tmp_path, name, epochs, resume=False):
    from ppl_genmodels.learning import train

    return train(kind, "digits", method="mle", epochs=epochs, batch_size=50, lr=3e-3,
                 num_train=300, seed=7, model_kwargs=SMALL[kind], out=tmp_path / name,
                 resume=resume, progress=False)


@pytest.mark.parametrize("kind", ["made", "pixelcnn"])
def test_resume_reproduces_an_uninterrupted_mle_run(tmp_path, kind):
    straight = _train(kind, tmp_path, "a", 3)
    _train(kind, tmp_path, "b", 1)
    resumed = _train(kind, tmp_path, "b", 3, resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in resumed.history]
    losses = [h["loss"] for h in straight.history]
    assert losses[-1] < losses[0] - 1.0  # nats per image: it learns


def test_mle_fvbn_beats_independent_pixels_and_evaluate_is_exact(tmp_path):
    """Threshold: independent Bernoulli pixels are the FVBN without its weights; a trained
    FVBN must beat them on held-out images by 3 SEs of the paired difference. ``evaluate``
    reports the exact log-likelihood and draws samples and completions."""
    from ppl_genmodels.data import load_image_dataset
    from ppl_genmodels.learning.evaluate import evaluate_run, exact_log_likelihood

    from ppl_genmodels.learning import train

    run = train("fvbn", "digits", method="mle", epochs=4, batch_size=50, lr=1e-2, num_train=1000,
                seed=0, out=tmp_path, progress=False)
    out = evaluate_run(tmp_path, num_test=200, seed=1)
    dataset = load_image_dataset("digits")
    x_test, _ = dataset.test_subset(200, seed=1)
    exact = exact_log_likelihood(run.model, x_test)
    assert out["log_likelihood"] == pytest.approx(exact.mean, rel=1e-6)
    assert out["elbo"] == pytest.approx(exact.mean, rel=1e-6)
    x_train = dataset.x_train[:1000].astype(float)
    p = (x_train.sum(0) + 1) / (len(x_train) + 2)
    baseline = (x_test * np.log(p) + (1 - x_test) * np.log1p(-p)).sum(1)
    diff = exact.per_image - baseline
    assert diff.mean() > 3 * diff.std(ddof=1) / np.sqrt(len(diff)), (exact.mean, baseline.mean())
    assert {"samples.png", "completions.png", "training.png"} <= {f.name for f in tmp_path.iterdir()}
    assert json.loads((tmp_path / "evaluation.json").read_text())["num_samples"] == 0


@pytest.mark.parametrize("kwargs,match", [
    ({"model": "vae", "method": "mle"}, "latent sites"),
    ({"model": "made", "method": "svi"}, "train it by mle"),
    ({"model": "pixelcnn", "method": "mle", "model_kwargs": {"kernel": 4}}, "odd kernel"),
    ({"model": "made", "method": "mle", "model_kwargs": {"layers": 3}}, "unknown option"),
])
def test_bad_mle_options_fail_before_training(kwargs, match, tmp_path):
    from ppl_genmodels.learning import train

    with pytest.raises(ValueError, match=match):
        train(data="digits", epochs=1, progress=False, out=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_commands_that_need_latents_refuse_autoregressive_models(tmp_path, capsys):
    from ppl_genmodels.cli import main

    run = tmp_path / "made_run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "made", "method": "mle"}))
    cases = [["compare", "made", "--out", str(tmp_path / "c1")],
             ["compare", "made", "--checkpoint", str(run), "--out", str(tmp_path / "c2")],
             ["compare", "vae", "--checkpoint", str(run), "--out", str(tmp_path / "c3")],
             ["gaps", str(run)],
             ["train", "vae", "--method", "mle", "--out", str(tmp_path / "t")],
             ["sbc", "fvbn", "--engine", "nuts", "--simulations", "10", "--out", str(tmp_path / "s")]]
    for argv in cases:
        assert main(argv) == 2, argv
        assert "latent" in capsys.readouterr().err, argv
    assert not any((tmp_path / d).exists() for d in ("c1", "c2", "c3", "t", "s"))
    if not torch.cuda.is_available():  # a device that is not there: refused before any work
        assert main(["train", "made", "--method", "mle", "--device", "cuda",
                     "--out", str(tmp_path / "t2")]) == 2
        assert "CUDA" in capsys.readouterr().err
        assert not (tmp_path / "t2").exists()


def test_train_and_evaluate_commands(tmp_path, capsys):
    """``train fvbn --method mle`` then ``evaluate``: exact log-likelihood printed, grids written;
    ``--resume`` continues the run."""
    from ppl_genmodels.cli import main

    run = str(tmp_path / "fvbn")
    common = ["--method", "mle", "--data", "digits", "--num-train", "200", "--batch-size", "50",
              "--out", run, "--no-progress"]
    assert main(["train", "fvbn", "--epochs", "1", *common]) == 0
    assert main(["train", "fvbn", "--epochs", "2", "--resume", *common]) == 0
    assert "2 epoch(s)" in capsys.readouterr().out
    assert main(["evaluate", run, "--num-test", "50", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(exact, 50 images)" in out, out
    assert (tmp_path / "fvbn" / "samples.png").exists()
