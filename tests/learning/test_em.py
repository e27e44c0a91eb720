"""EM for a Gaussian mixture's theta and its k-means limit (ppl_genmodels.learning.em).

References: Pyro's own TraceEnum_ELBO (E-step), scikit-learn's GaussianMixture (EM's fixed
point) and KMeans (the sigma -> 0 limit), with negative controls.
"""

import numpy as np
import pytest
import torch

from ppl_genmodels.learning.em import (e_step, e_step_elbo, em, kmeans_agreement,
                                       load_iris_petals)
from ppl_genmodels.models.gauss_mix import load_data

IRIS = load_iris_petals()
GAUSS_MIX = load_data()["y"].double().numpy()[:300]


def test_e_step_equals_pyros_trace_enum_elbo():
    x = torch.as_tensor(IRIS)
    weights = torch.tensor([0.2, 0.3, 0.5], dtype=torch.float64)
    covariances = torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[1.0, 0.0], [0.0, 0.5]],
                                [[0.4, -0.1], [-0.1, 0.3]]], dtype=torch.float64)
    r, ll = e_step(x, weights, x[[0, 60, 120]], covariances)
    r_ref, ll_ref = e_step_elbo(x, weights, x[[0, 60, 120]], covariances)
    assert r.shape == (150, 3)
    torch.testing.assert_close(r, r_ref, atol=1e-12, rtol=0)
    assert ll == pytest.approx(ll_ref, rel=1e-12)
    # negative control: other weights give another log-likelihood
    assert abs(e_step(x, weights.flip(0), x[[0, 60, 120]], covariances)[1] - ll) > 0.1


@pytest.mark.parametrize("data,k,seed", [(IRIS, 3, 0), (IRIS, 3, 1), (IRIS, 2, 2),
                                         (GAUSS_MIX, 2, 0), (GAUSS_MIX, 3, 1)])
def test_em_log_likelihood_never_decreases(data, k, seed):
    result = em(data, k, seed=seed, max_iter=40)
    steps = np.diff(result.log_likelihood)
    assert len(steps) >= 3
    assert steps.min() >= -1e-9 * abs(result.log_likelihood[-1]), steps.min()
    assert result.log_likelihood[-1] > result.log_likelihood[0] + 1.0  # it did learn


def test_em_reaches_sklearn_gaussian_mixtures_fixed_point():
    from sklearn.mixture import GaussianMixture

    init = IRIS[[0, 60, 120]]
    ours = em(IRIS, init_locs=init, max_iter=500, tol=1e-13)
    ref = GaussianMixture(3, means_init=ours.locs, weights_init=ours.weights,
                          precisions_init=np.linalg.inv(ours.covariances), reg_covar=0.0,
                          tol=1e-12, max_iter=5).fit(IRIS)
    assert ours.converged
    np.testing.assert_allclose(ref.means_, ours.locs, atol=1e-5)
    np.testing.assert_allclose(ref.weights_, ours.weights, atol=1e-5)
    assert ref.score(IRIS) * len(IRIS) == pytest.approx(ours.log_likelihood[-1], abs=1e-4)


@pytest.mark.parametrize("data,rows", [(IRIS, [0, 60, 120]), (IRIS, [10, 20, 140]),
                                       (GAUSS_MIX[:, None], [0, 1])])
def test_em_equals_kmeans_as_sigma_goes_to_zero(data, rows):
    """sigma -> 0: EM's hard assignments and means equal sklearn KMeans's (Lloyd, same init);
    negative control: at sigma = 3 (data units) they differ."""
    small, large = kmeans_agreement(data, data[rows], scales=[0.02, 3.0])
    assert small["agreement"] == 1.0
    assert small["max_centre_distance"] < 1e-8
    assert large["agreement"] < 0.99
    assert large["max_centre_distance"] > 0.1


@pytest.mark.parametrize("kwargs,match", [
    ({"x": np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), "num_components": 2}, r"NaN or inf \(rows \[1\]\)"),
    ({"x": np.zeros((0, 2)), "num_components": 2}, r"shape \(N,\) or \(N, D\)"),
    ({"x": np.zeros((3, 2, 2)), "num_components": 2}, r"shape \(N,\) or \(N, D\)"),
    ({"x": IRIS, "num_components": 200}, "exceeds the N=150"),
    ({"x": IRIS, "num_components": 0}, "num_components"),
    ({"x": IRIS}, "give num_components or init_locs"),
    ({"x": IRIS, "num_components": 2, "covariance": "diag"}, "covariance must be one of"),
    ({"x": IRIS, "num_components": 2, "covariance": "fixed"}, "needs scale"),
    ({"x": IRIS, "num_components": 2, "covariance": "fixed", "scale": -1.0}, "scale"),
    ({"x": IRIS, "num_components": 2, "scale": 1.0}, "applies to covariance='fixed' only"),
    ({"x": IRIS, "init_locs": np.zeros((2, 3))}, r"init_locs must have shape \(K, 2\)"),
    ({"x": IRIS, "num_components": 3, "init_locs": IRIS[:2]}, "init_locs has 2 rows"),
    ({"x": IRIS, "num_components": 2, "max_iter": 0}, "max_iter"),
])
def test_em_refuses_bad_input_before_work(kwargs, match):
    with pytest.raises((ValueError, RuntimeError), match=match):
        em(**kwargs)
