"""Drift: do the embeddings of two datasets (or two splits of one) come from one distribution?

Configured as the check's own ``dataset``/``split`` (sample A) and ``other`` (sample B: a
different ``dataset`` and/or ``split``)::

    drift: {type: drift, dataset: agnews, split: train, other: {split: test}}

Each side is the check's unique texts (``checks.base`` selection: pairs or labelled),
of which a seeded sample of ``n`` is kept (all when fewer). The vectors are scaled to unit
length (cosine geometry) and compared by:

- ``domain_auc``: ROC-AUC of a domain classifier (scikit-learn ``LogisticRegression``)
  telling A from B, cross-validated with a seeded ``StratifiedKFold`` (``folds``); the mean
  over folds (``std`` = their standard deviation). 0.5: indistinguishable.
- ``mmd``: the unbiased estimate of the squared Maximum Mean Discrepancy (Gretton et al.,
  2012, eq. 3) with an RBF kernel ``k(x, y) = exp(-||x - y||^2 / (2 sigma^2))``, sigma the
  median heuristic: the median Euclidean distance over distinct pairs of the pooled sample.
- ``mmd_p_value``: permutation test of ``mmd`` (``n_permutations`` seeded relabelings of
  the pooled sample, the same kernel), ``(1 + #{perm >= observed}) / (1 + n_permutations)``.
- ``mean_cosine_distance``: 1 - cosine between the mean vectors of A and B.

Whether that is "drifted" is a threshold like any other, e.g.
``{metric: drift.domain_auc, max: 0.6}`` or ``{metric: drift.mmd_p_value, min: 0.05}``.

One dataset under two encoders that share a dimension (e.g. last month's model and
today's, or a base and its variant): ``other: {encoder: ID}``. Sample B is then the same
texts as sample A, embedded by encoder ``ID`` of the same suite. Components never see two
encoders at once, so the runner keeps these few vectors of every encoder aside and
evaluates such a check once all encoders have run (``evaluate_pair``); for encoder ``ID``
itself there is nothing to compare and the result says so.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalharness.checks.base import CheckConfig, TextsCheck, load_check_texts, sample_rows
from evalharness.components import TextNeed
from evalharness.errors import UserError
from evalharness.results import Metric
from evalharness.components import DatasetRef
from evalharness.vectors_math import unit_rows


class DriftOther(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: DatasetRef | None = Field(None, description="default: the check's dataset")
    split: str | None = Field(None, description="default: the check's split")
    encoder: str | None = Field(None, description="compare with this encoder's vectors of "
                                "the same texts (default: the encoder being evaluated)")


class DriftConfig(CheckConfig):
    type: Literal["drift"] = "drift"
    other: DriftOther
    n: int | None = Field(1000, ge=2, description="seeded sample per side (null: all)")
    folds: int = Field(5, ge=2)
    n_permutations: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _differs(self):
        if self.other.encoder is not None:
            if self.other.dataset is not None or self.other.split is not None:
                raise ValueError("'other' takes either 'encoder' or 'dataset'/'split'")
        elif self.other.dataset is None and self.other.split in (None, self.split):
            raise ValueError("'other' must name a different dataset, split or encoder")
        return self


# -- the statistics (pure functions) ---------------------------------------------------
def squared_distances(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    sq = np.einsum("ij,ij->i", z, z)
    d = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(d, 0.0, out=d)
    np.fill_diagonal(d, 0.0)
    return d


def median_bandwidth(d2: np.ndarray) -> float:
    """Median heuristic: median Euclidean distance over distinct pairs (1.0 if it is 0)."""
    iu = np.triu_indices(len(d2), 1)
    sigma = float(np.median(np.sqrt(d2[iu])))
    return sigma if sigma > 0 else 1.0


def rbf_kernel(d2: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-d2 / (2.0 * sigma * sigma))


def mmd2_unbiased(k: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 for each row of ``masks`` (1 = sample X, 0 = sample Y) over the
    pooled kernel matrix ``k``; vectorised over rows (permutations)."""
    u = np.atleast_2d(np.asarray(masks, dtype=np.float64))
    n = u.sum(axis=1)
    m = u.shape[1] - n
    kdiag = np.diag(k)
    ku = u @ k
    ukU = np.einsum("pi,pi->p", ku, u)  # sum over X x X, diagonal included
    uk1 = u @ k.sum(axis=1)  # sum over X x all
    total = k.sum()
    dx = u @ kdiag
    dy = kdiag.sum() - dx
    ukv = uk1 - ukU
    vkv = total - 2.0 * uk1 + ukU
    return (ukU - dx) / (n * (n - 1)) + (vkv - dy) / (m * (m - 1)) - 2.0 * ukv / (n * m)


def mmd_test(a: np.ndarray, b: np.ndarray, *, n_permutations: int, seed: int):
    """(mmd^2, permutation p-value, sigma) with the RBF median-heuristic kernel."""
    z = np.vstack([a, b])
    d2 = squared_distances(z)
    sigma = median_bandwidth(d2)
    k = rbf_kernel(d2, sigma)
    n, total = len(a), len(z)
    obs_mask = np.zeros(total)
    obs_mask[:n] = 1.0
    observed = float(mmd2_unbiased(k, obs_mask)[0])
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_permutations, total)), axis=1)[:, :n]
    masks = np.zeros((n_permutations, total))
    np.put_along_axis(masks, perms, 1.0, axis=1)
    null = mmd2_unbiased(k, masks)
    p = (1.0 + float(np.sum(null >= observed))) / (1.0 + n_permutations)
    return observed, p, sigma


