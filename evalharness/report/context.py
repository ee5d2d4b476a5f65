"""What a report shows, as plain data: built from one or more ``RunResults``, shared by
the HTML and the Markdown renderers (which only lay it out) and by the HTML report's
figure choice (which only picks and draws).

``build_context(runs)`` takes one run (a report) or several (a comparison: every encoder
of every run becomes one series). Values are formatted here with the one number
formatter (:func:`evalharness.formatting.fmt`), so both renderers print the same text.
Sections appear only when the results hold what they show, and ``details`` (free-form
per task/check) are read defensively: a results file written by an older or newer
harness, imported from MTEB files (no per-item arrays), or of a task that failed, still
renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from evalharness.errors import UserError
from evalharness.formatting import fmt
from evalharness.results import ComponentResult, EncoderRecord, RunResults, Verdict

NO_PAIRED_TEST = "no paired test"
# the facts an encoder reports about its model, in the order the report shows them
MODEL_FACTS = ("name", "revision", "parameters", "dim", "max_tokens", "device", "dtype",
               "truncated")


# --------------------------------------------------------------------------- helpers
def lookup(d: Any, *keys, default=None):
    """The first of ``keys`` that ``d`` maps to a value (``details`` are free-form: each
    task or check names its entries, older harnesses named some differently)."""
    if isinstance(d, dict):
        for k in keys:
            if d.get(k) is not None:
                return d[k]
    return default


def as_float(v) -> float | None:
    """``v`` as a finite float, else None (details hold whatever a component wrote)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def seconds_text(v) -> str:
    return fmt(as_float(v), 2, style="fixed")


def ci_text(ci) -> str:
    """``[lo, hi]``, or nothing when there is no complete interval."""
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    return fmt(list(ci))


# --------------------------------------------------------------------------- series
@dataclass
class Series:
    """One encoder of one run: a bar in every comparison."""
    label: str
    run_index: int
    encoder: str
    comps: dict[str, ComponentResult] = field(default_factory=dict)


def run_labels(runs: list[RunResults]) -> list[str]:
    if len(runs) == 1:
        return [runs[0].suite]
    names = [r.suite for r in runs]
    if len(set(names)) == len(names):
        return names
    labels = [f"{r.suite} {r.created.replace('T', ' ').rstrip('Z')}" for r in runs]
    if len(set(labels)) == len(labels):
        return labels
    return [f"run {i + 1}: {lab}" for i, lab in enumerate(labels)]


def build_series(runs: list[RunResults]) -> list[Series]:
    labels = run_labels(runs)
    out = []
    for i, run in enumerate(runs):
        for enc in run.encoders or run.results:
            label = enc if len(runs) == 1 else f"{enc} ({labels[i]})"
            out.append(Series(label, i, enc, dict(run.results.get(enc, {}))))
    return out


def component_order(series: list[Series]) -> list[tuple[str, str, str]]:
    """(component id, type, kind), tasks first, each in first-seen (suite) order."""
    seen: dict[str, tuple[str, str]] = {}
    for s in series:
        for cid, comp in s.comps.items():
            seen.setdefault(cid, (comp.type, comp.kind))
    items = [(cid, t, k) for cid, (t, k) in seen.items()]
    return [x for x in items if x[2] != "check"] + [x for x in items if x[2] == "check"]


def series_components(series: list[Series], cid: str):
    """(series, component) of every series that computed ``cid`` without an error."""
    for s in series:
        comp = s.comps.get(cid)
        if comp is not None and not comp.error:
            yield s, comp


# --------------------------------------------------------------------------- gates
def verdict_status(v: Verdict) -> str:
    if v.passed:
        return "pass"
    return "fail" if v.severity == "error" else "warn"


def threshold_text(v: Verdict) -> str:
    if v.op == "between" and isinstance(v.threshold, (list, tuple)) and len(v.threshold) == 2:
        return f"in [{fmt(as_float(v.threshold[0]))}, {fmt(as_float(v.threshold[1]))}]"
    t = as_float(v.threshold)
    return f"{v.op} {fmt(t) if t is not None else v.threshold}"


