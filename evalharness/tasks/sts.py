"""Semantic textual similarity: cosine of each pair vs gold; Spearman (main), Pearson."""

from __future__ import annotations

from typing import Literal

import numpy as np

from evalharness.components import ComponentConfig, TextNeed
from evalharness.tasks.base import Task
from evalharness.vectors_math import cosine_rows


class STSConfig(ComponentConfig):
    type: Literal["sts"] = "sts"


def sts_scores(gold: np.ndarray, cosine: np.ndarray) -> dict[str, float]:
    """The field's definition (as in MTEB): Spearman and Pearson of cosine vs gold."""
    from scipy.stats import pearsonr, spearmanr

    return {"cosine_spearman": float(spearmanr(gold, cosine).statistic),
            "cosine_pearson": float(pearsonr(gold, cosine).statistic)}


class STSTask(Task):
    Config = STSConfig
    metrics = {"cosine_spearman": True, "cosine_pearson": True}
    main_metric = "cosine_spearman"

    def load(self, resolver) -> None:
        data = resolver.pairs(self.config.dataset, self.config.split)
        self.dataset_name = data.info.name
        n = self.config.limit or len(data)
        self.s1, self.s2 = data.sentence1[:n], data.sentence2[:n]
        self.gold = data.scores[:n]

    def needs(self):
        return [TextNeed("text", tuple(self.s1)), TextNeed("text", tuple(self.s2))]

    def evaluate(self, vectors, encoder):
        cos = cosine_rows(vectors.get("text", self.s1), vectors.get("text", self.s2))
        exact = sts_scores(self.gold, cos)
        arrays = {"gold": self.gold, "cosine": cos}
        metrics = {
            "cosine_spearman": self.stat_metric("spearman", arrays,
                                                value=exact["cosine_spearman"]),
            "cosine_pearson": self.stat_metric("pearson", arrays, value=exact["cosine_pearson"]),
        }
        items = {"id": list(range(len(cos))), "gold": self.gold.tolist(),
                 "cosine": cos.tolist()}
        return self.result(metrics, items=items)
