"""Threshold tables and baseline regression -> verdicts.

Thresholds: a verdict fails when the (point or CI-bound) value is outside the bound;
missing values fail too (a metric that could not be computed does not pass a gate).

Baseline regression (``evalharness gate RESULTS --baseline OLD --tolerance X``): for every
metric present in both results -- matched by encoder id and ``TASK.METRIC``; the only
encoder of each when the ids differ and each run has one -- a verdict with op
``regression`` fails when the metric got worse by more than ``tolerance`` (absolute, in
the metric's units, in the direction given by ``higher_is_better``). By default only the
main metric of each task/check is gated (``metrics="all"`` gates every shared metric).
Metrics flagged ``machine_dependent`` (timings, throughput) are left out unless asked
for. With ``significant=True`` a drop beyond the tolerance fails only when the paired
bootstrap over the same items (see :mod:`evalharness.compare`) also finds it significant
at ``alpha``; metrics without per-item data are then judged on the tolerance alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evalharness.errors import UserError
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


def baseline_pairs(results: RunResults, baseline: RunResults) -> list[tuple[str, str]]:
    """(encoder in results, encoder in baseline): the same ids, else the only one of each."""
    from evalharness.compare import encoder_pairs

    return [(new, old) for old, new in encoder_pairs(baseline, results)]


def regression_verdicts(results: RunResults, baseline: RunResults, *, tolerance: float = 0.0,
                        metrics: Literal["main", "all"] = "main",
                        include_machine_dependent: bool = False, significant: bool = False,
                        alpha: float = 0.05, n_boot: int = 1000, seed: int = 42,
                        severity: str = "error") -> list[Verdict]:
    """One ``regression`` verdict per metric shared by ``results`` and ``baseline``."""
    from evalharness.compare import is_machine_dependent

    if tolerance < 0:
        raise UserError(f"the tolerance must be >= 0, got {tolerance}")
    pairs = baseline_pairs(results, baseline)
    if not pairs:
        raise UserError("the baseline shares no encoder with the results "
                        f"(results: {', '.join(results.encoders) or 'none'}; baseline: "
                        f"{', '.join(baseline.encoders) or 'none'})",
                        hint="gate against a baseline run of the same encoder ids")
    verdicts = []
    for enc, old_enc in pairs:
        new_comps = results.results.get(enc, {})
        for cid, old in baseline.results.get(old_enc, {}).items():
            new = new_comps.get(cid)
            if new is None or old.error:
                continue
            main = old.main_metric or new.main_metric
            names = [main] if metrics == "main" else list(old.metrics)
            for name in names:
                om = old.metrics.get(name)
                if om is None or om.value is None:
                    continue
                nm = new.metrics.get(name)
                if new.error is None and nm is None:
                    continue  # not a shared metric (e.g. a changed task config)
                if not include_machine_dependent and (
                        is_machine_dependent(old, om) or is_machine_dependent(new, nm)):
                    continue
                verdicts.append(_regression(enc, old_enc, cid, name, new, old, tolerance,
                                            significant=significant, alpha=alpha,
                                            n_boot=n_boot, seed=seed, severity=severity))
    return verdicts


def _regression(enc, old_enc, cid, name, new, old, tolerance, *, significant, alpha, n_boot,
                seed, severity) -> Verdict:
    from evalharness.compare import compare_metric

    om = old.metrics[name]
    nm = new.metrics.get(name)
    hib = om.higher_is_better if nm is None else nm.higher_is_better
    bound = om.value - tolerance if hib else om.value + tolerance
    value = None if nm is None else nm.value
    v = Verdict(encoder=enc, metric=f"{cid}.{name}", op="regression", threshold=round(bound, 6),
                value=value, severity=severity, passed=False)
    v.baseline = om.value
    v.tolerance = tolerance
    v.higher_is_better = hib
    if old_enc != enc:
        v.baseline_encoder = old_enc
    if value is None:
        v.note = new.error or "metric missing in the results"
        return v
    v.delta = value - om.value
    worse = (om.value - value) if hib else (value - om.value)
    dropped = worse > tolerance
    if significant:
        cmp = compare_metric(old, new, name, n_boot=n_boot, seed=seed, alpha=alpha)
        v.p_value = cmp.get("p_value")
        v.diff_ci = cmp.get("ci")
        v.alpha = alpha
        if v.p_value is None:
            v.note = f"{cmp.get('note', 'no paired test')}: judged on the tolerance alone"
            v.passed = not dropped
        else:
            v.significant = v.p_value < alpha
            v.passed = not (dropped and v.significant)
    else:
        v.passed = not dropped
    return v


def gate(results: RunResults, thresholds: list[ThresholdSpec],
         baseline: RunResults | None = None, **regression) -> list[Verdict]:
    """All verdicts: the threshold table, then the baseline regressions (if a baseline)."""
    verdicts = evaluate_thresholds(results, thresholds)
    if baseline is not None:
        verdicts += regression_verdicts(results, baseline, **regression)
    return verdicts


def overall_passed(verdicts: list[Verdict]) -> bool:
    return all(v.passed for v in verdicts if v.severity == "error")


@dataclass
class GateOutcome:
    """What ``evalharness gate`` decided: the results with ``verdicts`` and ``passed``
    replaced (what the renderers take), and the same two on their own."""
    results: RunResults
    verdicts: list[Verdict]
    passed: bool


def run_gate(results: RunResults | str | Path, *, thresholds_file: str | Path | None = None,
             baseline: RunResults | str | Path | None = None, tolerance: float | None = None,
             metrics: Literal["main", "all"] = "main", include_machine_dependent: bool = False,
             significant: bool = False, alpha: float = 0.05, n_boot: int = 1000,
             seed: int = 42) -> GateOutcome:
    """Gate a run: the threshold file (default: the thresholds stored in the results),
    then, with a ``baseline`` run, one regression verdict per shared metric.

    ``results`` and ``baseline`` are runs or paths of results files. The regression
    options (``tolerance``, ``significant``, ``include_machine_dependent``) need a
    baseline; bad input of any kind is a ``UserError`` that names the option as the CLI
    spells it."""
    from evalharness.results import load_results

    if baseline is None:
        for flag, given in (("--tolerance", tolerance is not None),
                            ("--significant", significant),
                            ("--include-machine-dependent", include_machine_dependent)):
            if given:
                raise UserError(f"{flag} needs --baseline OLD_RESULTS.json")
    if not 0 < alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {alpha}")
    if not isinstance(results, RunResults):
        results = load_results(results)
    if thresholds_file is not None:
        from evalharness.gate_files import load_thresholds_for

        thresholds = load_thresholds_for(thresholds_file, results)
    else:
        thresholds = [ThresholdSpec.model_validate(t) for t in results.thresholds]
    verdicts = evaluate_thresholds(results, thresholds)
    if baseline is not None:
        if not isinstance(baseline, RunResults):
            baseline = load_results(baseline)
        verdicts += regression_verdicts(
            results, baseline, tolerance=tolerance or 0.0, metrics=metrics,
            include_machine_dependent=include_machine_dependent, significant=significant,
            alpha=alpha, n_boot=n_boot, seed=seed)
    passed = overall_passed(verdicts)
    gated = results.model_copy(update={"verdicts": verdicts, "passed": passed})
    return GateOutcome(gated, verdicts, passed)
