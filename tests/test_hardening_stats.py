"""The faster Spearman/Pearson bootstrap (issue 20) changes no number.

Spearman: the resampled ranks, centred, are multiples of 1/2, so every sum is exact and
the value is the exact correlation rounded once; it equals scipy on each resample and the
CI of an STS-B-sized case equals, bit for bit, the one the previous implementation gave.
Pearson: the same arithmetic in the same order as ``_pearson`` on the gathered arrays.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from evalharness import stats


def sts_like(n=1379, seed=20):
    rng = np.random.default_rng(seed)
    gold = np.round(rng.uniform(0, 5, n) * 5) / 5  # 26 distinct grades: many ties
    pred = (gold / 5 + 0.35 * rng.standard_normal(n)).astype(np.float32).astype(np.float64)
    return gold, pred


def test_stsb_sized_cis_equal_the_previous_implementation_bit_for_bit():
    gold, pred = sts_like()
    # recorded from the implementation before this change (same seed, 1000 resamples)
    assert stats.bootstrap_ci("spearman", [gold, pred], n_boot=1000, seed=42) == \
        [0.618891632829582, 0.6811083448464109]
    ci = stats.bootstrap_ci("pearson", [gold, pred], n_boot=1000, seed=42)
    assert ci == pytest.approx([0.6146297450067865, 0.6712580178739918], abs=1e-15)


@pytest.mark.parametrize("case", ["ties_in_gold", "ties_in_both", "ties_in_pred", "no_ties",
                                  "constant"])
def test_spearman_per_resample_equals_scipy(case):
    rng = np.random.default_rng(5)
    n = 300
    gold = rng.integers(0, 6, n).astype(float) if case in ("ties_in_gold", "ties_in_both") \
        else rng.standard_normal(n)
    pred = np.round(rng.standard_normal(n), 1) if case in ("ties_in_both", "ties_in_pred") \
        else rng.standard_normal(n)
    if case == "constant":
        gold = np.full(n, 2.0)
    idx = stats.resample_indices(n, 60, seed=9)
    got = stats.bootstrap_distribution("spearman", [gold, pred], n_boot=60, seed=9)
    for b in range(60):
        ref = spearmanr(gold[idx[b]], pred[idx[b]]).statistic if case != "constant" \
            else np.nan
        np.testing.assert_allclose(got[b], ref, rtol=0, atol=1e-12)


def test_spearman_large_n_path_agrees_with_the_exact_path(monkeypatch):
    gold, pred = sts_like(800, seed=3)
    idx = stats.resample_indices(800, 40, seed=1)
    exact = stats._spearman_resampled(gold, pred, idx)
    monkeypatch.setattr(stats, "EXACT_SPEARMAN_MAX_N", 10)  # force the item-wise sums
    items = stats._spearman_resampled(gold, pred, idx)
    np.testing.assert_allclose(items, exact, rtol=0, atol=1e-14)


def test_pearson_fast_path_is_the_same_arithmetic():
    gold, pred = sts_like(1000, seed=8)
    idx = stats.resample_indices(1000, 200, seed=4)
    fast = stats.bootstrap_distribution("pearson", [gold, pred], n_boot=200, seed=4, idx=idx)
    plain = stats.STATISTICS["pearson"](gold[idx], pred[idx])
    assert np.array_equal(fast, plain)


@pytest.mark.parametrize("name", ["spearman", "pearson"])
def test_blocking_never_changes_a_number(monkeypatch, name):
    gold, pred = sts_like(500, seed=11)
    ref = stats.bootstrap_distribution(name, [gold, pred], n_boot=300, seed=2)
    for cells in (1, 777, 10**7):
        monkeypatch.setattr(stats, "FAST_CHUNK_CELLS", cells)
        assert np.array_equal(stats.bootstrap_distribution(name, [gold, pred], n_boot=300,
                                                           seed=2), ref)