def margin(v: Verdict) -> float | None:
    """How far the value is inside (+) or outside (-) its bound."""
    val = as_float(v.value)
    if val is None:
        return None
    if v.op == ">=":
        t = as_float(v.threshold)
        return None if t is None else val - t
    if v.op == "<=":
        t = as_float(v.threshold)
        return None if t is None else t - val
    if v.op == "between" and isinstance(v.threshold, (list, tuple)):
        lo, hi = as_float(v.threshold[0]), as_float(v.threshold[1])
        if lo is None or hi is None:
            return None
        return min(val - lo, hi - val)
    return None


def run_errors(run: RunResults) -> list[str]:
    errs = [f"encoder {eid}: {rec.error}" for eid, rec in run.encoders.items() if rec.error]
    for enc, comps in run.results.items():
        for cid, comp in comps.items():
            if comp.error:
                errs.append(f"{enc} / {cid}: {comp.error}")
    return errs


def banner(run: RunResults) -> dict:
    """The verdict at the top: pass / warn / fail, or ``none`` (neutral) when the run
    has no gate at all -- a run without thresholds has not passed anything."""
    rows = [verdict_status(v) for v in run.verdicts]
    counts = {s: rows.count(s) for s in ("pass", "warn", "fail")}
    errors = run_errors(run)
    if not run.passed or counts["fail"]:
        status, title = "fail", "FAILED"
    elif counts["warn"]:
        status, title = "warn", "PASSED with warnings"
    elif not rows:
        status, title = "none", "NO GATES"
    else:
        status, title = "pass", "PASSED"
    parts = []
    if rows:
        parts.append(f"{counts['pass']} of {len(rows)} gate checks passed")
        if counts["fail"]:
            parts.append(f"{counts['fail']} failed (error severity)")
        if counts["warn"]:
            parts.append(f"{counts['warn']} warning(s)")
    else:
        parts.append("no thresholds: nothing was gated")
    if errors:
        parts.append(f"{len(errors)} error(s) while running")
    return {"status": status, "title": title, "summary": "; ".join(parts), "counts": counts,
            "errors": errors}


def gate_rows(run: RunResults) -> list[dict]:
    return [{"status": verdict_status(v), "encoder": v.encoder, "metric": v.metric,
             "value": fmt(as_float(v.value)), "threshold": threshold_text(v),
             "margin": fmt(margin(v)), "severity": v.severity,
             "confidence": v.confidence or "point"} for v in run.verdicts]


# --------------------------------------------------------------------------- comparisons
def stars(p: float | None) -> str:
    if p is None:
        return "*"
    return "***" if p < 0.001 else "**" if p < 0.01 else "*"


def comparison_rows(run: RunResults) -> list[dict]:
    """The run's paired comparisons (rows of :func:`evalharness.compare.compare_results`)
    with their display text. A row without a p-value (no per-item data on one side, e.g.
    results imported from MTEB files) says ``no paired test``."""
    out = []
    # getattr: a run object whose optional field was deleted (``del run.comparisons``)
    # reads as one without comparisons
    for c in getattr(run, "comparisons", None) or []:
        if not isinstance(c, dict) or not c.get("metric"):
            continue
        p = as_float(c.get("p_value"))
        alpha = as_float(c.get("alpha")) or 0.05
        sig = c.get("significant")
        if sig is None:
            sig = p is not None and p < alpha
        winner = c.get("winner")
        diff = as_float(c.get("diff"))
        if sig and winner:
            outcome = f"{winner} {stars(p)}"
        else:
            outcome = NO_PAIRED_TEST if p is None else "no significant difference"
        out.append({"metric": str(c["metric"]), "a": c.get("a"), "b": c.get("b"),
                    "diff": diff, "ci": c.get("ci"), "p_value": p, "significant": bool(sig),
                    "winner": winner, "outcome": outcome,
                    "diff_text": fmt(diff), "ci_text": ci_text(c.get("ci")),
                    "p_text": fmt(p, 3, style="p"),
                    "value_a": as_float(c.get("value_a")), "value_b": as_float(c.get("value_b")),
                    "value_a_text": fmt(as_float(c.get("value_a"))),
                    "value_b_text": fmt(as_float(c.get("value_b"))),
                    "stars": stars(p) if sig else "", "main": bool(c.get("main")),
                    "method": str(c.get("method") or ""), "note": str(c.get("note") or ""),
                    "machine_dependent": bool(c.get("machine_dependent"))})
    return out


