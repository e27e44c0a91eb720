"""Rank statistics and uniformity tests of ppl_genmodels.sbc.stats (pure NumPy, fast)."""

import numpy as np
import pytest
from arviz.stats.ecdf_utils import ecdf_confidence_band

from ppl_genmodels.sbc import stats as S


def test_rank_of_counts_draws_below_and_breaks_ties_at_random():
    draws = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0]])
    rng = np.random.default_rng(0)
    ranks = np.array([S.rank_of(np.array([1.5, 1.0]), draws, rng) for _ in range(400)])
    assert (ranks[:, 0] == 2).all()
    # All four draws tie with 1.0: the rank is uniform on {0..4}.
    counts = np.bincount(ranks[:, 1], minlength=5)
    assert counts.min() > 50 and counts.sum() == 400
    with pytest.raises(ValueError, match="draws must be"):
        S.rank_of(np.zeros(3), draws, rng)
    with pytest.raises(ValueError, match="finite"):
        S.rank_of(np.array([np.nan, 0.0]), draws, rng)


def test_ecdf_test_is_calibrated_under_uniform_ranks():
    # 400 null replicates: the false-rejection rate at 0.05 must be near 0.05 (binomial sd
    # 0.011), and at 0.2 near 0.2; discreteness can only make it conservative.
    rng = np.random.default_rng(1)
    p = np.array([S.ecdf_test(rng.integers(0, 20, 60), 19)[1] for _ in range(400)])
    assert 0.015 <= (p < 0.05).mean() <= 0.08
    assert 0.12 <= (p < 0.2).mean() <= 0.26


def test_ecdf_test_agrees_with_arviz_simultaneous_band():
    # Rejecting at alpha = leaving ArviZ's optimized 1 - alpha band (Säilynoja et al. 2022).
    rng = np.random.default_rng(2)
    num_draws, n = 49, 80
    cuts = S.ecdf_eval_ranks(num_draws)
    lo, hi = ecdf_confidence_band(n, cuts, (cuts + 1) / (num_draws + 1), prob=0.9,
                                  method="optimized")
    agree, rejected = 0, 0
    for _ in range(60):
        ranks = rng.integers(0, num_draws + 1, n)
        if rng.random() < 0.5:  # half of them tilted towards small ranks
            ranks = (ranks * rng.uniform(0.7, 1.0)).astype(int)
        ecdf = (ranks[:, None] <= cuts).mean(0)
        outside = bool(((ecdf < lo - 1e-12) | (ecdf > hi + 1e-12)).any())
        p = S.ecdf_test(ranks, num_draws)[1]
        agree += outside == (p < 0.1)
        rejected += p < 0.1
    assert agree >= 58 and 10 <= rejected <= 50


def test_tests_detect_overconfidence_and_vsbc_detects_only_bias():
    rng = np.random.default_rng(3)
    n, num_draws = 100, 99
    truth = rng.standard_normal(n)
    noise = rng.standard_normal((n, num_draws))
    narrow = (0.5 * noise < truth[:, None]).sum(1)  # q with half the sd, unbiased
    biased = (0.5 * noise + 0.5 < truth[:, None]).sum(1)
    exact = (noise < truth[:, None]).sum(1)
    assert S.ecdf_test(narrow, num_draws)[1] < 1e-4
    assert S.chi_square_test(narrow, num_draws, 20)[1] < 1e-4
    assert S.ecdf_test(exact, num_draws)[1] > 0.05
    assert S.vsbc_test(narrow, num_draws)[1] > 0.05  # symmetric U: not a VSBC failure
    ks, p, mean_p = S.vsbc_test(biased, num_draws)
    assert p < 1e-3 and mean_p < 0.45


def test_chi_square_handles_uneven_bins_and_rejects_bad_input():
    # L + 1 = 10 rank values in 3 bins (widths 4, 3, 3): exactly proportional counts give 0.
    ranks = np.repeat(np.arange(10), 6)
    stat, p = S.chi_square_test(ranks, 9, 3)
    assert stat == pytest.approx(0.0) and p == pytest.approx(1.0)
    assert S.rank_bins(99, 200) == 20 and S.rank_bins(99, 40) == 5 and S.rank_bins(3, 200) == 4
    assert S.rank_bins(9, 30) == 5 and S.rank_bins(96, 200) == 20  # 97 is prime: uneven bins
    with pytest.raises(ValueError, match=r"ranks must lie in \[0, 9\]"):
        S.chi_square_test(np.array([0, 10]), 9, 3)
    with pytest.raises(ValueError, match="bins"):
        S.chi_square_test(ranks, 9, 11)
    with pytest.raises(ValueError, match="1-D"):
        S.ecdf_test(np.zeros((3, 2), dtype=int), 9)