def domain_auc(a: np.ndarray, b: np.ndarray, *, folds: int, seed: int) -> np.ndarray:
    """Per-fold ROC-AUC of a logistic-regression classifier telling A (0) from B (1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    x = np.vstack([a, b])
    y = np.r_[np.zeros(len(a), dtype=int), np.ones(len(b), dtype=int)]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_score(LogisticRegression(max_iter=1000), x, y, cv=cv, scoring="roc_auc")


def mean_cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = np.asarray(a, np.float64).mean(0), np.asarray(b, np.float64).mean(0)
    den = np.linalg.norm(ma) * np.linalg.norm(mb)
    return float(1.0 - ma @ mb / den) if den > 0 else 1.0


# -- the check ----------------------------------------------------------------------------
class DriftCheck(TextsCheck):
    Config = DriftConfig
    metrics = {"domain_auc": False, "mmd": False, "mmd_p_value": True,
               "mean_cosine_distance": False}
    main_metric = "domain_auc"

    @property
    def other_encoder(self) -> str | None:
        """The encoder whose vectors form sample B (runner: evaluate after all encoders)."""
        return self.config.other.encoder

    def load(self, resolver) -> None:
        c = self.config
        super().load(resolver)
        if c.other.encoder is not None:
            a = sample_rows(len(self.data.texts), c.n, self.seed)
            self.texts_a = self.texts_b = [self.data.texts[i] for i in a]
            self.other_name = self.dataset_name
            if len(self.texts_a) < c.folds:
                raise UserError(f"check '{self.id}': needs at least folds={c.folds} texts "
                                f"(got {len(self.texts_a)})")
            return
        other_cfg = c.model_copy(update={"dataset": c.other.dataset or c.dataset,
                                         "split": c.other.split or c.split})
        self.other = load_check_texts(resolver, other_cfg)
        self.other_name = resolver.folder(other_cfg.dataset)[0]
        a = sample_rows(len(self.data.texts), c.n, self.seed)
        b = sample_rows(len(self.other.texts), c.n, self.seed + 1)
        self.texts_a = [self.data.texts[i] for i in a]
        self.texts_b = [self.other.texts[i] for i in b]
        if min(len(self.texts_a), len(self.texts_b)) < c.folds:
            raise UserError(f"check '{self.id}': each side needs at least folds={c.folds} "
                            f"texts (got {len(self.texts_a)} and {len(self.texts_b)})")

    def needs(self):
        return [TextNeed("text", tuple(self.texts_a)), TextNeed("text", tuple(self.texts_b))]

    def sample_vectors(self, vectors):
        """The vectors of sample A (what the runner keeps aside for encoder comparisons)."""
        return vectors.get("text", self.texts_a)

    def evaluate(self, vectors, encoder):
        return self._compare(vectors.get("text", self.texts_a),
                             vectors.get("text", self.texts_b))

    def evaluate_pair(self, mine, theirs, *, encoder: str):
        """Sample A under the evaluated encoder against the same texts under ``other.encoder``."""
        other = self.config.other.encoder
        if encoder == other:
            raise UserError(f"check '{self.id}' compares with encoder '{other}' itself")
        if mine.shape[1] != theirs.shape[1]:
            raise UserError(f"check '{self.id}': encoders '{encoder}' ({mine.shape[1]}-d) and "
                            f"'{other}' ({theirs.shape[1]}-d) do not share a dimension")
        res = self._compare(mine, theirs)
        res.details["b"]["encoder"] = other
        return res

    def _compare(self, a, b):
        c = self.config
        a, b = unit_rows(a), unit_rows(b)
        aucs = domain_auc(a, b, folds=c.folds, seed=self.seed)
        mmd, p, sigma = mmd_test(a, b, n_permutations=c.n_permutations, seed=self.seed)
        n = len(a) + len(b)
        metrics = {
            "domain_auc": Metric(value=float(aucs.mean()), std=float(aucs.std()), n=n),
            "mmd": Metric(value=mmd, n=n),
            "mmd_p_value": Metric(value=p, n=c.n_permutations),
            "mean_cosine_distance": Metric(value=mean_cosine_distance(a, b), n=n),
        }
        details = {"a": {"dataset": self.dataset_name, "split": c.split, "n": len(a)},
                   "b": {"dataset": self.other_name, "split": c.other.split or c.split,
                         "n": len(b)},
                   "fold_auc": [float(x) for x in aucs], "rbf_sigma": sigma,
                   "n_permutations": c.n_permutations}
        return self.result(metrics, details=details)


__all__ = ["DriftCheck", "DriftConfig", "domain_auc", "mean_cosine_distance", "median_bandwidth",
           "mmd2_unbiased", "mmd_test", "rbf_kernel", "squared_distances"]
