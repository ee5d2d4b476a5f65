"""STS metric and the bootstrap statistics against scipy / scikit-learn and by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import f1_score

from evalharness import stats
from evalharness.vectors_math import cosine_rows
from evalharness.tasks.sts import sts_scores


def test_cosine_rows_by_hand():
    a = np.array([[1, 0], [1, 1], [0, 0]], dtype=np.float32)
    b = np.array([[0, 1], [2, 2], [1, 0]], dtype=np.float32)
    np.testing.assert_allclose(cosine_rows(a, b), [0.0, 1.0, 0.0])  # zero vector -> 0


def test_sts_scores_hand_computed():
    gold = np.array([1.0, 2.0, 3.0, 4.0])
    cos = np.array([0.1, 0.3, 0.2, 0.9])
    out = sts_scores(gold, cos)
    # ranks of cos: 1, 3, 2, 4 -> d^2 = 0 + 1 + 1 + 0 -> rho = 1 - 6*2/(4*15) = 0.8
    assert out["cosine_spearman"] == pytest.approx(0.8)
    assert out["cosine_pearson"] == pytest.approx(pearsonr(gold, cos).statistic)


def test_vectorised_statistics_match_scipy_and_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 40))
    y = x + rng.normal(size=(5, 40))
    y[0, :10] = y[0, 0]  # ties
    np.testing.assert_allclose(stats.STATISTICS["spearman"](x, y),
                               [spearmanr(a, b).statistic for a, b in zip(x, y)])
    np.testing.assert_allclose(stats.STATISTICS["pearson"](x, y),
                               [pearsonr(a, b).statistic for a, b in zip(x, y)])
    t = rng.integers(0, 4, size=(6, 50))
    p = rng.integers(0, 5, size=(6, 50))
    np.testing.assert_allclose(stats.STATISTICS["macro_f1"](t, p),
                               [f1_score(a, b, average="macro") for a, b in zip(t, p)])


def test_bootstrap_ci_is_seeded_and_covers_the_estimate():
    rng = np.random.default_rng(1)
    gold = rng.normal(size=300)
    pred = gold + rng.normal(size=300)
    ci1 = stats.bootstrap_ci("spearman", [gold, pred], n_boot=500, seed=7)
    ci2 = stats.bootstrap_ci("spearman", [gold, pred], n_boot=500, seed=7)
    assert ci1 == ci2
    assert ci1[0] < spearmanr(gold, pred).statistic < ci1[1]
    assert stats.bootstrap_ci("spearman", [gold, pred], n_boot=0, seed=7) is None
    # the mean's percentile CI is close to the normal approximation
    lo, hi = stats.mean_ci(gold, n_boot=2000, seed=3)
    se = gold.std(ddof=1) / np.sqrt(len(gold))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_resampled_spearman_equals_scipy_on_each_resample_with_ties():
    """The count-weighted ranks of the bootstrap equal scipy's spearmanr on every resampled
    array, with heavy ties on both sides (gold in 0.2 steps, predictions rounded), and
    across chunk boundaries."""
    rng = np.random.default_rng(3)
    n = 257
    gold = np.round(rng.uniform(0, 5, n) * 5) / 5
    pred = np.round(gold / 5 + rng.normal(0, 0.3, n), 1)
    idx = stats.resample_indices(n, 40, seed=11)
    got = stats._spearman_resampled(gold, pred, idx)
    want = [spearmanr(gold[i], pred[i]).statistic for i in idx]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    dist = stats.bootstrap_distribution("spearman", [gold, pred], n_boot=40, seed=11)
    np.testing.assert_allclose(dist, want, rtol=0, atol=1e-12)
    # a resample of one repeated item has no spread: NaN, as Pearson of constant ranks
    assert np.isnan(stats._spearman_resampled(gold, pred, np.zeros((1, n), np.int64)))[0]
