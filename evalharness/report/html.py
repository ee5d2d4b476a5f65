"""The HTML report: one self-contained file (inline CSS, figures as SVG data URIs, no
script, no external requests), rendered by a jinja2 template with autoescaping.

``render_html(runs)`` takes one run (a report) or several (a comparison: every encoder of
every run becomes one series). The data gathering below (``build_context``) is shared with
the Markdown report; figures are drawn only here. Sections appear only when the results
contain what they show, and details are looked up defensively: a results file written by
an older or newer harness, or a task that failed, still renders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalharness.results import ComponentResult, RunResults

TEMPLATES = Path(__file__).parent / "templates"


# --------------------------------------------------------------------------- formatting
def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if v.is_integer() and abs(v) >= 10:  # counts (components, ranks) stay counts
            return f"{int(v):,}"
        if abs(v) < 1e-12:  # float noise around zero
            return f"{0.0:.{digits}f}"
        if abs(v) < 10 ** -(digits - 1) or abs(v) >= 1e6:
            return f"{v:.{digits - 2}e}"
        return f"{v:.{digits}f}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {fmt(x, digits)}" for k, x in v.items())
    return str(v)


def fmt_s(v) -> str:
    """Seconds: fixed two decimals."""
    v = _num(v)
    return "–" if v is None else f"{v:,.2f}"


def fmt_ci(ci) -> str:
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def fmt_p(p) -> str:
    if not isinstance(p, (int, float)) or not math.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _get(d: Any, *keys, default=None):
    """First present key of a mapping (or attribute of an object)."""
    for k in keys:
        if isinstance(d, dict):
            if k in d and d[k] is not None:
                return d[k]
        elif d is not None and getattr(d, k, None) is not None:
            return getattr(d, k)
    return default


def _num(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _extra(run: RunResults, name: str):
    return getattr(run, name, None)


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


# --------------------------------------------------------------------------- gates
def verdict_status(v) -> str:
    if v.passed:
        return "pass"
    return "fail" if v.severity == "error" else "warn"


def threshold_text(v) -> str:
    if v.op == "between" and isinstance(v.threshold, (list, tuple)) and len(v.threshold) == 2:
        return f"in [{fmt(_num(v.threshold[0]))}, {fmt(_num(v.threshold[1]))}]"
    return f"{v.op} {fmt(_num(v.threshold)) if _num(v.threshold) is not None else v.threshold}"


def margin(v) -> float | None:
    """How far the value is inside (+) or outside (-) its bound."""
    val = _num(v.value)
    if val is None:
        return None
    if v.op == ">=":
        t = _num(v.threshold)
        return None if t is None else val - t
    if v.op == "<=":
        t = _num(v.threshold)
        return None if t is None else t - val
    if v.op == "between" and isinstance(v.threshold, (list, tuple)):
        lo, hi = _num(v.threshold[0]), _num(v.threshold[1])
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
    rows = [verdict_status(v) for v in run.verdicts]
    counts = {s: rows.count(s) for s in ("pass", "warn", "fail")}
    errors = run_errors(run)
    if not run.passed or counts["fail"]:
        status, title = "fail", "FAILED"
    elif counts["warn"]:
        status, title = "warn", "PASSED with warnings"
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
        parts.append("no thresholds")
    if errors:
        parts.append(f"{len(errors)} error(s) while running")
    return {"status": status, "title": title, "summary": "; ".join(parts), "counts": counts,
            "errors": errors}


def gate_rows(run: RunResults) -> list[dict]:
    rows = []
    for v in run.verdicts:
        rows.append({"status": verdict_status(v), "encoder": v.encoder, "metric": v.metric,
                     "value": fmt(_num(v.value)), "threshold": threshold_text(v),
                     "margin": fmt(margin(v)), "severity": v.severity,
                     "confidence": v.confidence or "point"})
    return rows


# --------------------------------------------------------------------------- comparisons
def comparisons(run: RunResults) -> list[dict]:
    """The gate's paired comparisons, normalised (key names looked up defensively)."""
    out = []
    for c in _extra(run, "comparisons") or []:
        if hasattr(c, "model_dump"):
            c = c.model_dump()
        if not isinstance(c, dict):
            continue
        metric = _get(c, "metric", "address")
        if not metric:
            continue
        a = _get(c, "a", "encoder_a", "baseline", "reference", "left")
        b = _get(c, "b", "encoder_b", "candidate", "right", "encoder")
        p = _num(_get(c, "p_value", "p", "pvalue"))
        alpha = _num(_get(c, "alpha")) or 0.05
        sig = _get(c, "significant")
        if sig is None:
            sig = p is not None and p < alpha
        winner = _get(c, "winner", "better")
        diff = _num(_get(c, "diff", "delta", "difference"))
        ci = _get(c, "ci", "diff_ci", "delta_ci")
        out.append({"metric": str(metric), "a": a, "b": b, "diff": diff, "ci": ci,
                    "p_value": p, "significant": bool(sig), "winner": winner,
                    "diff_text": fmt(diff), "ci_text": fmt_ci(ci), "p_text": fmt_p(p),
                    "value_a": _num(_get(c, "value_a", "a_value", "baseline_value")),
                    "value_b": _num(_get(c, "value_b", "b_value", "candidate_value")),
                    "stars": stars(p) if sig else "", "main": bool(_get(c, "main")),
                    "method": str(_get(c, "method", default="")),
                    "note": str(_get(c, "note", default="")),
                    "machine_dependent": bool(_get(c, "machine_dependent"))})
    return out


