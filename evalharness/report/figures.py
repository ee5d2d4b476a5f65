"""Report figures: matplotlib (object API, no pyplot state) rendered to SVG data URIs.

Every function takes plain data (lists, dicts of floats keyed by series label) and returns
``data:image/svg+xml;base64,...`` or ``None`` when there is nothing to draw. Figures go
into the page as ``<img src="data:...">``: self-contained, and text inside a figure (an
encoder id, a label name) can never become markup of the page.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import matplotlib
import matplotlib.lines

matplotlib.use("Agg", force=False)  # never needs a display; pyplot is not used

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from evalharness.formatting import fmt  # noqa: E402

# Colour-blind safe (Okabe-Ito), one colour per series in every figure.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
           "#000000"]
MAX_SERIES = 8

_RC = {
    "svg.fonttype": "none",  # text stays text: small files, crisp and selectable
    "svg.hashsalt": "evalharness",  # deterministic element ids
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.family": ["DejaVu Sans", "sans-serif"],
}


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _fig(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def to_data_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _render(draw, width: float, height: float) -> str | None:
    with matplotlib.rc_context(_RC):
        fig = _fig(width, height)
        if draw(fig) is False:
            return None
        return to_data_uri(fig)


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def short(label: str, n: int = 28) -> str:
    label = str(label)
    return label if len(label) <= n else label[: n - 1] + "…"


# --------------------------------------------------------------------------- comparisons
def grouped_bars(groups: Sequence[dict], series: Sequence[str], *, title: str,
                 ylabel: str) -> str | None:
    """Bars grouped by ``group["label"]``, one bar per series, CI error bars.

    ``group["bars"][series] = {"value", "ci": [lo, hi] | None, "mark": "*"|""}``.
    """
    series = list(series)[:MAX_SERIES]
    groups = [g for g in groups if any(_finite((g["bars"].get(s) or {}).get("value"))
                                       for s in series)]
    if not groups or not series:
        return None

    def draw(fig):
        ax = fig.add_subplot()
        n = len(series)
        width = 0.8 / n
        x = np.arange(len(groups))
        lows = []
        for i, s in enumerate(series):
            vals, err_lo, err_hi = [], [], []
            for g in groups:
                bar = g["bars"].get(s) or {}
                v = bar.get("value")
                v = float(v) if _finite(v) else np.nan
                ci = bar.get("ci")
                if ci and _finite(ci[0]) and _finite(ci[1]) and np.isfinite(v):
                    err_lo.append(max(0.0, v - ci[0]))
                    err_hi.append(max(0.0, ci[1] - v))
                else:
                    err_lo.append(0.0)
                    err_hi.append(0.0)
                vals.append(v)
            pos = x - 0.4 + width * (i + 0.5)
            ax.bar(pos, vals, width * 0.92, color=color(i), label=short(s),
                   yerr=[err_lo, err_hi], capsize=3, error_kw={"elinewidth": 1})
            lows.extend(v for v in vals if np.isfinite(v))
            for j, g in enumerate(groups):
                bar = g["bars"].get(s) or {}
                mark = bar.get("mark")
                if mark and np.isfinite(vals[j]):
                    top = vals[j] + err_hi[j] if vals[j] >= 0 else vals[j] - err_lo[j]
                    ax.annotate(mark, (pos[j], top), xytext=(0, 2 if vals[j] >= 0 else -12),
                                textcoords="offset points", ha="center", fontsize=12,
                                fontweight="bold")
        tilt = len(groups) > 7 or (len(groups) > 4 and len(series) < 3)
        ax.set_xticks(x, [short(g["label"], 32) for g in groups],
                      rotation=20 if tilt else 0, ha="right" if tilt else "center")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        if lows and min(lows) >= 0:
            ax.set_ylim(0, max(1.0, max(lows) * 1.12))
        ax.axhline(0, color="#444", linewidth=0.8)
        ax.legend(title="encoder", loc="upper left", bbox_to_anchor=(1.0, 1.0))

    width = min(13.0, max(6.0, 0.6 * len(groups) * max(1, len(series)) + 2.5))
    return _render(draw, width, 3.8)


# --------------------------------------------------------------------------- intrinsic
def spectrum_curves(curves: dict[str, Sequence[float]], *, title: str) -> str | None:
    """Cumulative explained variance of PCA components, one line per series."""
    curves = {k: np.asarray(v, float) for k, v in list(curves.items())[:MAX_SERIES]
              if v is not None and len(v)}
    if not curves:
        return None

    def draw(fig):
        ax = fig.add_subplot()
        for i, (label, ratio) in enumerate(curves.items()):
            cum = np.cumsum(np.clip(ratio, 0, None))
            ax.plot(np.arange(1, len(cum) + 1), 100 * cum, color=color(i),
                    label=f"{short(label)} ({len(cum)} comp.)")
        for level in (85, 95):
            ax.axhline(level, color="#777", linestyle="--", linewidth=0.8)
            ax.annotate(f"{level}%", (1, level), xytext=(2, 2), textcoords="offset points",
                        fontsize=8, color="#555")
        ax.set_xscale("log")
        ax.set_xlabel("number of principal components (log scale)")
        ax.set_ylabel("cumulative explained variance (%)")
        ax.set_ylim(0, 101)
        ax.set_title(title)
        ax.legend(title="encoder", loc="lower right")

    return _render(draw, 6.4, 3.8)


def separation_histograms(hists: dict[str, dict], *, title: str) -> str | None:
    """Intra- vs inter-class cosine histograms, one panel per series.

    ``hists[label] = {"edges": [...], "intra": counts, "inter": counts}`` (counts are
    normalised to densities here).
    """
    hists = dict(list(hists.items())[:MAX_SERIES])
    if not hists:
        return None
    n = len(hists)
    cols = min(n, 3)
    rows = math.ceil(n / cols)

    def draw(fig):
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
        for k, (label, h) in enumerate(hists.items()):
            ax = axes[k // cols][k % cols]
            edges = np.asarray(h["edges"], float)
            widths = np.diff(edges)
            for name, col, legend in (("intra", "#0072B2", "same class (intra)"),
                                      ("inter", "#D55E00", "different class (inter)")):
                counts = np.asarray(h[name], float)
                total = counts.sum()
                dens = counts / (total * widths) if total > 0 else counts
                ax.stairs(dens, edges, fill=True, alpha=0.35, color=col, label=legend)
                ax.stairs(dens, edges, color=col, linewidth=1.2)
                mean = h.get(f"{name}_mean")
                if _finite(mean):
                    ax.axvline(mean, color=col, linestyle="--", linewidth=1)
            ax.set_title(short(label, 40))
            ax.set_xlabel("cosine similarity")
            ax.set_ylabel("density")
            if k == 0:
                ax.legend(loc="upper left", fontsize=8)
        for k in range(n, rows * cols):
            axes[k // cols][k % cols].set_visible(False)
        fig.suptitle(title)

    return _render(draw, 3.6 * cols + 0.6, 2.9 * rows + 0.5)


def robustness_bars(values: dict[str, dict[str, float]], *, metric: str,
                    title: str) -> str | None:
    """``values[perturbation][series] = value``: one group per perturbation."""
    series: list[str] = []
    for per in values.values():
        for s in per:
            if s not in series:
                series.append(s)
    groups = [{"label": p, "bars": {s: {"value": v} for s, v in per.items()}}
              for p, per in values.items()]
    return grouped_bars(groups, series, title=title, ylabel=metric)


def alignment_uniformity(points: dict[str, tuple[float, float]], *, title: str) -> str | None:
    """One point per series: alignment (x, lower is better), uniformity (y, lower is better)."""
    points = {k: v for k, v in points.items() if _finite(v[0]) and _finite(v[1])}
    if not points:
        return None

    def draw(fig):
        ax = fig.add_subplot()
        for i, (label, (a, u)) in enumerate(list(points.items())[:MAX_SERIES]):
            ax.scatter([a], [u], s=70, color=color(i), label=short(label), zorder=3,
                       edgecolor="black", linewidth=0.6)
            ax.annotate(short(label, 16), (a, u), xytext=(6, 4), textcoords="offset points",
                        fontsize=9)
        ax.set_xlabel("alignment: E‖x−y‖², positive pairs (lower is better)")
        ax.set_ylabel("uniformity (lower is better)")
        ax.set_title(title)
        ax.margins(0.25)
        ax.legend(title="encoder", loc="best")

    return _render(draw, 6.0, 4.0)


# --------------------------------------------------------------------------- tasks
def confusion_matrix(matrix: Sequence[Sequence[float]], labels: Sequence[str] | None, *,
                     title: str) -> str | None:
    """Row-normalised confusion matrix (true class per row), counts annotated when small."""
    m = np.asarray(matrix, float)
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[0] != m.shape[1]:
        return None
    k = m.shape[0]
    labels = [short(x, 22) for x in (labels or [])]
    if len(labels) != k:
        labels = [str(i) for i in range(k)]
    rows = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    side = min(9.0, max(3.8, 0.42 * k + 2.2))

    def draw(fig):
        ax = fig.add_subplot()
        ax.grid(False)
        im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), labels, rotation=45 if k > 3 else 0, ha="right" if k > 3
                      else "center", fontsize=8 if k > 8 else 9)
        ax.set_yticks(range(k), labels, fontsize=8 if k > 8 else 9)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(title)
        if k <= 12:
            for i in range(k):
                for j in range(k):
                    x = float(m[i, j])
                    ax.text(j, i, fmt(int(x), grouping=False) if x.is_integer()
                            else fmt(x, 2, style="general"), ha="center", va="center",
                            fontsize=8,
                            color="white" if norm[i, j] > 0.6 else "black")
        fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class")

    return _render(draw, side + 1.2, side)


def score_distribution(scores: dict[str, Sequence[float]], *, metric: str,
                       title: str) -> str | None:
    """Per-query score histograms (one step line per series), means dashed."""
    scores = {k: np.asarray([x for x in v if _finite(x)], float)
              for k, v in list(scores.items())[:MAX_SERIES]}
    scores = {k: v for k, v in scores.items() if len(v)}
    if not scores:
        return None
    lo = min(0.0, min(float(v.min()) for v in scores.values()))
    hi = max(1.0, max(float(v.max()) for v in scores.values()))
    edges = np.linspace(lo, hi, 21)

    def draw(fig):
        ax = fig.add_subplot()
        for i, (label, v) in enumerate(scores.items()):
            counts, _ = np.histogram(v, bins=edges)
            ax.stairs(100 * counts / len(v), edges, color=color(i), linewidth=1.6,
                      label=f"{short(label)} ({fmt(float(v.mean()), 3, style='fixed')}, "
                            f"{len(v)})")
            ax.axvline(v.mean(), color=color(i), linestyle="--", linewidth=1)
        ax.set_xlabel(f"per-query {metric}")
        ax.set_ylabel("queries (%)")
        ax.set_title(title)
        ax.legend(title="encoder (mean, queries)", loc="upper left", bbox_to_anchor=(1.0, 1.0))

    return _render(draw, 7.6, 3.6)


def recall_curves(curves: dict[str, tuple[Sequence[float], Sequence[float]]], *,
                  title: str) -> str | None:
    """Recall@k against k (log x), one line per series."""
    curves = {k: (np.asarray(x, float), np.asarray(y, float))
              for k, (x, y) in list(curves.items())[:MAX_SERIES] if len(x)}
    if not curves:
        return None

    def draw(fig):
        ax = fig.add_subplot()
        for i, (label, (ks, rec)) in enumerate(curves.items()):
            order = np.argsort(ks)
            ax.plot(ks[order], rec[order], marker="o", markersize=3, color=color(i),
                    label=short(label))
        ax.set_xscale("log")
        ax.set_xlabel("k (retrieved documents, log scale)")
        ax.set_ylabel("Recall@k")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.legend(title="encoder", loc="lower right")

    return _render(draw, 6.0, 3.6)


def sts_scatter(pairs: dict[str, tuple[Sequence[float], Sequence[float]]], *,
                title: str, max_points: int = 1500) -> str | None:
    """Cosine against gold similarity, one panel per series (subsampled, seeded)."""
    pairs = dict(list(pairs.items())[:4])
    if not pairs:
        return None
    n = len(pairs)

    def draw(fig):
        axes = fig.subplots(1, n, squeeze=False, sharey=False)[0]
        rng = np.random.default_rng(0)
        for k, (label, (gold, cos)) in enumerate(pairs.items()):
            gold = np.asarray(gold, float)
            cos = np.asarray(cos, float)
            idx = np.arange(len(gold))
            if len(idx) > max_points:
                idx = np.sort(rng.choice(len(idx), max_points, replace=False))
            ax = axes[k]
            ax.scatter(gold[idx], cos[idx], s=4, alpha=0.35, color=color(k), linewidths=0,
                       rasterized=True)
            ax.set_title(short(label, 40))
            ax.set_xlabel("gold similarity")
            ax.set_ylabel("cosine similarity")
        fig.suptitle(title)

    return _render(draw, 3.4 * n + 0.6, 3.2)


# --------------------------------------------------------------------------- index
def trends(panels: dict[str, dict[str, list[tuple[int, float]]]], run_labels: list[str], *,
           title: str, max_panels: int = 12) -> str | None:
    """Main score across runs: one panel per metric, one line per encoder.

    ``panels[metric][encoder] = [(run_index, value), ...]``.
    """
    panels = {k: v for k, v in panels.items() if any(len(p) for p in v.values())}
    panels = dict(list(panels.items())[:max_panels])
    if not panels or not run_labels:
        return None
    n = len(panels)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    ticks = list(range(len(run_labels)))
    step = max(1, len(ticks) // 8)

    def draw(fig):
        axes = fig.subplots(rows, cols, squeeze=False)
        encoders: list[str] = []
        for per in panels.values():
            for e in per:
                if e not in encoders:
                    encoders.append(e)
        for k, (metric, per) in enumerate(panels.items()):
            ax = axes[k // cols][k % cols]
            for enc, pts in per.items():
                if not pts:
                    continue
                xs, ys = zip(*sorted(pts))
                i = encoders.index(enc)
                ax.plot(xs, ys, marker="o", markersize=4, color=color(i), label=short(enc))
            ax.set_title(short(metric, 44))
            ax.set_xticks(ticks[::step], [run_labels[t] for t in ticks[::step]], rotation=30,
                          ha="right", fontsize=7)
            ax.set_xlabel("run (UTC)")
            ax.set_ylabel("score")
        for k in range(n, rows * cols):
            axes[k // cols][k % cols].set_visible(False)
        fig.suptitle(title)
        handles = [matplotlib.lines.Line2D([], [], color=color(i), marker="o", label=short(e))
                   for i, e in enumerate(encoders)]
        fig.legend(handles=handles, title="encoder", loc="outside lower center",
                   ncols=min(len(handles), 4))

    return _render(draw, 4.0 * cols + 0.6, 3.2 * rows + 1.0)
