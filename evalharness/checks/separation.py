"""Class separation ("semantic fidelity") on a labelled dataset: the cosine of text pairs
of the same class (intra) against pairs of different classes (inter).

Pairs are all distinct pairs of the (unique) texts when there are at most ``max_pairs``
of them, else a seeded uniform sample of ``max_pairs`` distinct pairs. Reported: the
two means, the margin (intra - inter), and the ROC-AUC of telling the two apart by the
cosine (``sklearn.metrics.roc_auc_score``: the probability that a random intra pair is
more similar than a random inter pair). Histograms of both distributions go to details.
No bootstrap CI: pairs share texts, so a per-pair bootstrap would be far too narrow.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from evalharness.checks.base import CheckConfig, TextsCheck, sample_pairs
from evalharness.errors import UserError
from evalharness.results import Metric
from evalharness.vectors_math import unit_rows


def pair_cosines(x: np.ndarray, i: np.ndarray, j: np.ndarray, *,
                 chunk: int = 16384) -> np.ndarray:
    """Cosine of rows (i[k], j[k]) for every k, in chunks (float64)."""
    u = unit_rows(x)
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        out[s:s + chunk] = np.einsum("ij,ij->i", u[i[s:s + chunk]], u[j[s:s + chunk]])
    return out


def separation_scores(cos: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """Means, margin and ROC-AUC of intra (``same``) vs inter pair cosines."""
    from sklearn.metrics import roc_auc_score  # lazy: keeps CLI start-up fast

    same = np.asarray(same, dtype=bool)
    intra, inter = cos[same], cos[~same]
    if not len(intra) or not len(inter):
        raise ValueError("separation needs both same-class and different-class pairs")
    return {"intra_class_mean": float(intra.mean()), "inter_class_mean": float(inter.mean()),
            "margin": float(intra.mean() - inter.mean()),
            "auc": float(roc_auc_score(same.astype(np.int8), cos))}


class SeparationConfig(CheckConfig):
    type: Literal["separation"] = "separation"
    max_pairs: int = Field(200_000, ge=2, description="above this many distinct pairs, use a "
                                                      "seeded sample of this many")
    bins: int = Field(50, ge=2, description="histogram bins over cosine [-1, 1]")


class SeparationCheck(TextsCheck):
    Config = SeparationConfig
    metrics = {"intra_class_mean": True, "inter_class_mean": False, "margin": True, "auc": True}
    main_metric = "auc"
    requires = "labelled"

    def evaluate(self, vectors, encoder):
        x = self.text_vectors(vectors)
        labels = self.data.labels
        n = len(x)
        i, j = sample_pairs(n, self.config.max_pairs, self.seed)
        same = labels[i] == labels[j]
        if not same.any() or same.all():
            raise UserError(f"check '{self.id}': dataset '{self.dataset_name}' gives no "
                            f"{'same-class' if not same.any() else 'different-class'} pairs "
                            f"({n} texts, {len(np.unique(labels))} classes)",
                            hint="separation needs at least 2 classes with 2+ texts each; "
                                 "raise 'limit' or drop it")
        cos = pair_cosines(x, i, j)
        scores = separation_scores(cos, same)
        n_intra, n_inter = int(same.sum()), int((~same).sum())
        metrics = {
            "intra_class_mean": Metric(value=scores["intra_class_mean"], n=n_intra),
            "inter_class_mean": Metric(value=scores["inter_class_mean"], n=n_inter),
            "margin": Metric(value=scores["margin"], n=len(cos)),
            "auc": Metric(value=scores["auc"], n=len(cos)),
        }
        edges = np.linspace(-1.0, 1.0, self.config.bins + 1)
        clipped = np.clip(cos, -1.0, 1.0)
        li = labels[i][same]
        per_class_sum = np.bincount(li, weights=cos[same], minlength=len(self.data.label_names))
        per_class_n = np.bincount(li, minlength=len(self.data.label_names))
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = per_class_sum / per_class_n
        details = {
            "texts": n, "classes": int(len(np.unique(labels))), "pairs": len(cos),
            "intra_pairs": n_intra, "inter_pairs": n_inter,
            "sampled": len(cos) < n * (n - 1) // 2,
            "histogram": {"edges": edges.tolist(),
                          "intra": np.histogram(clipped[same], edges)[0].tolist(),
                          "inter": np.histogram(clipped[~same], edges)[0].tolist()},
            "per_class_intra_mean": {self.data.label_names[c]: float(per_class[c])
                                     for c in range(len(per_class)) if per_class_n[c] > 0},
        }
        return self.result(metrics, details)


__all__ = ["SeparationCheck", "pair_cosines", "separation_scores"]
