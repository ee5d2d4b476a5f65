"""What every task and check is: a config model, the texts it needs, and a pure
evaluation of (dataset, vectors) -> metrics. Components never call an encoder."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from evalharness.embeddings.planner import TextNeed, Vectors
from evalharness.results import ComponentResult, Metric
from evalharness.stats import bootstrap_ci, statistic
from evalharness.suite import DatasetRef


class ComponentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    dataset: DatasetRef
    split: str = "test"
    bootstrap: int | None = Field(None, ge=0, description="resamples; default: the suite's")
    limit: int | None = Field(None, ge=1, description="use only the first N items (smoke runs)")


class EncoderContext:
    """What a component may know about the encoder besides vectors (never the model).

    ``max_seq_length`` and ``load_seconds`` may be given as zero-argument callables: the
    runner passes lazy ones, so a run served from the cache loads no model unless a
    component asks for something only the model knows.
    """

    def __init__(self, name: str, dim: int | None = None, token_lengths=None,
                 max_seq_length=None, timer=None, load_seconds=None):
        self.name = name
        self.dim = dim
        self.token_lengths = token_lengths  # callable(texts) -> lengths, or None
        self._max_seq_length = max_seq_length
        # the one sanctioned encoder call, for the latency check only: timer(texts, ...)
        # encodes outside the cache and returns seconds (None where it cannot time)
        self.timer = timer
        self._load_seconds = load_seconds

    @property
    def max_seq_length(self) -> int | None:
        if callable(self._max_seq_length):
            self._max_seq_length = self._max_seq_length()
        return self._max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value) -> None:
        self._max_seq_length = value

    @property
    def load_seconds(self) -> float | None:
        return self._load_seconds() if callable(self._load_seconds) else self._load_seconds

    @load_seconds.setter
    def load_seconds(self, value) -> None:
        self._load_seconds = value


class Component:
    kind: ClassVar[str] = "task"
    type: ClassVar[str]
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    main_metric: ClassVar[str]

    def __init__(self, cid: str, config, resolver, *, seed: int = 42, bootstrap: int = 1000):
        self.id = cid
        self.config = config
        self.seed = seed
        self.n_boot = bootstrap if config.bootstrap is None else config.bootstrap
        self.dataset_name = None
        self.load(resolver)

    @classmethod
    def metric_names(cls, config) -> list[str]:
        raise NotImplementedError

    def load(self, resolver) -> None:
        raise NotImplementedError

    def needs(self) -> list[TextNeed]:
        raise NotImplementedError

    def evaluate(self, vectors: Vectors, encoder: EncoderContext) -> ComponentResult:
        raise NotImplementedError

    # helpers ------------------------------------------------------------------
    def result(self, metrics: dict[str, Metric], details: dict | None = None,
               items: dict | None = None) -> ComponentResult:
        return ComponentResult(type=self.config.type, kind=self.kind, dataset=self.dataset_name,
                               main_metric=self.main_metric, metrics=metrics,
                               details=details or {}, items=items)

    def stat_metric(self, stat: str, arrays: dict[str, np.ndarray], *, higher_is_better=True,
                    value: float | None = None) -> Metric:
        """A metric that is ``stat`` of per-item arrays, with a seeded bootstrap CI."""
        names = list(arrays)
        vals = [arrays[k] for k in names]
        v = statistic(stat, *vals) if value is None else value
        ci = bootstrap_ci(stat, vals, n_boot=self.n_boot, seed=self.seed)
        return Metric(value=float(v), ci=ci, n=len(vals[0]), higher_is_better=higher_is_better,
                      stat=stat, inputs=names)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity (float64 accumulation)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (a * b).sum(axis=1) / (na * nb)
    return np.nan_to_num(out, nan=0.0)


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


def limit(seq, n: int | None):
    return seq if n is None else seq[:n]


__all__ = ["Component", "ComponentConfig", "EncoderContext", "TextNeed", "cosine_rows",
           "normalize_rows", "limit", "Any"]
