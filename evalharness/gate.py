"""Threshold tables -> verdicts. A verdict fails when the (point or CI-bound) value is
outside the bound; missing values fail too (a metric that could not be computed does
not pass a gate)."""

from __future__ import annotations

from evalharness.results import RunResults, Verdict
from evalharness.suite import ThresholdSpec


def _value(metric, confidence: str):
    if metric is None:
        return None
    if confidence == "point" or not metric.ci:
        return metric.value
    return metric.ci[0] if confidence == "lower" else metric.ci[1]


def check(th: ThresholdSpec, value: float | None) -> tuple[str, object, bool]:
    if th.between is not None:
        lo, hi = th.between
        return "between", [lo, hi], value is not None and lo <= value <= hi
    if th.min is not None and th.max is not None:
        return "between", [th.min, th.max], value is not None and th.min <= value <= th.max
    if th.min is not None:
        return ">=", th.min, value is not None and value >= th.min
    return "<=", th.max, value is not None and value <= th.max


def evaluate_thresholds(results: RunResults, thresholds: list[ThresholdSpec]) -> list[Verdict]:
    verdicts = []
    for th in thresholds:
        for enc in results.encoders:
            if th.encoders and enc not in th.encoders:
                continue
            metric = results.metric(enc, th.metric)
            value = _value(metric, th.confidence)
            op, bound, passed = check(th, value)
            v = Verdict(encoder=enc, metric=th.metric, op=op, threshold=bound, value=value,
                        severity=th.severity, passed=passed)
            if th.confidence != "point":
                v.confidence = th.confidence
            verdicts.append(v)
    return verdicts


def overall_passed(verdicts: list[Verdict]) -> bool:
    return all(v.passed for v in verdicts if v.severity == "error")
