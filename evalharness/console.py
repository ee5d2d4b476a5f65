"""Plain-text tables and lines for the terminal."""

from __future__ import annotations

from evalharness.formatting import fmt
from evalharness.results import RunResults

# the one number formatter, with the terminal's parameters: fixed decimals, "-" missing
NUM = {"style": "fixed", "missing": "-", "grouping": False}

EXIT_ERRORS = {2: "ERROR (bad input)", 3: "ERROR (encoder or internal failure)"}


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join([line, sep, *body])


def results_table(res: RunResults) -> str:
    rows = []
    for enc, comps in res.results.items():
        for cid, comp in comps.items():
            if comp.error:
                rows.append([enc, cid, "ERROR", comp.error[:60], "", ""])
                continue
            for name, m in comp.metrics.items():
                if m.value is None and m.ci is None:
                    continue
                ci = fmt(m.ci, **NUM) if m.ci else ""
                mark = "*" if name == comp.main_metric else ""
                rows.append([enc, cid, name + mark, fmt(m.value, **NUM), ci,
                             "" if m.n is None else str(m.n)])
    out = [table(rows, ["encoder", "task/check", "metric", "value", "95% CI", "n"])]
    for enc, rec in res.encoders.items():
        if rec.error:
            out.append(f"encoder {enc} FAILED: {rec.error}")
    return "\n".join(out)


def model_lines(res: RunResults) -> list[str]:
    """One line per encoder with its model facts: device, dtype, parameters, truncation."""
    out = []
    for eid, rec in res.encoders.items():
        facts = rec.model or {}
        parts = [str(facts[k]) for k in ("device", "dtype") if facts.get(k)]
        if facts.get("parameters"):
            parts.append(f"{facts['parameters'] / 1e6:.1f}M parameters")
        if facts.get("max_tokens"):
            parts.append(f"max {facts['max_tokens']} tokens")
        if facts.get("truncated") is not None and facts.get("texts"):
            parts.append(f"{facts['truncated']:,} of {facts['texts']:,} texts truncated")
        if rec.engine and rec.engine.get("engine") not in (None, "local"):
            parts.append(f"engine {rec.engine['engine']}")
        if parts:
            out.append(f"{eid}: {', '.join(parts)}")
    return out


def verdict_table(res: RunResults) -> str:
    if not res.verdicts:
        return "no thresholds"
    rows = []
    for v in res.verdicts:
        status = "pass" if v.passed else ("FAIL" if v.severity == "error" else "warn")
        rows.append([status, v.encoder, v.metric, fmt(v.value, **NUM), f"{v.op} {v.threshold}",
                     v.severity])
    return table(rows, ["verdict", "encoder", "metric", "value", "threshold", "severity"])


def verdict_line(res: RunResults, exit_code: int) -> str:
    """The last line of a run or a gate: ``verdict: PASSED (3 of 3 gate checks passed)``.

    A run without any gate (no thresholds, no baseline) says ``no gates``: nothing was
    checked, so it did not pass anything (its exit code is still 0)."""
    if exit_code not in (0, 1):
        return f"verdict: {EXIT_ERRORS.get(exit_code, f'ERROR (exit {exit_code})')}"
    n = len(res.verdicts)
    failed = sum(1 for v in res.verdicts if not v.passed and v.severity == "error")
    warned = sum(1 for v in res.verdicts if not v.passed and v.severity != "error")
    if exit_code == 1:
        return f"verdict: FAILED ({failed} of {n} gate checks failed)" if failed else \
            "verdict: FAILED (a gate failed)"
    if not n:
        return "verdict: no gates (no thresholds: nothing was checked)"
    if warned:
        return f"verdict: PASSED with {warned} warning(s) ({n - warned} of {n} gate checks passed)"
    return f"verdict: PASSED ({n} of {n} gate checks passed)"


def stage_table(res: RunResults) -> str:
    rows = []
    for enc, rec in res.encoders.items():
        s = rec.seconds
        rows.append([enc, *(fmt(s.get(k), 2, **NUM)
                            for k in ("load", "plan", "encode", "evaluate")),
                     str(rec.cache.get("hits", 0)), str(rec.cache.get("misses", 0))])
    return table(rows, ["encoder", "load s", "plan s", "encode s", "evaluate s", "cache hits",
                        "misses"])


def comparison_table(rows: list[dict], *, main_only: bool = False) -> str:
    """Rows of :func:`evalharness.compare.compare_results` as a terminal table (``*``:
    the main metric). A row without a p-value had no paired test (no per-item data)."""
    if main_only:
        rows = [r for r in rows if r.get("main")]
    if not rows:
        return "no shared metrics to compare"
    body = []
    for r in rows:
        ci = fmt(r["ci"], **NUM) if r.get("ci") else ""
        outcome = r.get("winner") or ("no paired test" if r.get("p_value") is None else "-")
        body.append([r["metric"] + ("*" if r.get("main") else ""), r["a"], r["b"],
                     fmt(r["value_a"], **NUM), fmt(r["value_b"], **NUM),
                     fmt(r["diff"], **NUM, sign=True), ci,
                     fmt(r.get("p_value"), 3, style="p", missing="-"), outcome])
    return table(body, ["metric", "A", "B", "A value", "B value", "B - A", "CI", "p",
                        "winner"])
