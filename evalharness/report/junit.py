"""JUnit XML for CI test viewers: one ``<testcase>`` per verdict.

* a failed ``error``-severity verdict carries ``<failure message=... type=...>`` with the
  value and the threshold (and, for baseline regressions, the baseline value, the delta
  and the p-value);
* a failed ``warn``-severity verdict is reported as ``<skipped message="warning: ...">``:
  visible in every JUnit viewer, counted under ``skipped``, and never failing the build --
  the same meaning it has for the exit code;
* a task/check that could not be computed, or an encoder that failed, adds a testcase
  with ``<error>`` (counted under ``errors``), so broken components are not silent.

Layout: ``<testsuites><testsuite name tests failures errors skipped time timestamp>
<testcase classname="evalharness.SUITE.ENCODER" name="METRIC OP THRESHOLD" time>``;
several runs (``evalharness report A.json B.json --format junit``) give one
``<testsuite>`` each, the ``<testsuites>`` counts summing them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from evalharness.formatting import fmt
from evalharness.results import RunResults, Verdict


# the one number formatter, with JUnit's parameters: 4 significant digits, "missing"
NUM = {"style": "general", "missing": "missing", "grouping": False}
SECONDS = {"digits": 3, "style": "fixed", "missing": "0.000", "grouping": False}


def verdict_name(v: Verdict) -> str:
    if v.op == "regression":
        return f"{v.metric} no regression (tolerance {fmt(v.tolerance, **NUM)})"
    return f"{v.metric} {v.op} {fmt(v.threshold, **NUM)}"


def verdict_message(v: Verdict) -> str:
    """One line: what was measured against what."""
    if v.op == "regression":
        allowed = "down to" if v.higher_is_better is not False else "up to"
        msg = (f"value {fmt(v.value, **NUM)} vs baseline {fmt(v.baseline, **NUM)} "
               f"(delta {fmt(v.delta, **NUM)}, allowed {allowed} {fmt(v.threshold, **NUM)}")
        if v.p_value is not None:
            msg += f", p={fmt(v.p_value, 3, style='general', grouping=False)}"
        return msg + ")"
    what = f"{v.confidence} CI bound" if v.confidence else "value"
    return f"{what} {fmt(v.value, **NUM)}, required {v.op} {fmt(v.threshold, **NUM)}"


def _details(v: Verdict) -> str:
    return "\n".join(f"{k}: {fmt(val, **NUM) if isinstance(val, float) else val}"
                      for k, val in v.model_dump(exclude_none=True).items())


def _component_seconds(res: RunResults, v: Verdict) -> float:
    comp = res.results.get(v.encoder, {}).get(v.metric.split(".", 1)[0])
    return float(comp.seconds) if comp is not None else 0.0


def _testsuite(root: ET.Element, res: RunResults, verdicts: list[Verdict] | None) -> dict:
    """One ``<testsuite>`` for one run; returns its counts."""
    verdicts = res.verdicts if verdicts is None else verdicts
    suite = ET.SubElement(root, "testsuite", name=res.suite, timestamp=res.created)
    classname = f"evalharness.{res.suite}"
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    total_time = 0.0
    for v in verdicts:
        t = _component_seconds(res, v)
        total_time += t
        case = ET.SubElement(suite, "testcase", classname=f"{classname}.{v.encoder}",
                             name=verdict_name(v), time=fmt(t, **SECONDS))
        if v.passed:
            continue
        msg = verdict_message(v)
        if v.severity == "error":
            counts["failures"] += 1
            fail = ET.SubElement(case, "failure", message=msg,
                                 type="regression" if v.op == "regression" else "threshold")
            fail.text = _details(v)
        else:
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=f"warning: {msg}")
            ET.SubElement(case, "system-out").text = _details(v)
    for enc, rec in res.encoders.items():
        if rec.error:
            counts["errors"] += 1
            case = ET.SubElement(suite, "testcase", classname=f"{classname}.{enc}",
                                 name="encoder", time=fmt(0.0, **SECONDS))
            ET.SubElement(case, "error", message=rec.error.splitlines()[0][:500],
                          type="encoder").text = rec.error
        for cid, comp in res.results.get(enc, {}).items():
            if comp.error:
                counts["errors"] += 1
                case = ET.SubElement(suite, "testcase", classname=f"{classname}.{enc}",
                                     name=f"{cid} ({comp.type})",
                                     time=fmt(comp.seconds, **SECONDS))
                ET.SubElement(case, "error", message=comp.error.splitlines()[0][:500],
                              type=comp.kind).text = comp.error
    counts["tests"] = len(suite)
    counts["time"] = res.seconds.get("total", total_time) if res.seconds else total_time
    _set_counts(suite, counts)
    return counts


def _set_counts(el: ET.Element, counts: dict) -> None:
    for key in ("tests", "failures", "errors", "skipped"):
        el.set(key, str(counts[key]))
    el.set("time", fmt(counts["time"], **SECONDS))


def build_junit(res: RunResults | list[RunResults],
                verdicts: list[Verdict] | None = None) -> ET.Element:
    """``<testsuites>`` with one ``<testsuite>`` per run (``verdicts``: instead of the
    run's own, for one run)."""
    runs = res if isinstance(res, list) else [res]
    root = ET.Element("testsuites", name="evalharness")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for run in runs:
        counts = _testsuite(root, run, verdicts if len(runs) == 1 else None)
        for key in total:
            total[key] += counts[key]
    _set_counts(root, total)
    return root


def render_junit(res: RunResults | list[RunResults],
                 verdicts: list[Verdict] | None = None) -> str:
    root = build_junit(res, verdicts)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
