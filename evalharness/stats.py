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


def _chunks(idx: np.ndarray, max_cells: int = 4_000_000):
    step = max(1, max_cells // max(1, idx.shape[1]))
    for s in range(0, idx.shape[0], step):
        yield idx[s:s + step]


def resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) how often each item occurs in each resample."""
    b = idx.shape[0]
    off = (np.arange(b, dtype=np.int64) * n)[:, None]
    return np.bincount((idx + off).ravel(), minlength=b * n).reshape(b, n)


class _TieGroups:
    """The sort of one array (ascending, stable) and its groups of equal values."""

    def __init__(self, values: np.ndarray):
        self.order = np.argsort(values, kind="stable")
        sv = values[self.order]
        self.starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1]])
        self.group = np.repeat(np.arange(len(self.starts)),
                               np.diff(np.r_[self.starts, len(sv)]))

    def ranks(self, counts: np.ndarray) -> np.ndarray:
        """Average ranks (scipy's ``rankdata`` default) of every item inside each resample,
        from the items' occurrence counts: an item's rank is the number of resampled values
        below it plus (copies of its value in the resample + 1) / 2."""
        per_group = np.add.reduceat(counts[:, self.order], self.starts, axis=1)
        group_rank = np.cumsum(per_group, axis=1) - per_group + (per_group + 1) / 2.0
        ranks = np.empty(counts.shape, dtype=np.float64)
        ranks[:, self.order] = group_rank[:, self.group]
        return ranks


def _spearman_resampled(gold: np.ndarray, pred: np.ndarray, idx: np.ndarray,
                        groups: tuple[_TieGroups, _TieGroups] | None = None) -> np.ndarray:
    """``_spearman(gold[idx], pred[idx])`` without materialising and sorting each
    resample: Pearson of the within-resample ranks, weighted by occurrence counts
    (equal to scipy's rankdata + Pearson on the resampled arrays)."""
    gx, gy = groups or (_TieGroups(np.asarray(gold)), _TieGroups(np.asarray(pred)))
    w = resample_counts(idx, len(gold)).astype(np.float64)
    rx, ry = gx.ranks(w), gy.ranks(w)
    total = w.sum(axis=1, keepdims=True)
    rx -= (w * rx).sum(axis=1, keepdims=True) / total
    ry -= (w * ry).sum(axis=1, keepdims=True) / total
    num = (w * rx * ry).sum(axis=1)
    den = np.sqrt((w * rx * rx).sum(axis=1) * (w * ry * ry).sum(axis=1))
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
                               for chunk in _chunks(idx, 1_000_000)])
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
