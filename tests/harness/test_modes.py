"""Mode-coverage statistics against hand-built histograms, the classifier cache's honesty,
spherical interpolation, and bad input refused before work."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from ppl_genmodels.harness.latent import slerp
from ppl_genmodels.harness.modes import digit_classifier, mode_statistics


def _one_hot(classes, k=10, p=1.0):
    probs = np.full((len(classes), k), (1 - p) / (k - 1))
    probs[np.arange(len(classes)), classes] = p
    return probs


UNIFORM = np.full(10, 1000)


@pytest.mark.parametrize("classes,kl,covered,max_share", [
    (np.repeat(np.arange(10), 7), 0.0, 10, 0.1),          # every class equally often
    (np.zeros(50, dtype=int), math.log(10), 1, 1.0),        # one class: log K nats
    (np.repeat([0, 1], 25), math.log(5), 2, 0.5),           # two classes: log(K / 2)
])
def test_mode_statistics_on_hand_built_histograms(classes, kl, covered, max_share):
    stats = mode_statistics(_one_hot(classes), UNIFORM)
    assert stats["kl"] == pytest.approx(kl, abs=1e-12)
    assert stats["classes_covered"] == covered
    assert stats["max_share"] == pytest.approx(max_share)
    assert stats["counts"].sum() == len(classes)


def test_kl_matches_scipy_for_a_skewed_histogram_and_reference():
    rng = np.random.default_rng(0)
    classes = rng.choice(10, size=500, p=np.linspace(1, 3, 10) / 20)
    reference = rng.integers(50, 150, size=10)
    stats = mode_statistics(_one_hot(classes), reference)
    p = np.bincount(classes, minlength=10) / 500
    assert stats["kl"] == pytest.approx(entropy(p, reference / reference.sum()), rel=1e-12)
    assert stats["kl"] > 0


def test_confident_fraction_counts_rows_above_the_threshold():
    probs = np.concatenate([_one_hot([3] * 6, p=0.95), _one_hot([4] * 4, p=0.5)])
    assert mode_statistics(probs, UNIFORM)["confident_fraction"] == pytest.approx(0.6)
    assert mode_statistics(probs, UNIFORM, confident=0.4)["confident_fraction"] == 1.0


@pytest.mark.parametrize("probs,reference,match", [
    (np.ones((5, 10)) / 10, np.ones(9), "reference"),
    (np.ones((0, 10)), np.ones(10), "N >= 1"),
    (np.ones((5, 10)) / 10, -np.ones(10), "must be >= 0"),
])
def test_mode_statistics_refuses_bad_input(probs, reference, match):
    with pytest.raises(ValueError, match=match):
        mode_statistics(probs, reference)


def _fake_mnist(path, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(10), 20).astype(np.uint8)
    x = np.zeros((200, 28, 28), dtype=np.uint8)
    for i, c in enumerate(y):  # class c: a bright column at 2c + 5, plus noise
        x[i, :, 2 * c + 5] = 255
        x[i] = np.maximum(x[i], rng.integers(0, 40, size=(28, 28)).astype(np.uint8))
    np.savez(path / "mnist.npz", x_train=x, y_train=y, x_test=x[::2], y_test=y[::2])


def test_classifier_cache_is_reused_only_while_its_key_matches(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    _fake_mnist(data, 0)
    first = digit_classifier(data, cache, progress=False)
    assert not first.cached and first.accuracy > 0.9
    again = digit_classifier(data, cache, progress=False)
    x = np.load(data / "mnist.npz")["x_test"].reshape(-1, 784) / 255.0
    assert again.cached and np.array_equal(again.predict_proba(x), first.predict_proba(x))
    assert not digit_classifier(data, cache, progress=False, train_size=100).cached  # other key
    _fake_mnist(data, 1)  # other bytes, same shapes: the cache is stale
    assert not digit_classifier(data, cache, progress=False).cached
    (cache / "classifier.json").write_text("{not json")  # damaged metadata: retrain, no crash
    assert not digit_classifier(data, cache, progress=False).cached
    with pytest.raises(FileNotFoundError, match="mnist.npz"):
        digit_classifier(tmp_path / "nowhere", cache, progress=False)


def test_slerp_endpoints_norms_and_midpoint():
    gen = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=gen, dtype=torch.float64), torch.randn(16, generator=gen, dtype=torch.float64)
    z1 = z1 * z0.norm() / z1.norm()  # equal norms: the arc keeps them
    t = torch.linspace(0, 1, 11)
    path = slerp(z0, z1, t)
    assert torch.allclose(path[0], z0, atol=1e-12) and torch.allclose(path[-1], z1, atol=1e-12)
    assert torch.allclose(path.norm(dim=1), z0.norm().expand(11), rtol=1e-10)
    # negative control: the straight line dips inside the sphere
    line = (1 - t[:, None].double()) * z0 + t[:, None].double() * z1
    assert line.norm(dim=1)[5] < 0.99 * z0.norm()
    e1, e2 = torch.eye(2, dtype=torch.float64)
    assert torch.allclose(slerp(e1, e2, [0.5])[0], (e1 + e2) / math.sqrt(2))
    assert torch.allclose(slerp(e1, 2 * e1, [0.5])[0], 1.5 * e1)  # parallel: linear


@pytest.mark.parametrize("z0,z1,t,match", [
    (torch.ones(3), torch.ones(4), [0.5], "one shape"),
    (torch.zeros(3), torch.ones(3), [0.5], "non-zero"),
    (torch.ones(3), -torch.ones(3), [1.5], r"\[0, 1\]"),
])
def test_slerp_refuses_bad_input(z0, z1, t, match):
    with pytest.raises(ValueError, match=match):
        slerp(z0, z1, t)


class _StubRun:
    """An encoder whose mean latent is (ink, class): the attribute vector is known."""

    class guide:
        @staticmethod
        def params(x):
            return torch.stack([x.sum(1), x[:, 0]], 1), None


def test_ink_vector_within_classes_drops_the_class_direction():
    from ppl_genmodels.harness.latent import attribute_vector

    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat_interleave(40)
    ink = torch.randint(1, 10, (80,), generator=gen) + 20 * labels  # class 1 has more ink
    x = torch.zeros(80, 50)
    x[:, 0] = labels.float()
    for i, k in enumerate(ink):
        x[i, 1:1 + int(k)] = 1.0
    pooled = attribute_vector(_StubRun, x)
    within = attribute_vector(_StubRun, x, labels)
    assert pooled[1] > 0.9  # negative control: the pooled vector also says "class 1"
    assert within[1] == 0 and within[0] > 0
    with pytest.raises(ValueError, match="at least 8"):
        attribute_vector(_StubRun, x[:5])
