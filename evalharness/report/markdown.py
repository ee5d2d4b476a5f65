"""The Markdown report: the HTML report's tables (verdict, gates, comparisons, metrics,
prompts, run metadata) as GitHub-flavoured Markdown, no figures. The data comes from
:func:`evalharness.report.context.build_context`; this module only lays it out. Cell text
is escaped so a dataset text or an id can neither break a table nor inject HTML."""

from __future__ import annotations

import re

from evalharness.report.context import build_context
from evalharness.results import RunResults

ICON = {"pass": "✅ pass", "warn": "⚠️ warn", "fail": "❌ fail", "none": "⚪ no gates"}


def esc(text) -> str:
    """One table cell: Markdown/HTML specials escaped, newlines flattened."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;")  # no tag or entity can start
    s = re.sub(r"([\\`*|])", r"\\\1", s)
    return s.replace("](", "]\\(")


def table(header: list[str], rows: list[list], align: list[str] | None = None) -> str:
    align = align or ["l"] * len(header)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def comparison_table(rows: list[dict]) -> str:
    return table(["metric", "A", "B", "A value", "B value", "B − A", "95% CI", "p-value",
                  "winner"],
                 [[c["metric"], c["a"] or "–", c["b"] or "–", c["value_a_text"],
                   c["value_b_text"], c["diff_text"], c["ci_text"], c["p_text"], c["outcome"]]
                  for c in rows], ["l", "l", "l", "r", "r", "r", "r", "r", "l"])


def render_markdown(runs: list[RunResults]) -> str:
    ctx = build_context(list(runs))
    out = [f"# {esc(ctx['title'])}", ""]
    for run in ctx["runs"]:
        b = run["banner"]
        prefix = f"{esc(run['label'])}: " if ctx["multi_run"] else ""
        out += [f"**{prefix}{ICON[b['status']].split(' ', 1)[0]} {esc(b['title'])}**: "
                f"{esc(b['summary'])}", ""]
        for e in b["errors"]:
            out.append(f"- {esc(e)}")
        if b["errors"]:
            out.append("")
        if run["gates"]:
            out += ["## Gates" + (f": {esc(run['label'])}" if ctx["multi_run"] else ""), "",
                    table(["verdict", "encoder", "metric", "value", "threshold", "margin",
                           "severity"],
                          [[ICON[g["status"]], g["encoder"], g["metric"], g["value"],
                            g["threshold"], g["margin"], g["severity"]] for g in run["gates"]],
                          ["l", "l", "l", "r", "r", "r", "l"]), ""]
        if run["comparisons"]:
            out += ["## Paired comparisons" + (f": {esc(run['label'])}" if ctx["multi_run"]
                                               else ""), "",
                    "B − A with the 95% paired-bootstrap CI of the difference and its "
                    "two-sided p-value.", "", comparison_table(run["comparisons_main"]), ""]
            if run["comparisons_other"]:
                out += ["<details><summary>"
                        f"{len(run['comparisons_other'])} more metric(s) compared</summary>",
                        "", comparison_table(run["comparisons_other"]), "", "</details>", ""]
        for r in run["retention"][:1]:
            out += ["## Variant retention", "",
                    table(["variant", "settings", "base", "metric", "variant value",
                           "base value", "retained"],
                          [[x["variant"], x["settings"], x["base"], x["metric"], x["value"],
                            x["base_value"], x["retention"]] for x in run["retention"]],
                          ["l", "l", "l", "l", "r", "r", "r"]), ""]
    out += ["## Results", "",
            "Main metric first. ↑ higher is better, ↓ lower is better; brackets: 95% "
            "bootstrap CI; n: items.", ""]
    for t in ctx["tables"]:
        ds = f", dataset {t['dataset']}" if t.get("dataset") else ""
        out += [f"### {esc(t['id'])} ({esc(t.get('type', '?'))} {esc(t.get('kind', ''))}"
                f"{esc(ds)})", ""]
        for e in t["errors"]:
            out += [f"- **error** {esc(e['series'])}: {esc(e['error'])}"]
        if t["errors"]:
            out.append("")
        if not t["rows"]:
            continue
        header = ["metric", ""] + [x for s in ctx["series"] for x in (s, "95% CI", "n")]
        rows = []
        for r in t["rows"]:
            name = f"{r['metric']} (main)" if r["main"] else r["metric"]
            cells = []
            for c in r["cells"]:
                cells += [f"{c['value']} {c['std']}".strip(), c["ci"], c["n"]]
            rows.append([name, r["direction"], *cells])
        out += [table(header, rows, ["l", "l"] + ["r"] * (len(header) - 2)), ""]
        if t["prompts"]:
            out += [table(["encoder", "role", "prompt"],
                          [[p["series"], p["role"] or "all", p["prompt"]] for p in t["prompts"]]),
                    ""]
    out += ["## Run metadata", ""]
    for run in ctx["runs"]:
        m = run["meta"]
        if ctx["multi_run"]:
            out += [f"### {esc(m['label'])}", ""]
        secs = ", ".join(f"{k} {v} s" for k, v in m["run_seconds"])
        out += [f"suite **{esc(m['suite'])}**, created {esc(m['created'])}"
                + (f", {esc(secs)}" if secs else ""), ""]
        out += [table(["encoder", "spec", "dim", "fingerprint", "load s", "plan s", "encode s",
                       "evaluate s", "cache hits", "misses"],
                      [[e["id"], e["spec"], e["dim"], e["fingerprint"], e["seconds"]["load"],
                        e["seconds"]["plan"], e["seconds"]["encode"], e["seconds"]["evaluate"],
                        e["hits"], e["misses"]] for e in m["encoders"]],
                      ["l", "l", "r", "l", "r", "r", "r", "r", "r", "r"]), ""]
        mf = m["model_facts"]
        if mf:
            out += [table(["encoder", *(k.replace("_", " ") for k in mf["columns"]),
                           *(["engine"] if mf["engine"] else [])],
                          [[r["id"], *r["cells"], *([r["engine"]] if mf["engine"] else [])]
                           for r in mf["rows"]]), ""]
        if m["datasets"]:
            used = m["rows_used"]
            out += [table(["dataset", "split", *(["rows used", "rows in file"] if used
                                                 else ["rows"]), "checksum"],
                          [[d["name"], d["split"], *([d["rows_used"]] if used else []),
                            d["rows"], d["checksum"]] for d in m["datasets"]],
                          ["l", "l", *(["r"] if used else []), "r", "l"]), ""]
        if m["versions"]:
            out += [", ".join(f"{esc(k)} {esc(v)}" for k, v in m["versions"]), ""]
    return "\n".join(out).rstrip() + "\n"
