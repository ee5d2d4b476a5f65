"""Plain-text tables for the terminal."""

from __future__ import annotations

from evalharness.results import RunResults


def _fmt(v, digits=4):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


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
                ci = f"[{_fmt(m.ci[0])}, {_fmt(m.ci[1])}]" if m.ci else ""
                mark = "*" if name == comp.main_metric else ""
                rows.append([enc, cid, name + mark, _fmt(m.value), ci,
                             "" if m.n is None else str(m.n)])
    out = [table(rows, ["encoder", "task/check", "metric", "value", "95% CI", "n"])]
    for enc, rec in res.encoders.items():
        if rec.error:
            out.append(f"encoder {enc} FAILED: {rec.error}")
    return "\n".join(out)


def verdict_table(res: RunResults) -> str:
    if not res.verdicts:
        return "no thresholds"
    rows = []
    for v in res.verdicts:
        status = "pass" if v.passed else ("FAIL" if v.severity == "error" else "warn")
        rows.append([status, v.encoder, v.metric, _fmt(v.value), f"{v.op} {v.threshold}",
                     v.severity])
    return table(rows, ["verdict", "encoder", "metric", "value", "threshold", "severity"])


def stage_table(res: RunResults) -> str:
    rows = []
    for enc, rec in res.encoders.items():
        s = rec.seconds
        rows.append([enc, *(_fmt(s.get(k), 2) for k in ("load", "plan", "encode", "evaluate")),
                     str(rec.cache.get("hits", 0)), str(rec.cache.get("misses", 0))])
    return table(rows, ["encoder", "load s", "plan s", "encode s", "evaluate s", "cache hits",
                        "misses"])