def split_comparisons(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(main-metric rows, the others); all rows are "main" when none is marked."""
    if not any(r["main"] for r in rows):
        return rows, []
    return [r for r in rows if r["main"]], [r for r in rows if not r["main"]]


def stars(p: float | None) -> str:
    if p is None:
        return "*"
    return "***" if p < 0.001 else "**" if p < 0.01 else "*"


# --------------------------------------------------------------------------- tables
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
            cells.append({"value": fmt(m.value), "ci": fmt_ci(m.ci),
                          "n": "" if m.n is None else fmt(int(m.n)),
                          "std": "" if m.std is None else f"± {fmt(m.std)}"})
        rows.append({"metric": n, "main": n == main, "direction": "↑" if hib in (None, True)
                     else "↓", "cells": cells})
    errors = [{"series": s.label, "error": s.comps[cid].error} for s in series
              if cid in s.comps and s.comps[cid].error]
    seconds = [fmt_s(s.comps[cid].seconds) if cid in s.comps else "–" for s in series]
    return {"id": cid, "main": main, "rows": rows, "errors": errors, "seconds": seconds,
            **info}


def retention_rows(run: RunResults) -> list[dict]:
    """Encoder variants (quantised, truncated...): the share of the base's score kept."""
    rows = []
    ret = _extra(run, "retention")
    if not isinstance(ret, dict):
        return rows
    for vid, r in ret.items():
        if not isinstance(r, dict):
            continue
        settings = r.get("settings")
        settings = ", ".join(f"{k}={v}" for k, v in settings.items()) \
            if isinstance(settings, dict) else fmt(settings) if settings else ""
        for metric, m in (r.get("metrics") or {}).items():
            if not isinstance(m, dict):
                continue
            rr = _num(m.get("retention"))
            rows.append({"variant": vid, "base": str(r.get("base") or "–"),
                         "settings": settings, "metric": metric,
                         "value": fmt(_num(m.get("variant"))), "base_value": fmt(_num(m.get("base"))),
                         "retention": "–" if rr is None else f"{100 * rr:.2f}%"})
    return rows


def metadata(run: RunResults, label: str) -> dict:
    env = run.environment or {}
    versions = [("evalharness", env.get("evalharness")), ("python", env.get("python")),
                ("platform", env.get("platform"))]
    versions += sorted((env.get("packages") or {}).items())
    datasets = []
    for name, d in run.datasets.items():
        d = d or {}
        rows = d.get("rows")
        known = {"split", "rows", "checksum", "layout", "origin", "path"}
        sizes = " · ".join(f"{k} {fmt(v)}" for k, v in d.items()
                           if k not in known and isinstance(v, (int, float, str)))
        datasets.append({"name": name, "split": fmt(d.get("split")) if d.get("split") else "–",
                         "rows": fmt(rows) if rows is not None else "–",
                         "checksum": str(d.get("checksum") or "–"),
                         "source": str(d.get("layout") or d.get("origin") or ""),
                         "sizes": sizes, "path": str(d.get("path") or "")})
    encoders = []
    for eid, rec in run.encoders.items():
        extra = rec.model_dump(exclude_none=True)
        encoders.append({
            "id": eid, "spec": rec.spec, "dim": fmt(rec.dim) if rec.dim else "–",
            "fingerprint": rec.fingerprint or "–",
            "hits": fmt(int(rec.cache.get("hits", 0))),
            "misses": fmt(int(rec.cache.get("misses", 0))),
            "tps": fmt(_num(extra.get("texts_per_second")), 1)
            if extra.get("texts_per_second") else "–",
            "seconds": {k: fmt_s(rec.seconds.get(k)) for k in
                        ("load", "plan", "encode", "evaluate")},
            "error": rec.error})
    return {"label": label, "suite": run.suite, "created": run.created,
            "schema_version": run.schema_version,
            "versions": [(k, str(v)) for k, v in versions if v],
            "datasets": datasets, "encoders": encoders,
            "run_seconds": [(k, fmt_s(v)) for k, v in (run.seconds or {}).items()],
            "description": str(_extra(run, "description") or "")}


def build_context(runs: list[RunResults]) -> dict:
    """Everything the templates show, as plain strings and lists (no figures)."""
    if not runs:
        from evalharness.errors import UserError

        raise UserError("no results to report")
    labels = run_labels(runs)
    series = build_series(runs)
    order = component_order(series)
    run_ctx = []
    for i, run in enumerate(runs):
        comps = comparisons(run)
        main_c, other_c = split_comparisons(comps)
        run_ctx.append({"label": labels[i], "suite": run.suite, "created": run.created,
                        "banner": banner(run), "gates": gate_rows(run),
                        "comparisons": comps, "comparisons_main": main_c,
                        "comparisons_other": other_c, "meta": metadata(run, labels[i]),
                        "retention": retention_rows(run)})
    tables = [metric_table(cid, series) for cid, _, _ in order]
    passed = all(r.passed for r in runs)
    title = (f"evalharness report: {runs[0].suite}" if len(runs) == 1
             else f"evalharness comparison: {', '.join(dict.fromkeys(labels))}")
    return {"title": title, "runs": run_ctx, "series": [s.label for s in series],
            "tables": tables, "passed": passed, "multi_run": len(runs) > 1,
            "_series": series, "_runs": runs}


# --------------------------------------------------------------------------- figures
def _series_comp(series: list[Series], cid: str):
    for s in series:
        comp = s.comps.get(cid)
        if comp is not None and not comp.error:
            yield s, comp


def _mark(run_comps: list[dict], address: str, encoder: str) -> str:
    for c in run_comps:
        if c["metric"] == address and c["significant"] and c["winner"] == encoder:
            return c["stars"]
    return ""


def main_score_groups(ctx: dict) -> list[dict]:
    series: list[Series] = ctx["_series"]
    order = component_order(series)
    tasks = [x for x in order if x[2] != "check"]  # checks' scales differ: own figures
    groups = []
    for cid, _, _ in tasks:
        bars, main = {}, None
        for s, comp in _series_comp(series, cid):
            main = main or comp.main_metric
            m = comp.metrics.get(comp.main_metric or "")
            if m is None or _num(m.value) is None:
                continue
            mark = _mark(ctx["runs"][s.run_index]["comparisons"], f"{cid}.{comp.main_metric}",
                         s.encoder)
            bars[s.label] = {"value": m.value, "ci": m.ci, "mark": mark}
        if bars:
            groups.append({"label": f"{cid}\n{main}", "bars": bars})
    return groups


def _hist_of(details: dict) -> dict | None:
    h = _get(details, "histogram", "histograms", "cosine_histogram")
    if isinstance(h, dict):
        edges = _get(h, "edges", "bin_edges", "bins")
        intra = _get(h, "intra", "intra_class", "same")
        inter = _get(h, "inter", "inter_class", "different")
        if edges and intra and inter and len(intra) == len(inter) == len(edges) - 1:
            return {"edges": edges, "intra": intra, "inter": inter}
    return None


def _recall_curve(details: dict):
    rc = _get(details, "recall_curve", "recall_at_k", "recall@k")
    if isinstance(rc, dict):
        if "k" in rc and ("recall" in rc or "value" in rc):
            ks, vs = rc["k"], rc.get("recall", rc.get("value"))
        else:
            pairs = []
            for k, v in rc.items():
                kk = _num(str(k).split("@")[-1].split("_")[-1])
                if kk is not None and _num(v) is not None:
                    pairs.append((kk, float(v)))
            ks, vs = [p[0] for p in pairs], [p[1] for p in pairs]
    elif isinstance(rc, list) and rc and isinstance(rc[0], (list, tuple)):
        ks, vs = [x[0] for x in rc], [x[1] for x in rc]
    else:
        return None
    ks = [_num(k) for k in ks]
    vs = [_num(v) for v in vs]
    pts = [(k, v) for k, v in zip(ks, vs) if k is not None and v is not None and k > 0]
    if len(pts) < 2:
        return None
    return [p[0] for p in pts], [p[1] for p in pts]


def _per_query(comp: ComponentResult) -> tuple[str, list[float]] | None:
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


def _robustness(comp: ComponentResult) -> tuple[dict[str, dict[str, float]], str] | None:
    """perturbation -> metric -> value, and the headline metric name."""
    d = comp.details or {}
    per = _get(d, "per_perturbation", "perturbations", "by_perturbation")
    table: dict[str, dict[str, float]] = {}
    if isinstance(per, dict):
        for p, vals in per.items():
            if isinstance(vals, dict):
                table[str(p)] = {k: float(v) for k, v in vals.items() if _num(v) is not None}
            elif _num(vals) is not None:
                table[str(p)] = {"value": float(vals)}
    elif isinstance(per, list):
        for row in per:
            if isinstance(row, dict) and _get(row, "perturbation", "name"):
                name = str(_get(row, "perturbation", "name"))
                table[name] = {k: float(v) for k, v in row.items()
                               if k not in ("perturbation", "name") and _num(v) is not None
                               and not isinstance(v, bool)}
    if not table:
        # metrics named PERTURBATION_METRIC (or PERTURBATION.METRIC), the perturbations
        # named by the check's details (``changed`` / ``samples``, keyed by perturbation)
        perts = [str(p) for key in ("changed", "samples") if isinstance(d.get(key), dict)
                 for p in d[key]]
        for p in dict.fromkeys(perts):
            for name, m in comp.metrics.items():
                for sep in ("_", "."):
                    if name.startswith(p + sep) and _num(m.value) is not None:
                        table.setdefault(p, {})[name[len(p) + 1:]] = float(m.value)
    table = {p: v for p, v in table.items() if v}
    if not table:
        return None
    names = [n for v in table.values() for n in v]
    for pref in ("mean_cosine", "cosine", "nn_stability", "relative_drop"):
        if pref in names:
            return table, pref
    return table, names[0]


def _examples(comp: ComponentResult, limit: int = 16) -> list[dict]:
    d = comp.details or {}
    ex = _get(d, "examples", "samples", "example_pairs")
    rows = []
    if isinstance(ex, dict):
        for p, pairs in ex.items():
            for pair in (pairs if isinstance(pairs, list) else [])[:2]:
                if isinstance(pair, dict):
                    rows.append({"perturbation": str(p),
                                 "original": str(_get(pair, "original", "text", default="")),
                                 "perturbed": str(_get(pair, "perturbed", "noisy", default="")),
                                 "cosine": fmt(_num(_get(pair, "cosine", "similarity")))})
                elif isinstance(pair, (list, tuple)) and len(pair) >= 2:
                    rows.append({"perturbation": str(p), "original": str(pair[0]),
                                 "perturbed": str(pair[1]),
                                 "cosine": fmt(_num(pair[2])) if len(pair) > 2 else "–"})
    elif isinstance(ex, list):
        for pair in ex:
            if isinstance(pair, dict):
                rows.append({"perturbation": str(_get(pair, "perturbation", "name", default="")),
                             "original": str(_get(pair, "original", "text", default="")),
                             "perturbed": str(_get(pair, "perturbed", "noisy", default="")),
                             "cosine": fmt(_num(_get(pair, "cosine", "similarity")))})
    return rows[:limit]


def component_figures(ctx: dict, cid: str, ctype: str) -> tuple[list[dict], dict]:
    """Figures (and extra tables) for one component, from whatever its details hold."""
    from evalharness.report import figures as F

    series: list[Series] = ctx["_series"]
    present = list(_series_comp(series, cid))
    figs: list[dict] = []
    extra: dict = {}
    if not present:
        return figs, extra

    # classification: confusion matrix per series
    for s, comp in present[:4]:
        cm = _get(comp.details, "confusion_matrix")
        if cm:
            labels = _get(comp.details, "labels", "label_names")
            uri = F.confusion_matrix(cm, labels, title=f"{cid}: {F.short(s.label, 24)}")
            if uri:
                figs.append({"uri": uri, "alt": f"confusion matrix of {cid} for {s.label}",
                             "caption": f"Confusion matrix of {cid} ({s.label}): counts, "
                                        "colour = fraction of the true class (row).",
                             "small": True})

    # retrieval: per-query distribution and recall@k
    per_query = {s.label: pq for s, comp in present if (pq := _per_query(comp))}
    if per_query and (ctype == "retrieval" or "per_query_distribution" in
                      (present[0][1].details or {})):
        key = next(iter(per_query.values()))[0]
        uri = F.score_distribution({k: v for k, (_, v) in per_query.items()}, metric=key,
                                   title=f"{cid}: per-query {key}")
        if uri:
            figs.append({"uri": uri, "alt": f"per-query {key} distribution of {cid}",
                         "caption": f"Distribution of per-query {key} (dashed: mean)."})
    curves = {s.label: c for s, comp in present if (c := _recall_curve(comp.details or {}))}
    if curves:
        uri = F.recall_curves(curves, title=f"{cid}: Recall@k")
        if uri:
            figs.append({"uri": uri, "alt": f"recall at k of {cid}",
                         "caption": "Recall@k: fraction of relevant documents in the top k, "
                                    "averaged over queries."})

    # clustering: scores with spread over seeds
    clus = [n for n in ("v_measure", "ari", "ami", "silhouette_pred", "silhouette_gold")
            if any(n in comp.metrics for _, comp in present)]
    if ctype == "clustering" or {"v_measure", "ari"} <= set(clus):
        groups = []
        for n in clus:
            bars = {}
            for s, comp in present:
                m = comp.metrics.get(n)
                if m is None or _num(m.value) is None:
                    continue
                ci = m.ci or ([m.value - m.std, m.value + m.std] if m.std else None)
                bars[s.label] = {"value": m.value, "ci": ci}
            groups.append({"label": n, "bars": bars})
        uri = F.grouped_bars(groups, [s.label for s, _ in present],
                             title=f"{cid}: clustering scores (error bars: ± std over seeds)",
                             ylabel="score")
        if uri:
            figs.append({"uri": uri, "alt": f"clustering scores of {cid}",
                         "caption": "V-measure, ARI, AMI of MiniBatchKMeans against gold "
                                    "labels, and the cosine silhouette."})

    # spectrum
    spectra = {s.label: r for s, comp in present
               if isinstance(r := _get(comp.details, "explained_variance_ratio"), list) and r}
    if spectra:
        uri = F.spectrum_curves(spectra, title=f"{cid}: PCA cumulative explained variance")
        if uri:
            figs.append({"uri": uri, "alt": f"PCA explained variance of {cid}",
                         "caption": "Cumulative explained-variance ratio of the principal "
                                    "components (dashed: 85% and 95%). A curve that rises "
                                    "fast means a few directions dominate the space."})

    # separation
    hists = {}
    for s, comp in present:
        h = _hist_of(comp.details or {})
        if h:
            for name, metric in (("intra_mean", "intra_class_mean"),
                                 ("inter_mean", "inter_class_mean")):
                m = comp.metrics.get(metric)
                if m is not None:
                    h[name] = m.value
            hists[s.label] = h
    if hists:
        uri = F.separation_histograms(hists, title=f"{cid}: intra- vs inter-class cosine")
        if uri:
            figs.append({"uri": uri, "alt": f"intra and inter class cosine histograms of {cid}",
                         "caption": "Cosine similarity of same-class pairs against "
                                    "different-class pairs (dashed: means). Less overlap = "
                                    "classes better separated."})

    # robustness
    rob = {s.label: r for s, comp in present if (r := _robustness(comp))}
    if rob:
        headline = next(iter(rob.values()))[1]
        values: dict[str, dict[str, float]] = {}
        for label, (table, _) in rob.items():
            for p, vals in table.items():
                if headline in vals:
                    values.setdefault(p, {})[label] = vals[headline]
        uri = F.robustness_bars(values, metric=headline,
                                title=f"{cid}: {headline} per perturbation")
        if uri:
            figs.append({"uri": uri, "alt": f"robustness of {cid} per perturbation",
                         "caption": f"{headline} between each text and its perturbed copy, "
                                    "per perturbation."})
        metric_names = list(dict.fromkeys(n for table, _ in rob.values()
                                          for vals in table.values() for n in vals))
        extra["perturbations"] = {
            "metrics": metric_names,
            "rows": [{"series": label, "perturbation": p,
                      "values": [fmt(vals.get(n)) for n in metric_names]}
                     for label, (table, _) in rob.items() for p, vals in table.items()]}
    # example pairs: the perturbations are seeded and the same for every encoder
    for s, comp in present:
        examples = _examples(comp)
        if examples:
            extra["examples"] = examples
            extra["examples_cosine"] = any(r["cosine"] != "–" for r in examples)
            break

    # STS: cosine against gold
    if ctype == "sts":
        pairs = {}
        for s, comp in present:
            items = comp.items or {}
            if isinstance(items.get("gold"), list) and isinstance(items.get("cosine"), list):
                pairs[s.label] = (items["gold"], items["cosine"])
        if pairs:
            uri = F.sts_scatter(pairs, title=f"{cid}: cosine similarity against gold score")
            if uri:
                figs.append({"uri": uri, "alt": f"cosine against gold for {cid}",
                             "caption": "Each dot is a sentence pair (at most 1,500 shown); "
                                        "Spearman measures how monotone this cloud is."})
    return figs, extra


def geometry_points(ctx: dict) -> dict[str, tuple[float, float]]:
    """Series -> (alignment, uniformity) from any component reporting either metric."""
    points = {}
    for s in ctx["_series"]:
        a = u = None
        for comp in s.comps.values():
            if comp.error:
                continue
            if a is None and "alignment" in comp.metrics:
                a = _num(comp.metrics["alignment"].value)
            if u is None and "uniformity" in comp.metrics:
                u = _num(comp.metrics["uniformity"].value)
        if a is not None and u is not None:
            points[s.label] = (a, u)
    return points


def add_figures(ctx: dict) -> dict:
    from evalharness.report import figures as F

    series = ctx["series"]
    ctx["overview_figure"] = None
    if len(series) >= 2:
        groups = main_score_groups(ctx)
        uri = F.grouped_bars(groups, series, title="Main score per task (95% bootstrap CI)",
                             ylabel="main metric")
        if uri:
            ctx["overview_figure"] = {
                "uri": uri, "alt": "main score of every task per encoder",
                "caption": "Main metric of each task with its 95% bootstrap confidence "
                           "interval. Stars mark the significantly better encoder of a "
                           "paired comparison (* p<0.05, ** p<0.01, *** p<0.001)."
                           if any(r["comparisons"] for r in ctx["runs"]) else
                           "Main metric of each task with its 95% bootstrap confidence "
                           "interval."}
    for table in ctx["tables"]:
        table["figures"], table["extra"] = component_figures(ctx, table["id"],
                                                             table.get("type", ""))
    pts = geometry_points(ctx)
    ctx["geometry_figure"] = None
    if pts:
        uri = F.alignment_uniformity(pts, title="Alignment and uniformity")
        if uri:
            ctx["geometry_figure"] = {
                "uri": uri, "alt": "alignment against uniformity, one point per encoder",
                "caption": "Wang & Isola (2020). Alignment: mean squared distance "
                           "E‖x−y‖² between normalised vectors of positive pairs (lower = "
                           "pairs closer). Uniformity: log E exp(−2‖x−y‖²) over all pairs "
                           "(lower = vectors spread more evenly on the sphere). Better "
                           "encoders sit towards the lower left."}
    return ctx


# --------------------------------------------------------------------------- render
def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    return env


def render_html(runs: list[RunResults]) -> str:
    ctx = add_figures(build_context(list(runs)))
    return environment().get_template("report.html.j2").render(**ctx)
