"""Typed results and the results.json contract (schema_version 1), written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from evalharness.atomic import write_atomic  # noqa: F401  (re-exported: results.write_atomic)
from evalharness.errors import UserError

SCHEMA_VERSION = 1


class _Model(BaseModel):
    # Every field is declared, so a misspelt or ad-hoc field is an error where it is made,
    # not a silently missing key in results.json.
    model_config = ConfigDict(extra="forbid")


class Metric(_Model):
    value: float | None
    ci: list[float] | None = None
    n: int | None = None
    higher_is_better: bool = True
    std: float | None = None
    # for paired comparisons: the statistic and the per-item arrays (in ``items``) it takes
    stat: str | None = None
    inputs: list[str] | None = None
    # timings and other numbers that depend on the machine, not the encoder alone
    machine_dependent: bool | None = None
    k: int | None = None  # spectrum: the number of components behind top_k_variance


class ComponentResult(_Model):
    """The result of one task or check for one encoder."""
    type: str
    kind: str = "task"
    seconds: float = 0.0
    dataset: str | None = None
    main_metric: str | None = None
    metrics: dict[str, Metric] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    items: dict[str, list] | None = None
    error: str | None = None
    traceback: str | None = None
    machine_dependent: bool | None = None


class Verdict(_Model):
    encoder: str
    metric: str
    op: str
    threshold: Any
    value: float | None
    severity: str
    passed: bool
    # threshold verdicts judged on a CI bound ("lower"/"upper"); absent: the point value
    confidence: str | None = None
    # baseline regressions (op == "regression")
    baseline: float | None = None
    baseline_encoder: str | None = None
    tolerance: float | None = None
    higher_is_better: bool | None = None
    delta: float | None = None
    p_value: float | None = None
    diff_ci: list[float] | None = None
    alpha: float | None = None
    significant: bool | None = None
    note: str | None = None


class EncoderRecord(_Model):
    spec: str
    fingerprint: str | None = None
    dim: int | None = None
    cache: dict[str, int] = Field(default_factory=lambda: {"hits": 0, "misses": 0})
    seconds: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    base: str | None = None  # variants: the id of the base encoder
    texts_per_second: float | None = None
    # facts of the model: name, revision, parameters, max_tokens, device, dtype, truncated
    model: dict[str, Any] | None = None
    engine: dict[str, Any] | None = None


class RunResults(_Model):
    schema_version: int = SCHEMA_VERSION
    suite: str
    created: str
    environment: dict[str, Any] = Field(default_factory=dict)
    encoders: dict[str, EncoderRecord] = Field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = Field(default_factory=dict)
    results: dict[str, dict[str, ComponentResult]] = Field(default_factory=dict)
    verdicts: list[Verdict] = Field(default_factory=list)
    passed: bool = True
    seconds: dict[str, float] = Field(default_factory=dict)
    thresholds: list[dict] = Field(default_factory=list)
    # variants: {variant_id: {base, settings, metrics: {TASK.METRIC: {...}}}}
    retention: dict[str, Any] | None = None
    # paired comparisons of the first encoder with each other (compare.compare_encoders)
    comparisons: list[dict[str, Any]] | None = None
    # the resolved suite: every option of every task/check/encoder, defaults included
    suite_config: dict[str, Any] | None = None

    def metric(self, encoder: str, address: str) -> Metric | None:
        cid, _, name = address.partition(".")
        comp = self.results.get(encoder, {}).get(cid)
        return comp.metrics.get(name) if comp else None


def _clean(obj):
    """JSON-safe: NaN/inf become null (JSON has no NaN)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


_SCALARS = (int, float, str, bool, type(None))


def dumps_results(data) -> str:
    """Indented JSON whose flat lists of scalars (per-item arrays, CIs) sit on one line.

    Same data as ``json.dumps(_clean(data), indent=1)``, but the per-item arrays (most of
    a run's bytes) go through the C encoder in one piece, which is several times faster
    than the indenting pure-Python encoder and keeps the file easy to scan.
    """
    import re
    import uuid

    token = uuid.uuid4().hex
    raws: list[str] = []

    def walk(obj):
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            if obj and all(isinstance(v, _SCALARS) for v in obj):
                raws.append(json.dumps(_clean(obj), ensure_ascii=False, allow_nan=False,
                                       separators=(", ", ": ")))
                return f"@@{token}-{len(raws) - 1}@@"
            return [walk(v) for v in obj]
        return _clean(obj)

    text = json.dumps(walk(data), indent=1, ensure_ascii=False, allow_nan=False)
    return re.sub(f'"@@{token}-(\\d+)@@"', lambda m: raws[int(m.group(1))], text)


def save_results(results: RunResults, path: str | Path) -> None:
    write_atomic(path, dumps_results(results.model_dump(mode="json", exclude_none=False)) + "\n")


def load_results(path: str | Path) -> RunResults:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("results file not found", source=str(p)) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON: {exc.msg}", source=str(p), line=exc.lineno) from None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise UserError(f"not an evalharness results file (schema_version "
                        f"{data.get('schema_version') if isinstance(data, dict) else None!r}, "
                        f"expected {SCHEMA_VERSION})", source=str(p))
    try:
        return RunResults.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"{err['msg']}", source=str(p),
                        field=".".join(str(x) for x in err["loc"])) from None
