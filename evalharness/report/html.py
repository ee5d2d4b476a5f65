"""The HTML report: one self-contained file (inline CSS, figures as SVG data URIs, no
script, no external requests), rendered by a jinja2 template with autoescaping.

``render_html(runs)`` takes one run (a report) or several (a comparison). What the page
shows comes from :func:`evalharness.report.context.build_context` (shared with the
Markdown report); this module only chooses the figures for what the results hold, draws
them with :mod:`evalharness.report.figures`, and renders the template.
"""

from __future__ import annotations

from pathlib import Path

from evalharness.report import context as C
from evalharness.results import RunResults

TEMPLATES = Path(__file__).parent / "templates"


def _figure(uri: str | None, alt: str, caption: str, **more) -> list[dict]:
    return [{"uri": uri, "alt": alt, "caption": caption, **more}] if uri else []


def component_figures(ctx: dict, cid: str, ctype: str) -> list[dict]:
    """Figures for one component, from whatever its details and items hold."""
    from evalharness.report import figures as F

    present = list(C.series_components(ctx["_series"], cid))
    figs: list[dict] = []
    if not present:
        return figs

    # classification: confusion matrix per series
    for s, comp in present[:4]:
        cm = C.lookup(comp.details, "confusion_matrix")
        if cm:
            labels = C.lookup(comp.details, "labels", "label_names")
            figs += _figure(F.confusion_matrix(cm, labels, title=f"{cid}: {F.short(s.label, 24)}"),
                            f"confusion matrix of {cid} for {s.label}",
                            f"Confusion matrix of {cid} ({s.label}): counts, colour = fraction "
                            "of the true class (row).", small=True)

    # retrieval: per-query distribution and recall@k
    per_query = {s.label: pq for s, comp in present if (pq := C.per_query(comp))}
    if per_query and (ctype == "retrieval" or "per_query_distribution" in
                      (present[0][1].details or {})):
        key = next(iter(per_query.values()))[0]
        figs += _figure(F.score_distribution({k: v for k, (_, v) in per_query.items()},
                                             metric=key, title=f"{cid}: per-query {key}"),
                        f"per-query {key} distribution of {cid}",
                        f"Distribution of per-query {key} (dashed: mean).")
    curves = {s.label: c for s, comp in present if (c := C.recall_curve(comp.details or {}))}
    if curves:
        figs += _figure(F.recall_curves(curves, title=f"{cid}: Recall@k"),
                        f"recall at k of {cid}",
                        "Recall@k: fraction of relevant documents in the top k, averaged "
                        "over queries.")

    # clustering: scores with spread over seeds
    clus = [n for n in ("v_measure", "ari", "ami", "silhouette_pred", "silhouette_gold")
            if any(n in comp.metrics for _, comp in present)]
    if ctype == "clustering" or {"v_measure", "ari"} <= set(clus):
        groups = []
        for n in clus:
            bars = {}
            for s, comp in present:
                m = comp.metrics.get(n)
                if m is None or C.as_float(m.value) is None:
                    continue
                ci = m.ci or ([m.value - m.std, m.value + m.std] if m.std else None)
                bars[s.label] = {"value": m.value, "ci": ci}
            groups.append({"label": n, "bars": bars})
        figs += _figure(F.grouped_bars(groups, [s.label for s, _ in present],
                                       title=f"{cid}: clustering scores (error bars: ± std "
                                             "over seeds)", ylabel="score"),
                        f"clustering scores of {cid}",
                        "V-measure, ARI, AMI of MiniBatchKMeans against gold labels, and "
                        "the cosine silhouette.")

    # spectrum
    spectra = {s.label: r for s, comp in present
               if isinstance(r := C.lookup(comp.details, "explained_variance_ratio"), list) and r}
    if spectra:
        figs += _figure(F.spectrum_curves(spectra, title=f"{cid}: PCA cumulative explained "
                                                         "variance"),
                        f"PCA explained variance of {cid}",
                        "Cumulative explained-variance ratio of the principal components "
                        "(dashed: 85% and 95%). A curve that rises fast means a few "
                        "directions dominate the space.")

    # separation
    hists = {}
    for s, comp in present:
        h = C.histogram(comp.details or {})
        if h:
            for name, metric in (("intra_mean", "intra_class_mean"),
                                 ("inter_mean", "inter_class_mean")):
                m = comp.metrics.get(metric)
                if m is not None:
                    h[name] = m.value
            hists[s.label] = h
    if hists:
        figs += _figure(F.separation_histograms(hists, title=f"{cid}: intra- vs inter-class "
                                                             "cosine"),
                        f"intra and inter class cosine histograms of {cid}",
                        "Cosine similarity of same-class pairs against different-class "
                        "pairs (dashed: means). Less overlap = classes better separated.")

    # robustness
    rob = {s.label: r for s, comp in present if (r := C.robustness_table(comp))}
    if rob:
        headline = next(iter(rob.values()))[1]
        values: dict[str, dict[str, float]] = {}
        for label, (table, _) in rob.items():
            for p, vals in table.items():
                if headline in vals:
                    values.setdefault(p, {})[label] = vals[headline]
        figs += _figure(F.robustness_bars(values, metric=headline,
                                          title=f"{cid}: {headline} per perturbation"),
                        f"robustness of {cid} per perturbation",
                        f"{headline} between each text and its perturbed copy, per "
                        "perturbation.")

    # STS: cosine against gold
    if ctype == "sts":
        pairs = {}
        for s, comp in present:
            items = comp.items or {}
            if isinstance(items.get("gold"), list) and isinstance(items.get("cosine"), list):
                pairs[s.label] = (items["gold"], items["cosine"])
        if pairs:
            figs += _figure(F.sts_scatter(pairs, title=f"{cid}: cosine similarity against "
                                                       "gold score"),
                            f"cosine against gold for {cid}",
                            "Each dot is a sentence pair (at most 1,500 shown); Spearman "
                            "measures how monotone this cloud is.")
    return figs


def add_figures(ctx: dict) -> dict:
    from evalharness.report import figures as F

    series = ctx["series"]
    ctx["overview_figure"] = None
    if len(series) >= 2:
        uri = F.grouped_bars(C.main_score_groups(ctx), series,
                             title="Main score per task (95% bootstrap CI)",
                             ylabel="main metric")
        caption = "Main metric of each task with its 95% bootstrap confidence interval."
        if any(r["comparisons"] for r in ctx["runs"]):
            caption += (" Stars mark the significantly better encoder of a paired comparison "
                        "(* p<0.05, ** p<0.01, *** p<0.001).")
        ctx["overview_figure"] = next(iter(_figure(uri, "main score of every task per encoder",
                                                   caption)), None)
    for table in ctx["tables"]:
        table["figures"] = component_figures(ctx, table["id"], table.get("type", ""))
    pts = C.geometry_points(ctx["_series"])
    ctx["geometry_figure"] = None
    if pts:
        ctx["geometry_figure"] = next(iter(_figure(
            F.alignment_uniformity(pts, title="Alignment and uniformity"),
            "alignment against uniformity, one point per encoder",
            "Wang & Isola (2020). Alignment: mean squared distance E‖x−y‖² between "
            "normalised vectors of positive pairs (lower = pairs closer). Uniformity: "
            "log E exp(−2‖x−y‖²) over all pairs (lower = vectors spread more evenly on the "
            "sphere). Better encoders sit towards the lower left.")), None)
    return ctx


def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


def render_html(runs: list[RunResults]) -> str:
    ctx = add_figures(C.build_context(list(runs)))
    return environment().get_template("report.html.j2").render(**ctx)
