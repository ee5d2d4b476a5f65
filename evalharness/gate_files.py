"""Threshold files for ``evalharness gate --thresholds FILE``.

A threshold file is a YAML list of thresholds, or a mapping with ``thresholds:`` (and an
optional ``description:``); entries may be ``{include: OTHER.yaml}`` (resolved relative to
the file, as in suites). Every threshold is validated like a suite's, and every metric it
names must be present in the results being gated (unknown -> a ``UserError`` with a
"did you mean").
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from evalharness import registry
from evalharness.errors import UserError
from evalharness.results import RunResults
from evalharness.suite import ThresholdSpec, _expand_thresholds, format_validation_error
from evalharness.yamlio import line_of, load_yaml

FILE_KEYS = ("thresholds", "description")


def load_threshold_file(path: str | Path) -> list[tuple[ThresholdSpec, str, int | None]]:
    """Parse and validate a threshold file: (threshold, source file, line) per entry."""
    path = Path(path)
    source = str(path)
    data, locs = load_yaml(path)
    if isinstance(data, dict):
        unknown = [k for k in data if k not in FILE_KEYS]
        if unknown:
            raise UserError(f"unknown key '{unknown[0]}' in a threshold file", source=source,
                            line=line_of(locs, (unknown[0],)), field=str(unknown[0]),
                            hint=registry.suggest(str(unknown[0]), FILE_KEYS)
                            or "a threshold file is a list, or a mapping with 'thresholds:'")
        if "thresholds" not in data:
            raise UserError("a threshold file mapping needs a 'thresholds:' list",
                            source=source, line=1)
        raw = data["thresholds"]
    elif isinstance(data, list):
        raw = data
        locs = {("thresholds",) + k: v for k, v in locs.items()}
    elif data is None:
        raise UserError("the threshold file is empty", source=source,
                        hint="write a list of {metric: TASK.METRIC, min: X} entries")
    else:
        raise UserError("a threshold file must be a YAML list of thresholds or a mapping "
                        "with 'thresholds:'", source=source, line=1)
    entries = _expand_thresholds(raw, path.parent, source, locs)
    out = []
    for item, src, line in entries:
        if not isinstance(item, dict):
            raise UserError(f"a threshold must be a mapping such as "
                            f"{{metric: stsb.cosine_spearman, min: 0.8}}, got {item!r}",
                            source=src, line=line)
        try:
            th = ThresholdSpec.model_validate(item)
        except ValidationError as exc:
            err = format_validation_error(exc, source=src, locs={}, model=ThresholdSpec)
            raise UserError(err.message, source=src, line=line, field=err.field,
                            hint=err.hint) from None
        out.append((th, src, line))
    if not out:
        raise UserError("the threshold file lists no thresholds", source=source)
    return out


def result_metrics(results: RunResults) -> tuple[set[str], set[str]]:
    """(``TASK.METRIC`` addresses present in the results, ids of components that failed
    for some encoder and so may lack metrics)."""
    present, failed = set(), set()
    for comps in results.results.values():
        for cid, comp in comps.items():
            present.update(f"{cid}.{m}" for m in comp.metrics)
            if comp.error:
                failed.add(cid)
    return present, failed


def check_against_results(th: ThresholdSpec, results: RunResults, *, source: str,
                          line: int | None) -> None:
    present, failed = result_metrics(results)
    if th.metric not in present and th.target not in failed:
        known = sorted(present)
        hint = registry.suggest(th.metric, known) or (
            f"metrics in the results: {', '.join(known[:12])}"
            f"{' ...' if len(known) > 12 else ''}" if known else "the results hold no metrics")
        raise UserError(f"threshold names metric '{th.metric}', which the results file does "
                        "not contain", source=source, line=line, field="metric", hint=hint)
    if th.encoders:
        unknown = [e for e in th.encoders if e not in results.encoders]
        if unknown:
            raise UserError(f"threshold filters on unknown encoder(s) {unknown}",
                            source=source, line=line, field="encoders",
                            hint=f"encoders in the results: {', '.join(results.encoders)}")


def load_thresholds_for(path: str | Path, results: RunResults) -> list[ThresholdSpec]:
    """Load a threshold file and validate every metric against ``results``."""
    out = []
    for th, src, line in load_threshold_file(path):
        check_against_results(th, results, source=src, line=line)
        out.append(th)
    return out
