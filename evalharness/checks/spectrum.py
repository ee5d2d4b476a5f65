"""PCA spectrum of the embeddings: the explained-variance ratio curve, the variance held
by the top k components, the components needed for 85% / 95% of the variance, and the
effective rank (Roy & Vetterli 2007) of the same mean-centred matrix.

The curve is that of ``sklearn.decomposition.PCA`` (singular values of the mean-centred
matrix, squared and normalised), computed on the vectors as the encoder returns them.
A low top-k share / many components means the encoder spreads its variance over many
directions (``higher_is_better`` is set accordingly; gates may want either direction).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from evalharness.checks.base import CheckConfig, TextsCheck
from evalharness.checks.geometry import effective_rank_from_singular_values
from evalharness.errors import UserError
from evalharness.results import Metric


def singular_values(x: np.ndarray) -> np.ndarray:
    """Singular values of the mean-centred matrix, descending (float64)."""
    x = np.asarray(x, dtype=np.float64)
    return np.linalg.svd(x - x.mean(axis=0), compute_uv=False)


def explained_variance_ratio(x: np.ndarray) -> np.ndarray:
    """PCA explained-variance ratio per component, descending; min(n, dim) values."""
    s2 = singular_values(x) ** 2
    total = s2.sum()
    return s2 / total if total > 0 else np.zeros_like(s2)


def components_for(ratio: np.ndarray, fraction: float) -> int:
    """Smallest m such that the top m components explain >= ``fraction`` of the variance."""
    cum = np.cumsum(ratio)
    # tolerance for float rounding: a curve reaching 0.85 - 1e-12 counts as 0.85
    return int(min(np.searchsorted(cum, fraction - 1e-12, side="left") + 1, len(ratio)))


def spectrum_summary(ratio: np.ndarray, top_k: int) -> dict[str, float]:
    k = min(top_k, len(ratio))
    return {"top_k_variance": float(np.sum(ratio[:k])),
            "components_85": components_for(ratio, 0.85),
            "components_95": components_for(ratio, 0.95)}


class SpectrumConfig(CheckConfig):
    type: Literal["spectrum"] = "spectrum"
    top_k: int = Field(20, ge=1, description="k of the metric top_k_variance")


class SpectrumCheck(TextsCheck):
    Config = SpectrumConfig
    metrics = {"top_k_variance": False, "components_85": True, "components_95": True,
               "effective_rank": True}
    main_metric = "top_k_variance"

    def evaluate(self, vectors, encoder):
        x = self.text_vectors(vectors)
        if len(x) < 2:
            raise UserError(f"check '{self.id}' needs at least 2 distinct texts")
        s = singular_values(x)
        s2 = s ** 2
        ratio = s2 / s2.sum() if s2.sum() > 0 else np.zeros_like(s2)
        summary = spectrum_summary(ratio, self.config.top_k)
        n = len(x)
        metrics = {
            "top_k_variance": Metric(value=summary["top_k_variance"], n=n,
                                     k=min(self.config.top_k, len(ratio))),
            "components_85": Metric(value=summary["components_85"], n=n),
            "components_95": Metric(value=summary["components_95"], n=n),
            "effective_rank": Metric(value=effective_rank_from_singular_values(s), n=n),
        }
        details = {"n": n, "dim": int(x.shape[1]), "k": min(self.config.top_k, len(ratio)),
                   "explained_variance_ratio": ratio.tolist()}
        return self.result(metrics, details)


__all__ = ["SpectrumCheck", "components_for", "explained_variance_ratio", "singular_values",
           "spectrum_summary"]
