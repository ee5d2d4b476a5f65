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
<testcase classname="evalharness.SUITE.ENCODER" name="METRIC OP THRESHOLD" time>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from evalharness.results import RunResults, Verdict


def _num(v) -> str:
    if v is None:
        return "missing"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_num(x) for x in v) + "]"
    return str(v)


def verdict_name(v: Verdict) -> str:
    if v.op == "regression":
        tol = getattr(v, "tolerance", None)
        return f"{v.metric} no regression (tolerance {_num(tol)})"
    return f"{v.metric} {v.op} {_num(v.threshold)}"


def verdict_message(v: Verdict) -> str:
    """One line: what was measured against what."""
    extra = v.model_dump(exclude_none=True)
    if v.op == "regression":
        msg = (f"value {_num(v.value)} vs baseline {_num(extra.get('baseline'))} "
               f"(delta {_num(extra.get('delta'))}, allowed down to {_num(v.threshold)}"
               if extra.get("higher_is_better", True) else
               f"value {_num(v.value)} vs baseline {_num(extra.get('baseline'))} "
               f"(delta {_num(extra.get('delta'))}, allowed up to {_num(v.threshold)}")
        if extra.get("p_value") is not None:
            msg += f", p={extra['p_value']:.3g}"
        return msg + ")"
    conf = extra.get("confidence")
    what = f"{conf} CI bound" if conf else "value"
    return f"{what} {_num(v.value)}, required {v.op} {_num(v.threshold)}"


def _details(v: Verdict) -> str:
    data = v.model_dump()
    return "\n".join(f"{k}: {_num(val) if isinstance(val, float) else val}"
                     for k, val in data.items())


def _component_seconds(res: RunResults, v: Verdict) -> float:
    comp = res.results.get(v.encoder, {}).get(v.metric.split(".", 1)[0])
    return float(comp.seconds) if comp is not None else 0.0


def build_junit(res: RunResults, verdicts: list[Verdict] | None = None) -> ET.Element:
    verdicts = res.verdicts if verdicts is None else verdicts
    root = ET.Element("testsuites", name="evalharness")
    suite = ET.SubElement(root, "testsuite", name=res.suite, timestamp=res.created)
    failures = errors = skipped = 0
    total_time = 0.0
    for v in verdicts:
        t = _component_seconds(res, v)
        total_time += t
        case = ET.SubElement(suite, "testcase", classname=f"evalharness.{res.suite}.{v.encoder}",
                             name=verdict_name(v), time=f"{t:.3f}")
        if v.passed:
            continue
        msg = verdict_message(v)
        if v.severity == "error":
            failures += 1
            fail = ET.SubElement(case, "failure", message=msg,
                                 type="regression" if v.op == "regression" else "threshold")
            fail.text = _details(v)
        else:
            skipped += 1
            ET.SubElement(case, "skipped", message=f"warning: {msg}")
            ET.SubElement(case, "system-out").text = _details(v)
    for enc, rec in res.encoders.items():
        if rec.error:
            errors += 1
            case = ET.SubElement(suite, "testcase", classname=f"evalharness.{res.suite}.{enc}",
                                 name="encoder", time="0.000")
            ET.SubElement(case, "error", message=rec.error.splitlines()[0][:500],
                          type="encoder").text = rec.error
        for cid, comp in res.results.get(enc, {}).items():
            if comp.error:
                errors += 1
                case = ET.SubElement(suite, "testcase",
                                     classname=f"evalharness.{res.suite}.{enc}",
                                     name=f"{cid} ({comp.type})", time=f"{comp.seconds:.3f}")
                ET.SubElement(case, "error", message=comp.error.splitlines()[0][:500],
                              type=comp.kind).text = comp.error
    n = len(suite)
    wall = res.seconds.get("total", total_time) if res.seconds else total_time
    for el in (root, suite):
        el.set("tests", str(n))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
        el.set("skipped", str(skipped))
        el.set("time", f"{wall:.3f}")
    return root


def render_junit(res: RunResults, verdicts: list[Verdict] | None = None) -> str:
    root = build_junit(res, verdicts)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"
