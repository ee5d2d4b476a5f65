"""``reports/index.html``: every run found under a reports folder (one sub-folder per run
holding ``results.json``), newest first, with a trend figure of each main score across
the runs of each suite. Links point at the runs' own ``report.html`` (relative paths)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from urllib.parse import quote

from evalharness.atomic import write_atomic
from evalharness.formatting import fmt
from evalharness.results import SCHEMA_VERSION

MAX_RUNS = 200  # newest runs shown (and plotted); older ones are listed by count only


def _main_scores(results: dict) -> dict[str, dict[str, float]]:
    """``{"cid.metric": {encoder: value}}`` of each component's main metric."""
    out: dict[str, dict[str, float]] = {}
    for enc, comps in (results or {}).items():
        for cid, comp in (comps or {}).items():
            if not isinstance(comp, dict) or comp.get("error"):
                continue
            main = comp.get("main_metric")
            m = (comp.get("metrics") or {}).get(main or "")
            v = m.get("value") if isinstance(m, dict) else None
            if isinstance(v, (int, float)) and math.isfinite(v):
                out.setdefault(f"{cid}.{main}", {})[enc] = float(v)
    return out


def scan_runs(root: str | Path) -> list[dict]:
    """Runs under ``root`` (``*/results.json``), oldest first; unreadable files skipped."""
    runs = []
    for path in sorted(Path(root).glob("*/results.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
            continue
        verdicts = data.get("verdicts") or []
        failed = sum(1 for v in verdicts if not v.get("passed") and v.get("severity") == "error")
        warned = sum(1 for v in verdicts if not v.get("passed") and v.get("severity") != "error")
        folder = path.parent
        report = folder / "report.html"
        runs.append({
            "folder": folder.name,
            "href": quote(f"{folder.name}/{'report.html' if report.exists() else 'results.json'}"),
            "suite": str(data.get("suite", "?")),
            "created": str(data.get("created", "")),
            "passed": bool(data.get("passed")),
            "status": "fail" if not data.get("passed") else "warn" if warned else "pass",
            "gates": f"{len(verdicts) - failed - warned}/{len(verdicts)} passed"
                     + (f", {warned} warn" if warned else ""),
            "encoders": list((data.get("encoders") or {}).keys()),
            "scores": _main_scores(data.get("results") or {}),
            "seconds": (data.get("seconds") or {}).get("total"),
        })
    runs.sort(key=lambda r: (r["created"], r["folder"]))
    return runs


def trend_figures(runs: list[dict]) -> list[dict]:
    """One figure per suite: main score (panel per metric, line per encoder) over runs."""
    from evalharness.report import figures as F

    out = []
    suites = list(dict.fromkeys(r["suite"] for r in runs))
    for suite in suites:
        mine = [r for r in runs if r["suite"] == suite]
        labels = [r["created"].replace("T", " ").rstrip("Z")[:16] or r["folder"] for r in mine]
        panels: dict[str, dict[str, list]] = {}
        for i, r in enumerate(mine):
            for metric, per in r["scores"].items():
                for enc, v in per.items():
                    panels.setdefault(metric, {}).setdefault(enc, []).append((i, v))
        uri = F.trends(panels, labels, title=f"suite {suite}: main score per run")
        if uri:
            out.append({"suite": suite, "uri": uri, "runs": len(mine),
                        "alt": f"main scores across runs of suite {suite}"})
    return out


def render_index(root: str | Path) -> str:
    from evalharness.report.html import environment

    runs = scan_runs(root)
    older = max(0, len(runs) - MAX_RUNS)
    runs = runs[older:]
    metrics = list(dict.fromkeys(m for r in runs for m in r["scores"]))
    rows = []
    for r in reversed(runs):  # one row per (run, encoder); run cells on its first row
        encoders = r["encoders"] or [""]
        for i, enc in enumerate(encoders):
            cells = [fmt(r["scores"].get(m, {}).get(enc), style="fixed", missing="")
                     for m in metrics]
            rows.append({**r, "first": i == 0, "span": len(encoders), "encoder": enc,
                         "cells": cells, "seconds": fmt(r["seconds"], 1, style="fixed",
                                                        missing="")})
    return environment().get_template("index.html.j2").render(
        title=f"evalharness runs in {Path(root).resolve().name}", rows=rows, metrics=metrics,
        figures=trend_figures(runs), older=older, n_runs=len(runs))


def write_index(root: str | Path) -> Path:
    path = Path(root) / "index.html"
    write_atomic(path, render_index(root))
    return path
