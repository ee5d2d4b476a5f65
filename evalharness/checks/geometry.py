"""Geometry of the embedding space: uniformity, alignment (Wang & Isola 2020), anisotropy
(mean pairwise cosine), IsoScore (Rudman et al. 2022) and effective rank (Roy & Vetterli
2007).

Conventions (stated once, used everywhere):
- uniformity, alignment and mean pairwise cosine use L2-normalised vectors (as in the
  papers: they are statements about directions on the unit sphere);
- IsoScore and effective rank use the vectors as the encoder returns them (an encoder
  that normalises, like MiniLM, gives the same numbers either way); effective rank is
  computed on the mean-centred matrix, so a common offset of every vector (the usual
  source of anisotropy) does not count as a dimension.

Uniformity and mean pairwise cosine are means over *pairs* of texts; the pairs share
texts and are not independent, so no per-pair bootstrap CI is given for them (it would
be far too narrow). Alignment is a mean over independent positive pairs and has one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from evalharness.checks.base import CheckConfig, TextsCheck, load_check_texts, sample_rows
from evalharness.components import TextNeed
from evalharness.errors import UserError
from evalharness.results import Metric
from evalharness.vectors_math import unit_rows


# pure functions ------------------------------------------------------------------------

def uniformity(x: np.ndarray, t: float = 2.0, *, block: int = 1024) -> float:
    """log E_{i<j} exp(-t ||x_i - x_j||^2) over distinct pairs of normalised rows.

    Exact, computed in row blocks of the upper triangle so memory is O(block * n).
    Same value as Wang & Isola's ``torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()``.
    """
    x = unit_rows(x)
    n = len(x)
    if n < 2:
        raise ValueError("uniformity needs at least 2 vectors")
    sq = (x * x).sum(axis=1)
    total = 0.0
    for s in range(0, n, block):
        xb = x[s:s + block]
        d2 = sq[s:s + block, None] + sq[None, s:] - 2.0 * (xb @ x[s:].T)
        np.maximum(d2, 0.0, out=d2)
        # keep column c (global s + c) > row r (global s + r): strict upper triangle
        total += np.triu(np.exp(-t * d2), k=1).sum()
    return float(np.log(total / (n * (n - 1) / 2)))


def alignment_distances(x: np.ndarray, y: np.ndarray, alpha: float = 2.0) -> np.ndarray:
    """Per-pair ||x_i - y_i||^alpha of normalised rows (positive pairs row by row)."""
    x, y = unit_rows(x), unit_rows(y)
    if x.shape != y.shape:
        raise ValueError(f"alignment needs two matrices of the same shape, got {x.shape} "
                         f"and {y.shape}")
    return np.linalg.norm(x - y, axis=1) ** alpha


def alignment(x: np.ndarray, y: np.ndarray, alpha: float = 2.0) -> float:
    """E ||x - y||^alpha over positive pairs (rows of x and y), normalised (Wang & Isola)."""
    return float(alignment_distances(x, y, alpha).mean())


def mean_pairwise_cosine(x: np.ndarray) -> float:
    """Mean cosine over distinct pairs, exactly, via the sum of normalised rows:
    sum_{i != j} <u_i, u_j> = ||sum u||^2 - sum ||u_i||^2."""
    u = unit_rows(x)
    n = len(u)
    if n < 2:
        raise ValueError("mean pairwise cosine needs at least 2 vectors")
    s = u.sum(axis=0)
    return float((s @ s - (u * u).sum()) / (n * (n - 1)))


def isoscore(x: np.ndarray) -> float:
    """IsoScore (Rudman, Gillman, Rayne & Eickhoff, ACL Findings 2022), Algorithm 1:

    1. reorient the points with PCA; 2. take the diagonal of their covariance (= the
    covariance eigenvalues); 3. scale it to have norm sqrt(n) (n = dimension);
    4. isotropy defect delta = ||diag - 1|| / sqrt(2 (n - sqrt n));
    5. fraction of dimensions used k = (n - delta^2 (n - sqrt n))^2 / n^2;
    6. IsoScore = (n k - 1) / (n - 1).   1 = isotropic, 0 = all variance on one line.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[1]
    if n < 2 or len(x) < 2:
        raise ValueError("IsoScore needs at least 2 points of dimension >= 2")
    cov = np.cov(x, rowvar=False)
    diag = np.clip(np.linalg.eigvalsh(cov), 0.0, None)  # PCA-reoriented covariance diagonal
    norm = np.linalg.norm(diag)
    if norm == 0:
        return float("nan")  # every point identical: no direction at all
    diag = diag * np.sqrt(n) / norm
    defect = np.linalg.norm(diag - 1.0) / np.sqrt(2 * (n - np.sqrt(n)))
    k = (n - defect ** 2 * (n - np.sqrt(n))) ** 2 / n ** 2
    return float((n * k - 1) / (n - 1))


