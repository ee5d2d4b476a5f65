"""A check: how much the vector norms of a dataset's unique texts vary."""

from __future__ import annotations

from typing import Literal

import numpy as np

from evalharness.checks.base import CheckConfig, TextsCheck
from evalharness.results import Metric


class NormSpreadConfig(CheckConfig):
    type: Literal["norm-spread"] = "norm-spread"


class NormSpreadCheck(TextsCheck):
    Config = NormSpreadConfig
    metrics = {"mean_norm": True, "norm_cv": False}
    main_metric = "norm_cv"

    def evaluate(self, vectors, encoder):
        norms = np.linalg.norm(self.text_vectors(vectors).astype(np.float64), axis=1)
        mean = float(norms.mean())
        return self.result({
            "mean_norm": Metric(value=mean, n=len(norms)),
            "norm_cv": Metric(value=float(norms.std() / mean) if mean else None, n=len(norms)),
        }, details={"texts": len(norms)})
