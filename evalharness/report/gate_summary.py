"""Compact Markdown of the gate verdicts for a PR comment or ``$GITHUB_STEP_SUMMARY``.

A status line, then one table with the failures and warnings first; the passing verdicts
are folded into a ``<details>`` block so a long threshold table stays short on the page.
"""

from __future__ import annotations

from evalharness.results import RunResults, Verdict

ICON = {"pass": "✅", "fail": "❌", "warn": "⚠️"}


def _status(v: Verdict) -> str:
    if v.passed:
        return "pass"
    return "fail" if v.severity == "error" else "warn"


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _num(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_num(x) for x in v) + "]"
    return str(v)


def _bound(v: Verdict) -> str:
    extra = v.model_dump(exclude_none=True)
    if v.op == "regression":
        arrow = "≥" if extra.get("higher_is_better", True) else "≤"
        return (f"{arrow} {_num(v.threshold)} (baseline {_num(extra.get('baseline'))} "
                f"± {_num(extra.get('tolerance'))})")
    conf = extra.get("confidence")
    op = {">=": "≥", "<=": "≤"}.get(v.op, v.op)
    return f"{op} {_num(v.threshold)}" + (f" ({conf} CI bound)" if conf else "")


def _value(v: Verdict) -> str:
    extra = v.model_dump(exclude_none=True)
    out = _num(v.value)
    if v.op == "regression" and extra.get("delta") is not None:
        out += f" ({extra['delta']:+.4f}"
        if extra.get("p_value") is not None:
            out += f", p={extra['p_value']:.3g}"
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
    lines = [f"### {ICON['pass'] if ok else ICON['fail']} {title}: "
             f"{'PASSED' if ok else 'FAILED'}", ""]
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