def effective_rank_from_singular_values(s: np.ndarray) -> float:
    """exp of the Shannon entropy of p_i = s_i / sum(s) (Roy & Vetterli 2007)."""
    s = np.asarray(s, dtype=np.float64)
    s = s[s > 0]
    if not len(s):
        return 0.0
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def effective_rank(x: np.ndarray) -> float:
    """Effective rank of the mean-centred embedding matrix (Roy & Vetterli 2007)."""
    x = np.asarray(x, dtype=np.float64)
    s = np.linalg.svd(x - x.mean(axis=0), compute_uv=False)
    return effective_rank_from_singular_values(s)


# checks --------------------------------------------------------------------------------

class UniformityConfig(CheckConfig):
    type: Literal["uniformity"] = "uniformity"
    t: float = Field(2.0, gt=0, description="temperature t of exp(-t ||x - y||^2)")
    max_exact: int = Field(5000, ge=2, description="above this many texts, use a seeded "
                                                   "sample of this many")


class UniformityCheck(TextsCheck):
    Config = UniformityConfig
    metrics = {"uniformity": False}
    main_metric = "uniformity"

    def evaluate(self, vectors, encoder):
        x = self.text_vectors(vectors)
        rows = sample_rows(len(x), self.config.max_exact, self.seed)
        if len(rows) < 2:
            raise UserError(f"check '{self.id}' needs at least 2 distinct texts")
        value = uniformity(x[rows], self.config.t)
        n = len(rows)
        details = {"texts": len(x), "n": n, "sampled": n < len(x), "pairs": n * (n - 1) // 2,
                   "t": self.config.t, "normalised": True}
        return self.result({"uniformity": Metric(value=value, n=n)}, details)


class AlignmentConfig(CheckConfig):
    type: Literal["alignment"] = "alignment"
    min_score: float = Field(4.0, description="a pair is positive when its gold score >= this")
    alpha: float = Field(2.0, gt=0, description="exponent alpha of ||x - y||^alpha")


class AlignmentCheck(TextsCheck):
    """E ||x - y||^2 over positive STS pairs (gold >= min_score). ``limit`` keeps the first
    N positive pairs."""
    Config = AlignmentConfig
    metrics = {"alignment": False}
    main_metric = "alignment"
    requires = "pairs"

    def load(self, resolver) -> None:
        data = load_check_texts(resolver, self.config, require="pairs").pairs
        self.dataset_name = data.info.name
        rows = np.flatnonzero(data.scores >= self.config.min_score)
        if self.config.limit is not None:
            rows = rows[:self.config.limit]
        if not len(rows):
            raise UserError(f"check '{self.id}': no pair of '{data.info.name}' has a gold "
                            f"score >= {self.config.min_score} (scores range "
                            f"{data.scores.min():g}..{data.scores.max():g})",
                            field="min_score", hint="lower 'min_score'")
        self.rows = rows
        self.s1 = [data.sentence1[i] for i in rows]
        self.s2 = [data.sentence2[i] for i in rows]
        self.positive_of = len(data)

    def needs(self):
        return [TextNeed("text", tuple(self.s1)), TextNeed("text", tuple(self.s2))]

    def evaluate(self, vectors, encoder):
        d = alignment_distances(vectors.get("text", self.s1), vectors.get("text", self.s2),
                                self.config.alpha)
        metric = self.stat_metric("mean", {"distance": d})
        details = {"pairs": len(d), "of_pairs": self.positive_of,
                   "min_score": self.config.min_score, "alpha": self.config.alpha,
                   "normalised": True}
        items = {"id": self.rows.tolist(), "distance": d.tolist()}
        return self.result({"alignment": metric}, details, items)


class AnisotropyConfig(CheckConfig):
    type: Literal["anisotropy"] = "anisotropy"


class AnisotropyCheck(TextsCheck):
    """Mean pairwise cosine (anisotropy), IsoScore and effective rank of the texts."""
    Config = AnisotropyConfig
    metrics = {"mean_cosine": False, "isoscore": True, "effective_rank": True}
    main_metric = "mean_cosine"

    def evaluate(self, vectors, encoder):
        x = self.text_vectors(vectors)
        if len(x) < 2:
            raise UserError(f"check '{self.id}' needs at least 2 distinct texts")
        n = len(x)
        metrics = {
            "mean_cosine": Metric(value=mean_pairwise_cosine(x), n=n),
            "isoscore": Metric(value=isoscore(x), n=n),
            "effective_rank": Metric(value=effective_rank(x), n=n),
        }
        details = {"n": n, "dim": int(x.shape[1]), "pairs": n * (n - 1) // 2,
                   "effective_rank_of": "mean-centred embedding matrix",
                   "mean_norm": float(np.linalg.norm(x, axis=1).mean())}
        return self.result(metrics, details)


__all__ = ["AlignmentCheck", "AnisotropyCheck", "UniformityCheck", "alignment",
           "alignment_distances", "effective_rank", "effective_rank_from_singular_values",
           "isoscore", "mean_pairwise_cosine", "uniformity"]
