"""Bootstrap confidence intervals and paired comparisons over the same items.

Statistics are vectorised over resamples: each takes arrays of shape (B, n) (one row per
bootstrap resample of the items) and returns B values. A metric that is a statistic of
per-item arrays names the statistic (``stat``) and its inputs, so CIs and paired tests
can be recomputed from results.json alone.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    num = (x * y).sum(axis=-1)
    den = np.sqrt((x * x).sum(axis=-1) * (y * y).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _pearson(gold, pred):
    return _rowwise_pearson(np.asarray(gold, float), np.asarray(pred, float))


def _spearman(gold, pred):
    from scipy.stats import rankdata  # lazy: keeps CLI start-up fast

    return _rowwise_pearson(rankdata(gold, axis=-1), rankdata(pred, axis=-1))


def _mean(x):
    return np.asarray(x, float).mean(axis=-1)


def _macro_f1(y_true, y_pred):
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    squeeze = y_true.ndim == 1
    if squeeze:
        y_true, y_pred = y_true[None], y_pred[None]
    k = int(max(y_true.max(), y_pred.max())) + 1
    b = y_true.shape[0]
    off = (np.arange(b) * k)[:, None]
    tp = np.bincount((off + y_true)[y_true == y_pred], minlength=b * k).reshape(b, k)
    t = np.bincount((off + y_true).ravel(), minlength=b * k).reshape(b, k)
    p = np.bincount((off + y_pred).ravel(), minlength=b * k).reshape(b, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(t + p > 0, 2 * tp / (t + p), 0.0)
    present = (t + p) > 0  # sklearn: labels present in y_true or y_pred
    out = (f1 * present).sum(axis=1) / present.sum(axis=1)
    return out[0] if squeeze else out


STATISTICS: dict[str, Callable] = {
    "spearman": _spearman,
    "pearson": _pearson,
    "mean": _mean,
    "macro_f1": _macro_f1,
}


def statistic(name: str, *arrays) -> float:
    return float(STATISTICS[name](*[np.asarray(a) for a in arrays]))


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


# resamples x items per block of the Spearman/Pearson bootstrap: ~1 MiB per float64
# temporary stays in the CPU caches (measured 1.5-2x faster than 1M-cell blocks; every
# statistic is per resample, so the blocking never changes a number)
FAST_CHUNK_CELLS = 1 << 17


def _chunks(idx: np.ndarray, max_cells: int = 4_000_000):
    step = max(1, max_cells // max(1, idx.shape[1]))
    for s in range(0, idx.shape[0], step):
        yield idx[s:s + step]


def resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) how often each item occurs in each resample."""
    return _rows_bincount(idx, n)


def _rows_bincount(keys: np.ndarray, m: int) -> np.ndarray:
    """(B, m) int64: how often each value 0..m-1 occurs in each row of ``keys``."""
    b = keys.shape[0]
    flat = keys + (np.arange(b, dtype=np.int64) * m)[:, None]
    return np.bincount(flat.ravel(), minlength=b * m).reshape(b, m)


