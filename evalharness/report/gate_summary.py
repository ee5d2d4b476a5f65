"""Compact Markdown of the gate verdicts for a PR comment or ``$GITHUB_STEP_SUMMARY``.

A status line, then one table with the failures and warnings first; the passing verdicts
are folded into a ``<details>`` block so a long threshold table stays short on the page.
"""

from __future__ import annotations

from evalharness.formatting import fmt
from evalharness.results import RunResults, Verdict

ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️", "none": "⚪"}
# the one number formatter, with the summary's parameters: 4 decimals, "—" when missing
NUM = {"style": "fixed", "missing": "—", "grouping": False}


def _status(v: Verdict) -> str:
    if v.passed:
        return "pass"
    return "fail" if v.severity == "error" else "warn"


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _bound(v: Verdict) -> str:
    if v.op == "regression":
        arrow = "≥" if v.higher_is_better is not False else "≤"
        return (f"{arrow} {fmt(v.threshold, **NUM)} (baseline {fmt(v.baseline, **NUM)} "
                f"± {fmt(v.tolerance, **NUM)})")
    op = {">=": "≥", "<=": "≤"}.get(v.op, v.op)
    return f"{op} {fmt(v.threshold, **NUM)}" + \
        (f" ({v.confidence} CI bound)" if v.confidence else "")


def _value(v: Verdict) -> str:
    out = fmt(v.value, **NUM)
    if v.op == "regression" and v.delta is not None:
        out += f" ({fmt(v.delta, **NUM, sign=True)}"
        if v.p_value is not None:
            out += f", p={fmt(v.p_value, 3, style='general', grouping=False)}"
        out += ")"
    return out


def _rows(verdicts: list[Verdict]) -> list[str]:
    head = ["| | encoder | metric | value | required | severity |",
            "|---|---|---|---|---|---|"]
    body = [f"| {ICON[_status(v)]} | {_cell(v.encoder)} | `{_cell(v.metric)}` | "
            f"{_cell(_value(v))} | {_cell(_bound(v))} | {v.severity} |" for v in verdicts]
    return head + body


def render_gate_summary(res: RunResults, verdicts: list[Verdict] | None = None, *,
                        title: str | None = None) -> str:
    verdicts = res.verdicts if verdicts is None else verdicts
    failed = [v for v in verdicts if _status(v) == "fail"]
    warned = [v for v in verdicts if _status(v) == "warn"]
    passed = [v for v in verdicts if _status(v) == "pass"]
    broken = [f"{enc}/{cid}" for enc, comps in res.results.items()
              for cid, c in comps.items() if c.error]
    broken += [f"{enc} (encoder)" for enc, rec in res.encoders.items() if rec.error]
    ok = not failed and not broken
    title = title or f"evalharness gate — {res.suite}"
    status = "fail" if not ok else "pass" if verdicts else "none"  # none: neutral, not green
    word = {"pass": "PASSED", "fail": "FAILED", "none": "NO GATES"}[status]
    lines = [f"### {ICON[status]} {title}: {word}", ""]
    if not verdicts:
        lines.append("No thresholds and no baseline: nothing was gated.")
    else:
        lines.append(f"{len(failed)} failed, {len(warned)} warning(s), {len(passed)} passed "
                     f"of {len(verdicts)} check(s).")
    if broken:
        lines += ["", f"Could not be computed: {', '.join(broken)}."]
    if failed or warned:
        lines += [""] + _rows(failed + warned)
    if passed:
        lines += ["", f"<details><summary>{len(passed)} passed</summary>", ""]
        lines += _rows(passed)
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"