def split_comparisons(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(main-metric rows, the others); all rows are "main" when none is marked."""
    if not any(r["main"] for r in rows):
        return rows, []
    return [r for r in rows if r["main"]], [r for r in rows if not r["main"]]


# --------------------------------------------------------------------------- components
def metric_table(cid: str, series: list[Series]) -> dict:
    """Rows = metrics of the component, one cell per series (value, CI, n)."""
    names: list[str] = []
    main = None
    info = {}
    for s in series:
        comp = s.comps.get(cid)
        if comp is None:
            continue
        main = main or comp.main_metric
        info.setdefault("type", comp.type)
        info.setdefault("kind", comp.kind)
        if comp.dataset:
            info.setdefault("dataset", comp.dataset)
        for n in comp.metrics:
            if n not in names:
                names.append(n)
    if main in names:
        names.remove(main)
        names.insert(0, main)
    rows = []
    for n in names:
        cells, hib = [], None
        for s in series:
            comp = s.comps.get(cid)
            m = comp.metrics.get(n) if comp else None
            if m is None:
                cells.append({"value": "–", "ci": "", "n": "", "std": ""})
                continue
            hib = m.higher_is_better if hib is None else hib
            cells.append({"value": fmt(m.value), "ci": ci_text(m.ci),
                          "n": "" if m.n is None else fmt(int(m.n)),
                          "std": "" if m.std is None else f"± {fmt(m.std)}"})
        rows.append({"metric": n, "main": n == main,
                     "direction": "↑" if hib in (None, True) else "↓", "cells": cells})
    errors = [{"series": s.label, "error": s.comps[cid].error} for s in series
              if cid in s.comps and s.comps[cid].error]
    seconds = [seconds_text(s.comps[cid].seconds) if cid in s.comps else "–" for s in series]
    return {"id": cid, "main": main, "rows": rows, "errors": errors, "seconds": seconds,
            "prompts": prompt_rows(cid, series), "extra": component_extra(cid, series),
            **info}


def prompt_rows(cid: str, series: list[Series]) -> list[dict]:
    """The prompts a task gave its encoder (``details["prompts"]``: a text, a list, or a
    mapping role -> text), one row per (series, role)."""
    rows = []
    for s, comp in series_components(series, cid):
        prompts = (comp.details or {}).get("prompts")
        if not prompts:
            continue
        if isinstance(prompts, dict):
            items = list(prompts.items())
        elif isinstance(prompts, (list, tuple)):
            items = [("", p) for p in prompts]
        else:
            items = [("", prompts)]
        rows += [{"series": s.label, "role": str(role),
                  "prompt": text if isinstance(text, str) else fmt(text)}
                 for role, text in items if text not in (None, "")]
    return rows


def robustness_table(comp: ComponentResult) -> tuple[dict[str, dict[str, float]], str] | None:
    """perturbation -> metric -> value, and the headline metric name."""
    d = comp.details or {}
    per = lookup(d, "per_perturbation", "perturbations", "by_perturbation")
    table: dict[str, dict[str, float]] = {}
    if isinstance(per, dict):
        for p, vals in per.items():
            if isinstance(vals, dict):
                table[str(p)] = {k: float(v) for k, v in vals.items() if as_float(v) is not None}
            elif as_float(vals) is not None:
                table[str(p)] = {"value": float(vals)}
    elif isinstance(per, list):
        for row in per:
            if isinstance(row, dict) and lookup(row, "perturbation", "name"):
                name = str(lookup(row, "perturbation", "name"))
                table[name] = {k: float(v) for k, v in row.items()
                               if k not in ("perturbation", "name") and as_float(v) is not None
                               and not isinstance(v, bool)}
    if not table:
        # metrics named PERTURBATION_METRIC (or PERTURBATION.METRIC), the perturbations
        # named by the check's details (``changed`` / ``samples``, keyed by perturbation)
        perts = [str(p) for key in ("changed", "samples") if isinstance(d.get(key), dict)
                 for p in d[key]]
        for p in dict.fromkeys(perts):
            for name, m in comp.metrics.items():
                for sep in ("_", "."):
                    if name.startswith(p + sep) and as_float(m.value) is not None:
                        table.setdefault(p, {})[name[len(p) + 1:]] = float(m.value)
    table = {p: v for p, v in table.items() if v}
    if not table:
        return None
    names = [n for v in table.values() for n in v]
    for pref in ("mean_cosine", "cosine", "nn_stability", "relative_drop"):
        if pref in names:
            return table, pref
    return table, names[0]


def examples(comp: ComponentResult, limit: int = 16) -> list[dict]:
    """Example (original, perturbed) pairs a robustness check kept."""
    d = comp.details or {}
    ex = lookup(d, "examples", "samples", "example_pairs")
    rows = []

    def row(perturbation, pair) -> dict:
        return {"perturbation": str(perturbation),
                "original": str(lookup(pair, "original", "text", default="")),
                "perturbed": str(lookup(pair, "perturbed", "noisy", default="")),
                "cosine": fmt(as_float(lookup(pair, "cosine", "similarity")))}

    if isinstance(ex, dict):
        for p, pairs in ex.items():
            for pair in (pairs if isinstance(pairs, list) else [])[:2]:
                if isinstance(pair, dict):
                    rows.append(row(p, pair))
                elif isinstance(pair, (list, tuple)) and len(pair) >= 2:
                    rows.append({"perturbation": str(p), "original": str(pair[0]),
                                 "perturbed": str(pair[1]),
                                 "cosine": fmt(as_float(pair[2])) if len(pair) > 2 else "–"})
    elif isinstance(ex, list):
        for pair in ex:
            if isinstance(pair, dict):
                rows.append(row(lookup(pair, "perturbation", "name", default=""), pair))
    return rows[:limit]


def component_extra(cid: str, series: list[Series]) -> dict:
    """Tables beyond the metrics: robustness per perturbation and example pairs."""
    present = list(series_components(series, cid))
    extra: dict = {}
    rob = {s.label: r for s, comp in present if (r := robustness_table(comp))}
    if rob:
        metric_names = list(dict.fromkeys(n for table, _ in rob.values()
                                          for vals in table.values() for n in vals))
        extra["perturbations"] = {
            "metrics": metric_names,
            "rows": [{"series": label, "perturbation": p,
                      "values": [fmt(vals.get(n)) for n in metric_names]}
                     for label, (table, _) in rob.items() for p, vals in table.items()]}
    # example pairs: the perturbations are seeded and the same for every encoder
    for _, comp in present:
        rows = examples(comp)
        if rows:
            extra["examples"] = rows
            extra["examples_cosine"] = any(r["cosine"] != "–" for r in rows)
            break
    return extra


# --------------------------------------------------------------------------- run metadata
def retention_rows(run: RunResults) -> list[dict]:
    """Encoder variants (quantised, truncated...): the share of the base's score kept."""
    rows = []
    for vid, r in (run.retention or {}).items():
        if not isinstance(r, dict):
            continue
        settings = r.get("settings")
        settings = ", ".join(f"{k}={v}" for k, v in settings.items()) \
            if isinstance(settings, dict) else fmt(settings) if settings else ""
        for metric, m in (r.get("metrics") or {}).items():
            if not isinstance(m, dict):
                continue
            rows.append({"variant": vid, "base": str(r.get("base") or "–"),
                         "settings": settings, "metric": metric,
                         "value": fmt(as_float(m.get("variant"))),
                         "base_value": fmt(as_float(m.get("base"))),
                         "retention": fmt(as_float(m.get("retention")), 2, style="percent")})
    return rows


DATASET_KEYS = {"split", "rows", "rows_used", "checksum", "layout", "origin", "path"}


def dataset_rows(run: RunResults) -> list[dict]:
    """One row per dataset: rows in the file and, where the suite used a subset
    (``limit``...), the rows used."""
    out = []
    for name, d in run.datasets.items():
        d = d or {}
        sizes = " · ".join(f"{k} {fmt(v)}" for k, v in d.items()
                           if k not in DATASET_KEYS and isinstance(v, (int, float, str)))
        out.append({"name": name, "split": fmt(d.get("split")) if d.get("split") else "–",
                    "rows": fmt(d.get("rows")), "rows_used": fmt(d.get("rows_used")),
                    "has_rows_used": d.get("rows_used") is not None,
                    "checksum": str(d.get("checksum") or "–"),
                    "source": str(d.get("layout") or d.get("origin") or ""),
                    "sizes": sizes, "path": str(d.get("path") or "")})
    return out


def engine_text(engine: dict | None) -> str:
    """``local (workers: 1)`` from ``{"engine": "local", "workers": 1}``."""
    if not engine:
        return "–"
    name = engine.get("engine") or engine.get("name")
    rest = {k: v for k, v in engine.items() if k not in ("engine", "name")}
    if name is None:
        return fmt(rest)
    return f"{name} ({fmt(rest)})" if rest else str(name)


def encoder_rows(run: RunResults) -> list[dict]:
    rows = []
    for eid, rec in run.encoders.items():
        rows.append({
            "id": eid, "spec": rec.spec, "dim": fmt(rec.dim) if rec.dim else "–",
            "fingerprint": rec.fingerprint or "–",
            "hits": fmt(int(rec.cache.get("hits", 0))),
            "misses": fmt(int(rec.cache.get("misses", 0))),
            "tps": fmt(rec.texts_per_second, 1, style="fixed") if rec.texts_per_second else "–",
            "seconds": {k: seconds_text(rec.seconds.get(k)) for k in
                        ("load", "plan", "encode", "evaluate")},
            "error": rec.error})
    return rows


def model_facts(encoders: dict[str, EncoderRecord]) -> dict | None:
    """The model facts table (``EncoderRecord.model``, and the engine that encoded), or
    None when no encoder reports any. Columns: the known facts any encoder has, in
    :data:`MODEL_FACTS` order, then any other fact, then the engine."""
    recs = {eid: rec for eid, rec in encoders.items() if rec.model or rec.engine}
    if not recs:
        return None
    # "texts" (how many unique texts the truncation count is out of) joins "truncated"
    seen = list(dict.fromkeys(k for rec in recs.values() for k in (rec.model or {})
                              if k != "texts"))
    columns = [k for k in MODEL_FACTS if k in seen] + [k for k in seen if k not in MODEL_FACTS]
    with_engine = any(rec.engine for rec in recs.values())

    def cell(model: dict, key: str) -> str:
        if key == "truncated" and model.get("truncated") is not None and model.get("texts"):
            return f"{fmt(model['truncated'])} of {fmt(model['texts'])}"
        return fmt(model.get(key))

    rows = [{"id": eid, "cells": [cell(rec.model or {}, k) for k in columns],
             "engine": engine_text(rec.engine)} for eid, rec in recs.items()]
    return {"columns": columns, "rows": rows, "engine": with_engine}


def metadata(run: RunResults, label: str) -> dict:
    env = run.environment or {}
    versions = [("evalharness", env.get("evalharness")), ("python", env.get("python")),
                ("platform", env.get("platform"))]
    versions += sorted((env.get("packages") or {}).items())
    datasets = dataset_rows(run)
    return {"label": label, "suite": run.suite, "created": run.created,
            "schema_version": run.schema_version,
            "versions": [(k, str(v)) for k, v in versions if v],
            "datasets": datasets, "rows_used": any(d["has_rows_used"] for d in datasets),
            "encoders": encoder_rows(run), "model_facts": model_facts(run.encoders),
            "run_seconds": [(k, seconds_text(v)) for k, v in (run.seconds or {}).items()],
            "description": str((run.suite_config or {}).get("description") or "")}


# --------------------------------------------------------------------------- the context
def build_context(runs: list[RunResults]) -> dict:
    """Everything the renderers show, as plain strings, lists and dicts (no figures).
    ``_series`` and ``_runs`` carry the typed data the HTML report's figures draw from."""
    if not runs:
        raise UserError("no results to report")
    runs = list(runs)
    labels = run_labels(runs)
    series = build_series(runs)
    run_ctx = []
    for i, run in enumerate(runs):
        comps = comparison_rows(run)
        main_c, other_c = split_comparisons(comps)
        run_ctx.append({"label": labels[i], "suite": run.suite, "created": run.created,
                        "banner": banner(run), "gates": gate_rows(run),
                        "comparisons": comps, "comparisons_main": main_c,
                        "comparisons_other": other_c, "meta": metadata(run, labels[i]),
                        "retention": retention_rows(run)})
    tables = [metric_table(cid, series) for cid, _, _ in component_order(series)]
    title = (f"evalharness report: {runs[0].suite}" if len(runs) == 1
             else f"evalharness comparison: {', '.join(dict.fromkeys(labels))}")
    return {"title": title, "runs": run_ctx, "series": [s.label for s in series],
            "tables": tables, "passed": all(r.passed for r in runs), "multi_run": len(runs) > 1,
            "_series": series, "_runs": runs}


# --------------------------------------------------------------------------- figure data
def _mark(run_comps: list[dict], address: str, encoder: str) -> str:
    for c in run_comps:
        if c["metric"] == address and c["significant"] and c["winner"] == encoder:
            return c["stars"]
    return ""


def main_score_groups(ctx: dict) -> list[dict]:
    """Per task: the main score (and CI) of every series, starred where a paired
    comparison found that series significantly better."""
    series: list[Series] = ctx["_series"]
    tasks = [x for x in component_order(series) if x[2] != "check"]  # checks: own scales
    groups = []
    for cid, _, _ in tasks:
        bars, main = {}, None
        for s, comp in series_components(series, cid):
            main = main or comp.main_metric
            m = comp.metrics.get(comp.main_metric or "")
            if m is None or as_float(m.value) is None:
                continue
            mark = _mark(ctx["runs"][s.run_index]["comparisons"], f"{cid}.{comp.main_metric}",
                         s.encoder)
            bars[s.label] = {"value": m.value, "ci": m.ci, "mark": mark}
        if bars:
            groups.append({"label": f"{cid}\n{main}", "bars": bars})
    return groups


def histogram(details: dict) -> dict | None:
    """Intra-/inter-class cosine histograms of a separation check."""
    h = lookup(details, "histogram", "histograms", "cosine_histogram")
    if isinstance(h, dict):
        edges = lookup(h, "edges", "bin_edges", "bins")
        intra = lookup(h, "intra", "intra_class", "same")
        inter = lookup(h, "inter", "inter_class", "different")
        if edges and intra and inter and len(intra) == len(inter) == len(edges) - 1:
            return {"edges": edges, "intra": intra, "inter": inter}
    return None


def recall_curve(details: dict) -> tuple[list[float], list[float]] | None:
    """(k, recall@k) of a retrieval task, from whichever shape its details use."""
    rc = lookup(details, "recall_curve", "recall_at_k", "recall@k")
    if isinstance(rc, dict):
        if "k" in rc and ("recall" in rc or "value" in rc):
            ks, vs = rc["k"], rc.get("recall", rc.get("value"))
        else:
            pairs = []
            for k, v in rc.items():
                kk = as_float(str(k).split("@")[-1].split("_")[-1])
                if kk is not None and as_float(v) is not None:
                    pairs.append((kk, float(v)))
            ks, vs = [p[0] for p in pairs], [p[1] for p in pairs]
    elif isinstance(rc, list) and rc and isinstance(rc[0], (list, tuple)):
        ks, vs = [x[0] for x in rc], [x[1] for x in rc]
    else:
        return None
    if not isinstance(ks, (list, tuple)) or not isinstance(vs, (list, tuple)):
        return None
    pts = [(k, v) for k, v in zip(map(as_float, ks), map(as_float, vs))
           if k is not None and v is not None and k > 0]
    if len(pts) < 2:
        return None
    return [p[0] for p in pts], [p[1] for p in pts]


def per_query(comp: ComponentResult) -> tuple[str, list[float]] | None:
    """(metric, per-query values) of a retrieval task's main metric, if it kept them."""
    items = comp.items or {}
    main = comp.main_metric or ""
    candidates = [main, main.replace("_at_", "@"), main.replace("@", "_at_")]
    candidates += [k for k in items if k.lower().startswith("ndcg")]
    for key in candidates:
        vals = items.get(key)
        if isinstance(vals, list) and vals and all(isinstance(x, (int, float)) for x in
                                                  vals[:50]):
            return key, vals
    return None


def geometry_points(series: list[Series]) -> dict[str, tuple[float, float]]:
    """Series -> (alignment, uniformity) from any component reporting either metric."""
    points = {}
    for s in series:
        a = u = None
        for comp in s.comps.values():
            if comp.error:
                continue
            if a is None and "alignment" in comp.metrics:
                a = as_float(comp.metrics["alignment"].value)
            if u is None and "uniformity" in comp.metrics:
                u = as_float(comp.metrics["uniformity"].value)
        if a is not None and u is not None:
            points[s.label] = (a, u)
    return points
