"""A task: Spearman of the raw dot product of each STS pair against the gold score."""

from __future__ import annotations

from typing import Literal

import numpy as np

from evalharness.components import ComponentConfig, TextNeed
from evalharness.tasks.base import Task


class DotSTSConfig(ComponentConfig):
    type: Literal["dot-sts"] = "dot-sts"  # the type name: equal to the entry point's name


class DotSTSTask(Task):
    Config = DotSTSConfig
    metrics = {"dot_spearman": True}  # name -> higher_is_better
    main_metric = "dot_spearman"

    def load(self, resolver) -> None:
        data = resolver.pairs(self.config.dataset, self.config.split)
        self.dataset_name = data.info.name
        n = self.config.limit or len(data)
        self.s1, self.s2, self.gold = data.sentence1[:n], data.sentence2[:n], data.scores[:n]

    def needs(self):
        return [TextNeed("text", tuple(self.s1)), TextNeed("text", tuple(self.s2))]

    def evaluate(self, vectors, encoder):
        a = np.asarray(vectors.get("text", self.s1), dtype=np.float64)
        b = np.asarray(vectors.get("text", self.s2), dtype=np.float64)
        dot = (a * b).sum(axis=1)
        metric = self.stat_metric("spearman", {"gold": self.gold, "dot": dot})
        return self.result({"dot_spearman": metric},
                           items={"gold": self.gold.tolist(), "dot": dot.tolist()})
