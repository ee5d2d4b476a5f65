"""What every task and check is: a config model, the texts it needs, and a pure
evaluation of (dataset, vectors) -> metrics. Components never call an encoder.

A component class declares, once:

- ``Config``: its pydantic config model, whose ``type: Literal["NAME"]`` field is the one
  place the type name is written in the class (``Component.type`` is read from it; the
  registry key must equal it, which ``tests/test_registry.py`` checks for every entry);
- ``metrics``: metric name -> ``higher_is_better``. A name may be a pattern with
  ``{placeholders}`` (``"{backend}_recall_at_{k}"``) when the names depend on the config;
  such a class overrides ``metric_names(config)`` to list the concrete names. Every
  metric a result carries gets its direction from this declaration (``result()``), and a
  metric the class does not declare is a programming error;
- ``main_metric``: the headline metric (an instance may refine it in ``load``).

``kind`` ("task" | "check") comes from the base class: subclass
:class:`evalharness.tasks.base.Task` or :class:`evalharness.checks.base.Check`.
"""

from __future__ import annotations

import functools
import re
import typing
from typing import ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from evalharness.embeddings.planner import TextNeed, Vectors
from evalharness.results import ComponentResult, Metric
from evalharness.stats import bootstrap_ci, statistic
KINDS = ("task", "check")


class DatasetPath(BaseModel):
    """``dataset: {path: DIR}``: a dataset folder given by path (relative to the suite)."""
    model_config = ConfigDict(extra="forbid")
    path: str


DatasetRef = str | DatasetPath  # a dataset name (looked up in the data dir) or a path


class ComponentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    dataset: DatasetRef
    split: str = "test"
    bootstrap: int | None = Field(None, ge=0, description="resamples; default: the suite's")
    limit: int | None = Field(None, ge=1, description="use only the first N items (smoke runs)")
    # task prompts (E5 'query: ', BGE / instruct-model instructions): replace the
    # encoder's prefixes for this component's texts; part of the cache key
    prompt: str | None = Field(None, description="prompt for every text of this component")
    query_prompt: str | None = Field(None, description="prompt for queries (default: prompt)")
    document_prompt: str | None = Field(None, description="prompt for documents "
                                        "(default: prompt)")


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