class _TieGroups:
    """One array's groups of equal values, numbered in ascending order of value."""

    def __init__(self, values: np.ndarray):
        values = np.asarray(values)
        self.order = np.argsort(values, kind="stable")
        sv = values[self.order]
        starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
        self.n_groups = len(starts)
        self.ties = self.n_groups < len(sv)
        self.group = np.empty(len(sv), dtype=np.int64)  # item -> its group
        self.group[self.order] = np.repeat(np.arange(self.n_groups),
                                           np.diff(np.r_[starts, len(sv)]))

    def centred_ranks(self, idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(copies, twice_ranks), both float64 (B, groups): how many copies of each group
        each resample holds, and ``2 * (average rank - (n + 1) / 2)`` of the group inside
        the resample (scipy's ``rankdata`` default, centred). Whole numbers: exact."""
        copies = _rows_bincount(self.group[idx], self.n_groups).astype(np.float64)
        twice = np.cumsum(copies, axis=1)  # resampled values at or below each group
        twice *= 2
        twice -= copies
        twice -= n  # = 2 * (below + (copies + 1) / 2) - (n + 1), below = cumsum - copies
        return copies, twice


# Below this many items every sum of ``_spearman_resampled`` is exact in float64 (its
# terms are whole numbers, copies x twice-rank x twice-rank, whose absolute values sum to
# at most n**3 < 2**53), so the result does not depend on the order of summation.
EXACT_SPEARMAN_MAX_N = 200_000


def _spearman_resampled(gold: np.ndarray, pred: np.ndarray, idx: np.ndarray,
                        groups: tuple[_TieGroups, _TieGroups] | None = None) -> np.ndarray:
    """``_spearman(gold[idx], pred[idx])`` for every resample (row of ``idx``) without
    materialising and sorting each resample: Pearson of the within-resample average ranks,
    computed from how often each tie group occurs (equal to scipy's rankdata + Pearson).

    The ranks, centred on their mean (n + 1) / 2, are multiples of 1/2, so with twice
    those ranks every product and sum below is a whole number, exact in float64 (n <
    ``EXACT_SPEARMAN_MAX_N``): the value is the exact correlation, rounded the same way
    however the sums are arranged (the same bits as summing item by item). That
    lets each array's sums run over its tie groups (70 columns for STS-B's gold scores
    instead of 1,379) and the cross sum over the items of the array without ties, in its
    sorted order."""
    n = len(gold)
    ga, gb = groups or (_TieGroups(np.asarray(gold)), _TieGroups(np.asarray(pred)))
    if n >= EXACT_SPEARMAN_MAX_N:
        return _spearman_resampled_items(ga, gb, idx, n)
    if ga.ties and not gb.ties:
        ga, gb = gb, ga  # pair the items in the order of the array without ties
    wa, ra = ga.centred_ranks(idx, n)
    wb, rb = gb.centred_ranks(idx, n)
    saa = np.einsum("ij,ij->i", wa * ra, ra)
    wrb = wb * rb
    sbb = np.einsum("ij,ij->i", wrb, rb)
    if not gb.ties:  # b's groups are its items in sorted order: pair each with a's rank
        sab = np.einsum("ij,ij->i", wrb, ra[:, ga.group[gb.order]])
    else:
        w = _rows_bincount(idx, n).astype(np.float64)
        w *= ra[:, ga.group]
        sab = np.einsum("ij,ij->i", w, rb[:, gb.group])
    num = sab / 4.0  # the twice-ranks' products are 4x the ranks' products
    den = np.sqrt((saa / 4.0) * (sbb / 4.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _spearman_resampled_items(ga: _TieGroups, gb: _TieGroups, idx: np.ndarray,
                              n: int) -> np.ndarray:
    """The same weighted-rank Pearson over items, for n too large for exact sums."""
    w = resample_counts(idx, n).astype(np.float64)
    rx = ga.centred_ranks(idx, n)[1][:, ga.group] / 2.0
    ry = gb.centred_ranks(idx, n)[1][:, gb.group] / 2.0
    num = (w * rx * ry).sum(axis=1)
    den = np.sqrt((w * rx * rx).sum(axis=1) * (w * ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _pearson_resampled(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``_pearson(x[idx], y[idx])`` with the same arithmetic in the same order (so the
    same bits), in place on the gathered arrays instead of through temporaries."""
    a, b = x[idx], y[idx]
    a -= a.mean(axis=-1, keepdims=True)
    b -= b.mean(axis=-1, keepdims=True)
    prod = np.multiply(a, b)
    num = prod.sum(axis=-1)
    np.multiply(a, a, out=prod)
    saa = prod.sum(axis=-1)
    np.multiply(b, b, out=prod)
    den = np.sqrt(saa * prod.sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def bootstrap_distribution(name: str, arrays: list[np.ndarray], *, n_boot: int, seed: int,
                           idx: np.ndarray | None = None) -> np.ndarray:
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    if idx is None:
        idx = resample_indices(n, n_boot, seed)
    if name == "spearman" and all(not np.isnan(a).any() for a in arrays):
        groups = (_TieGroups(arrays[0]), _TieGroups(arrays[1]))  # sorted once
        return np.concatenate([_spearman_resampled(*arrays, chunk, groups)
                               for chunk in _chunks(idx, FAST_CHUNK_CELLS)])
    if name == "pearson":
        x, y = (np.asarray(a, float) for a in arrays)
        return np.concatenate([_pearson_resampled(x, y, chunk)
                               for chunk in _chunks(idx, FAST_CHUNK_CELLS)])
    fn = STATISTICS[name]
    return np.concatenate([fn(*[a[chunk] for a in arrays]) for chunk in _chunks(idx)])


def bootstrap_ci(name: str, arrays: list, *, n_boot: int = 1000, seed: int = 42,
                 confidence: float = 0.95) -> list[float] | None:
    """Percentile bootstrap CI of ``STATISTICS[name](*arrays)`` over items."""
    if n_boot <= 0 or len(arrays[0]) < 2:
        return None
    dist = bootstrap_distribution(name, arrays, n_boot=n_boot, seed=seed)
    dist = dist[np.isfinite(dist)]
    if not len(dist):
        return None
    a = (1 - confidence) / 2
    lo, hi = np.quantile(dist, [a, 1 - a])
    return [float(lo), float(hi)]


def mean_ci(values, *, n_boot: int = 1000, seed: int = 42, confidence: float = 0.95):
    return bootstrap_ci("mean", [np.asarray(values, float)], n_boot=n_boot, seed=seed,
                        confidence=confidence)