def config_type(config_cls: type[BaseModel]) -> str | None:
    """The NAME of a config model's ``type: Literal["NAME"]`` field (None if not a literal)."""
    field = config_cls.model_fields.get("type")
    if field is None or typing.get_origin(field.annotation) is not Literal:
        return None
    args = typing.get_args(field.annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


@functools.cache
def _pattern(name: str) -> re.Pattern | None:
    """``"{p}_fluctuation"`` -> a regex that matches ``synonym_fluctuation`` (None: no
    placeholder). A placeholder stands for one or more characters."""
    parts = re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", name)
    if len(parts) == 1:
        return None
    return re.compile("(.+?)".join(re.escape(p) for p in parts))


class Component:
    kind: ClassVar[str]  # "task" | "check": set by tasks.base.Task / checks.base.Check
    type: ClassVar[str | None] = None  # from Config's type literal (see __init_subclass__)
    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    metrics: ClassVar[dict[str, bool]] = {}  # name or pattern -> higher_is_better
    main_metric: ClassVar[str]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        literal = config_type(cls.Config)
        own = cls.__dict__.get("type")
        if own is not None and literal is not None and own != literal:
            raise TypeError(f"{cls.__qualname__}.type is {own!r} but its Config's type "
                            f"literal is {literal!r}: drop the class attribute, the config "
                            "names the type")
        if own is None:
            cls.type = literal
        if cls.type is None:
            return  # an abstract base (no type of its own)
        if getattr(cls, "kind", None) not in KINDS:
            raise TypeError(f"{cls.__qualname__} (type {cls.type!r}) has no kind: subclass "
                            "evalharness.tasks.base.Task or evalharness.checks.base.Check")
        if not cls.metrics:
            raise TypeError(f"{cls.__qualname__} declares no metrics: set "
                            "metrics = {name: higher_is_better, ...}")
        patterned = [m for m in cls.metrics if _pattern(m) is not None]
        if patterned and "metric_names" not in _own_attrs(cls):
            raise TypeError(f"{cls.__qualname__} declares metric patterns {patterned}: "
                            "override metric_names(config) to list the concrete names")
        main = getattr(cls, "main_metric", None)
        if main is None or cls.direction(main) is None:
            raise TypeError(f"{cls.__qualname__}.main_metric {main!r} is not one of its "
                            f"declared metrics {list(cls.metrics)}")

    def __init__(self, cid: str, config, resolver, *, seed: int = 42, bootstrap: int = 1000):
        self.id = cid
        self.config = config
        self.seed = seed
        self.n_boot = bootstrap if config.bootstrap is None else config.bootstrap
        self.dataset_name = None
        self.load(resolver)

    # what the class declares -----------------------------------------------------------
    @classmethod
    def metric_names(cls, config) -> list[str]:
        """The metric names a result of ``config`` may carry (thresholds are checked
        against them before any data is read). Default: the declared names."""
        return list(cls.metrics)

    @classmethod
    def direction(cls, name: str) -> bool | None:
        """``higher_is_better`` of metric ``name`` from the declaration (None: undeclared)."""
        if name in cls.metrics:
            return cls.metrics[name]
        for declared, higher in cls.metrics.items():
            rx = _pattern(declared)
            if rx is not None and rx.fullmatch(name):
                return higher
        return None

    @classmethod
    def higher_is_better(cls, name: str) -> bool:
        higher = cls.direction(name)
        if higher is None:
            raise KeyError(f"{cls.__qualname__} declares no metric {name!r} (declared: "
                           f"{', '.join(cls.metrics)})")
        return higher

    # what an instance does ---------------------------------------------------------------
    def load(self, resolver) -> None:
        raise NotImplementedError

    def needs(self) -> list[TextNeed]:
        raise NotImplementedError

    def prompts(self) -> dict[str, str]:
        """role -> the prompt this component's texts of that role are embedded with
        (empty: the encoder's own prefixes)."""
        c = self.config
        out = {"text": c.prompt, "query": c.query_prompt or c.prompt,
               "document": c.document_prompt or c.prompt}
        return {role: p for role, p in out.items() if p}

    def evaluate(self, vectors: Vectors, encoder: EncoderContext) -> ComponentResult:
        raise NotImplementedError

    # cross-encoder components (drift with ``other: {encoder: ID}``) ----------------------
    @property
    def other_encoder(self) -> str | None:
        """The id of the encoder whose vectors this component compares with (None: it
        looks at one encoder). When set, the runner keeps ``sample_vectors(vectors)`` of
        every encoder and calls ``evaluate_pair`` once all encoders have embedded."""
        return None

    def sample_vectors(self, vectors: Vectors) -> np.ndarray:
        raise NotImplementedError

    def evaluate_pair(self, mine: np.ndarray, theirs: np.ndarray, *,
                      encoder: str) -> ComponentResult:
        raise NotImplementedError

    # helpers ------------------------------------------------------------------
    def result(self, metrics: dict[str, Metric], details: dict | None = None,
               items: dict | None = None) -> ComponentResult:
        """The result; every metric's ``higher_is_better`` is set from ``metrics``."""
        for name, metric in metrics.items():
            metric.higher_is_better = self.higher_is_better(name)
        return ComponentResult(type=self.config.type, kind=self.kind, dataset=self.dataset_name,
                               main_metric=self.main_metric, metrics=metrics,
                               details=details or {}, items=items)

    def error_result(self, error: str, traceback: str | None = None) -> ComponentResult:
        """The result of a component that failed: no metrics, the error (and traceback)."""
        return ComponentResult(type=self.config.type, kind=self.kind, error=error,
                               traceback=traceback)

    def stat_metric(self, stat: str, arrays: dict[str, np.ndarray], *,
                    value: float | None = None) -> Metric:
        """A metric that is ``stat`` of per-item arrays, with a seeded bootstrap CI
        (its direction is filled in by ``result``)."""
        names = list(arrays)
        vals = [arrays[k] for k in names]
        v = statistic(stat, *vals) if value is None else value
        ci = bootstrap_ci(stat, vals, n_boot=self.n_boot, seed=self.seed)
        return Metric(value=float(v), ci=ci, n=len(vals[0]), stat=stat, inputs=names)


def _own_attrs(cls) -> set[str]:
    """Attributes defined by ``cls`` or a base below ``Component`` (not Component itself)."""
    out: set[str] = set()
    for base in cls.__mro__:
        if base is Component:
            break
        out.update(base.__dict__)
    return out


def limit(seq, n: int | None):
    """The first ``n`` items of ``seq`` (all when ``n`` is None): a config's ``limit``."""
    return seq if n is None else seq[:n]


__all__ = ["Component", "ComponentConfig", "EncoderContext", "KINDS", "TextNeed", "config_type",
           "limit"]
