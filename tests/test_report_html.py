"""HTML and Markdown reports: well-formed, self-contained, escaped, every section present
exactly when the results hold its data; the index of runs; the CLI ``report`` command."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest

from evalharness.results import (ComponentResult, EncoderRecord, Metric, RunResults,
                                 Verdict, load_results, save_results)

EVIL = "<script>alert(1)</script>"
EVIL_ENCODER = f"lsa{EVIL}"
EVIL_TEXT = f"A man {EVIL} plays & sings"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


# --------------------------------------------------------------------------- fixtures
def _metric(value, n=100, ci=0.02, hib=True, std=None, stat=None, inputs=None):
    return Metric(value=value, ci=None if ci is None else [value - ci, value + ci], n=n,
                  higher_is_better=hib, std=std, stat=stat, inputs=inputs)


def synthetic_run(encoders=("minilm", EVIL_ENCODER), *, created="2026-11-25T10:00:00Z",
                  shift: float = 0.0, seed: int = 0) -> RunResults:
    """A two-encoder run holding every kind of detail the tasks and checks write (the key
    names of evalharness/tasks/*.py and evalharness/checks/*.py), with planted markup."""
    rng = np.random.default_rng(seed)
    run = RunResults(suite="standard", created=created,
                     environment={"evalharness": "0.1.0", "python": "3.11.7",
                                  "packages": {"numpy": "2.0"}},
                     datasets={"stsb": {"split": "test", "rows": 1379,
                                        "checksum": "sha256:abc", "layout": "pairs"},
                               f"agnews{EVIL}": {"split": "test", "rows": 7600,
                                                 "checksum": "sha256:def"}})
    labels = ["World", "Sports", "Business", f"Sci/Tech {EVIL}"]
    for e, enc in enumerate(encoders):
        good = 1.0 - 0.3 * e + shift
        run.encoders[enc] = EncoderRecord(
            spec="minilm" if e == 0 else f"tfidf-lsa?dim=256&x={EVIL}",
            fingerprint=f"fp{e}{EVIL}", dim=384 - 128 * e, cache={"hits": 10, "misses": 5},
            seconds={"load": 1.5, "plan": 0.1, "encode": 12.0, "evaluate": 2.0})
        gold = rng.uniform(0, 5, 200)
        cos = np.clip(gold / 5 * good + rng.normal(0, 0.15, 200), -1, 1)
        cm = (np.eye(4) * 200 * good + rng.integers(0, 30, (4, 4))).astype(int)
        ratio = np.sort(rng.dirichlet(np.full(64, 0.3 + 0.5 * e)))[::-1]
        edges = np.linspace(-1, 1, 41)
        intra = np.histogram(rng.normal(0.5 * good, 0.15, 3000), edges)[0]
        inter = np.histogram(rng.normal(0.1, 0.15, 9000), edges)[0]
        ndcg = np.clip(rng.beta(2 * good + 0.5, 1.5, 43), 0, 1)
        recall = np.minimum(1, np.cumsum(rng.uniform(0, 0.05 * good, 100)) + 0.2)
        res = {
            "stsb": ComponentResult(
                type="sts", kind="task", seconds=0.4, dataset="stsb",
                main_metric="cosine_spearman",
                metrics={"cosine_spearman": _metric(0.82 * good, 1379, stat="spearman",
                                                    inputs=["gold", "cosine"]),
                         "cosine_pearson": _metric(0.83 * good, 1379)},
                items={"id": list(range(200)), "gold": gold.tolist(), "cosine": cos.tolist()}),
            "agnews": ComponentResult(
                type="classification", kind="task", seconds=3.0, dataset=f"agnews{EVIL}",
                main_metric="accuracy",
                metrics={"accuracy": _metric(0.89 * good, 7600), "macro_f1": _metric(0.88 * good)},
                details={"protocol": "linear-probe", "labels": labels,
                         "confusion_matrix": cm.tolist()}),
            "news20": ComponentResult(
                type="clustering", kind="task", seconds=5.0, dataset="twentynewsgroups",
                main_metric="v_measure",
                metrics={"v_measure": _metric(0.45 * good, ci=None, std=0.01),
                         "ari": _metric(0.3 * good, ci=None, std=0.02),
                         "ami": _metric(0.44 * good, ci=None, std=0.01),
                         "silhouette_pred": _metric(0.05, ci=None, std=0.003),
                         "davies_bouldin_pred": _metric(3.2, ci=None, hib=False)},
                details={"per_seed": {"v_measure": [0.44, 0.46]}}),
            "msmarco": ComponentResult(
                type="retrieval", kind="task", seconds=8.0, dataset="msmarco",
                main_metric="ndcg_at_10",
                metrics={"ndcg_at_10": _metric(float(ndcg.mean()), 43),
                         "recall_at_100": _metric(float(recall[-1]), 43)},
                details={"recall_curve": {"k": list(range(1, 101)),
                                          "recall": recall.tolist()},
                         "per_query_distribution": {"metric": "ndcg_at_10"}},
                items={"id": [f"q{i}" for i in range(43)], "ndcg_at_10": ndcg.tolist()}),
            "uniformity": ComponentResult(
                type="uniformity", kind="check", main_metric="uniformity",
                metrics={"uniformity": _metric(-2.5 * good, ci=None, hib=False)}),
            "alignment": ComponentResult(
                type="alignment", kind="check", main_metric="alignment",
                metrics={"alignment": _metric(0.3 + 0.2 * e, hib=False)}),
            "spectrum": ComponentResult(
                type="spectrum", kind="check", main_metric="effective_rank",
                metrics={"effective_rank": _metric(40.0 - 10 * e, ci=None),
                         "components_95": _metric(30.0, ci=None)},
                details={"explained_variance_ratio": ratio.tolist()}),
            "separation": ComponentResult(
                type="separation", kind="check", main_metric="auc",
                metrics={"auc": _metric(0.8 * good, ci=None),
                         "intra_class_mean": _metric(0.5 * good, ci=None),
                         "inter_class_mean": _metric(0.1, ci=None, hib=False)},
                details={"histogram": {"edges": edges.tolist(), "intra": intra.tolist(),
                                       "inter": inter.tolist()}}),
            "robustness": ComponentResult(
                type="robustness", kind="check", main_metric="mean_cosine",
                metrics={"mean_cosine": _metric(0.9 * good),
                         **{f"{p}_mean_cosine": _metric(v * good)
                            for p, v in (("synonym", 0.9), ("swap", 0.95), ("typo", 0.8))},
                         **{f"{p}_nn_stability": _metric(v * good)
                            for p, v in (("synonym", 0.7), ("swap", 0.8), ("typo", 0.6))}},
                details={"rate": 0.1, "changed": {"synonym": 0.9, "swap": 0.95, "typo": 1.0},
                         "samples": {"synonym": [{"original": EVIL_TEXT,
                                                  "perturbed": "A man <b>performs</b> & sings"}],
                                     "swap": [{"original": "one two three",
                                               "perturbed": "two one three"}],
                                     "typo": [{"original": "hello world",
                                               "perturbed": "helo world"}]}}),
        }
        run.results[enc] = res
    run.verdicts = [
        Verdict(encoder="minilm", metric="stsb.cosine_spearman", op=">=", threshold=0.8,
                value=0.82, severity="error", passed=True),
        Verdict(encoder=EVIL_ENCODER, metric="stsb.cosine_spearman", op=">=", threshold=0.8,
                value=0.57, severity="warn", passed=False),
        Verdict(encoder=EVIL_ENCODER, metric="agnews.accuracy", op="between",
                threshold=[0.8, 1.0], value=0.62, severity="error", passed=False),
    ]
    run.passed = False
    run.comparisons = [
        {"metric": "stsb.cosine_spearman", "a": "minilm", "b": EVIL_ENCODER,
         "encoder_a": "minilm", "encoder_b": EVIL_ENCODER, "main": True, "value_a": 0.82,
         "value_b": 0.57, "diff": -0.25, "ci": [-0.3, -0.2], "p_value": 0.0009,
         "significant": True, "winner": "minilm", "alpha": 0.05},
        {"metric": "agnews.macro_f1", "a": "minilm", "b": EVIL_ENCODER, "main": False,
         "value_a": 0.88, "value_b": 0.87, "diff": -0.01, "ci": [-0.03, 0.01],
         "p_value": 0.4, "significant": False, "winner": None},
    ]
    return run


def sts_only_run() -> RunResults:
    run = synthetic_run(encoders=("minilm",))
    run.results = {"minilm": {"stsb": run.results["minilm"]["stsb"]}}
    run.verdicts = run.verdicts[:1]
    run.passed = True
    del run.comparisons
    return run


# --------------------------------------------------------------------------- checks
class _Checker(HTMLParser):
    """Strict-ish structure check: every non-void element closed in order; collects
    every URL-valued attribute, tag names and visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.imgs: list[dict] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        for k, v in attrs:
            if k in ("src", "href", "action", "srcset", "poster", "data", "formaction") or \
                    k.startswith("on"):
                self.urls.append((tag, k, v or ""))
        if tag == "img":
            self.imgs.append(a)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_html(html: str) -> _Checker:
    assert html.startswith("<!DOCTYPE html>")
    c = _Checker()
    c.feed(html)
    c.close()
    assert not c.errors, c.errors[:5]
    assert not c.stack, f"unclosed: {c.stack}"
    return c


def assert_self_contained(c: _Checker, html: str) -> None:
    for tag, attr, url in c.urls:
        assert not attr.startswith("on"), f"event handler on <{tag}>"
        assert url.startswith("data:") or url.startswith("#"), (tag, attr, url[:80])
    assert "script" not in c.tags and "link" not in c.tags and "iframe" not in c.tags
    style = "".join(re.findall(r"<style>(.*?)</style>", html, flags=re.S))
    assert "@import" not in style and "url(" not in style


def figure_svgs(c: _Checker) -> dict[str, str]:
    """alt text -> decoded SVG of every <img>."""
    out = {}
    for img in c.imgs:
        prefix = "data:image/svg+xml;base64,"
        assert img["src"].startswith(prefix)
        svg = base64.b64decode(img["src"][len(prefix):]).decode("utf-8")
        ET.fromstring(svg)  # well-formed XML
        assert img.get("alt")
        out[img["alt"]] = svg
    return out


def svg_text(svg: str) -> str:
    root = ET.fromstring(svg)
    return " ".join(t for el in root.iter() if el.tag.endswith("text")
                    for t in el.itertext())


# --------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def full_html() -> str:
    from evalharness.report.html import render_html

    return render_html([synthetic_run()])


def test_full_report_is_well_formed_self_contained_and_escaped(full_html):
    html = full_html
    c = check_html(html)
    assert_self_contained(c, html)
    # planted markup: shown, escaped, never live
    assert "<script" not in html.lower()
    assert "<b>performs</b>" not in html
    assert html.count("lsa&lt;script&gt;alert(1)&lt;/script&gt;") >= 3  # ids in tables
    assert "A man &lt;script&gt;alert(1)&lt;/script&gt; plays &amp; sings" in html
    assert "A man &lt;b&gt;performs&lt;/b&gt; &amp; sings" in html
    assert "agnews&lt;script&gt;" in html and "fp1&lt;script&gt;" in html
    text = " ".join(c.text)
    assert EVIL_ENCODER in text and EVIL_TEXT in text  # the user sees the text as written


def test_full_report_sections_and_figures(full_html):
    html = full_html
    c = check_html(html)
    svgs = figure_svgs(c)
    alts = " | ".join(svgs)
    for expected in ("main score of every task per encoder", "confusion matrix of agnews",
                     "per-query ndcg_at_10 distribution of msmarco", "recall at k of msmarco",
                     "clustering scores of news20", "PCA explained variance of spectrum",
                     "intra and inter class cosine histograms of separation",
                     "robustness of robustness per perturbation",
                     "alignment against uniformity", "cosine against gold for stsb"):
        assert expected in alts, expected
    # legible figures: titles and axis labels with units are in the SVG text
    pca = svg_text(svgs["PCA explained variance of spectrum"])
    assert "cumulative explained variance (%)" in pca and "principal components" in pca
    bars = svg_text(svgs["main score of every task per encoder"])
    assert "main metric" in bars and "minilm" in bars and "***" in bars  # p = 0.0009
    sep = svg_text(svgs["intra and inter class cosine histograms of separation"])
    assert "cosine similarity" in sep and "density" in sep and "same class (intra)" in sep
    cm = svg_text(next(v for k, v in svgs.items() if k.startswith("confusion matrix")))
    assert "predicted class" in cm and "true class" in cm and "Sports" in cm
    # the planted label name is only XML text inside the figure, escaped by matplotlib
    assert "<script>" not in next(v for k, v in svgs.items() if k.startswith("confusion"))
    # gate table: one row per verdict with its status; banner says FAILED
    assert re.search(r'class="banner fail"', html)
    assert html.count('<span class="status fail">') == 1
    assert html.count('<span class="status warn">') == 1
    assert "in [0.8000, 1.0000]" in html and "&gt;= 0.8000" in html
    # comparison table with the winner and p-value
    assert "&lt; 0.001" in html and "no significant difference" in html
    # robustness: per-perturbation table and examples
    assert '<table class="perturbations">' in html and "helo world" in html
    # metadata
    for s in ("sha256:abc", "fp0", "tfidf-lsa?dim=256&amp;x=", "numpy", "12.00"):
        assert s in html, s


def test_values_and_confidence_intervals_in_tables(full_html):
    run = synthetic_run()
    html = full_html
    m = run.results["minilm"]["stsb"].metrics["cosine_spearman"]
    assert f"{m.value:.4f}" in html
    assert f"[{m.ci[0]:.4f}, {m.ci[1]:.4f}]" in html
    assert "± 0.0100" in html  # clustering std over seeds


def test_sts_only_report_renders_without_other_sections():
    from evalharness.report.html import render_html

    html = render_html([sts_only_run()])
    c = check_html(html)
    assert_self_contained(c, html)
    svgs = figure_svgs(c)
    assert list(svgs) == ["cosine against gold for stsb"]
    for absent in ('id="geometry"', 'id="comparison"', "confusion", "Recall@k",
                   "perturbations", "explained variance"):
        assert absent not in html, absent
    assert 'class="banner pass"' in html


def test_errors_and_missing_values_render():
    from evalharness.report.html import render_html
    from evalharness.report.markdown import render_markdown

    run = synthetic_run()
    run.encoders["broken"] = EncoderRecord(spec="py:nowhere:f", error=f"cannot import {EVIL}")
    run.results["broken"] = {}
    run.results["minilm"]["agnews"] = ComponentResult(type="classification",
                                                      error="ValueError: boom")
    run.results["minilm"]["stsb"].metrics["cosine_pearson"] = Metric(value=None)
    run.results["minilm"]["spectrum"].details = {"explained_variance_ratio": "garbage"}
    run.results["minilm"]["separation"].details = {"histogram": {"edges": [0, 1]}}
    run.results[EVIL_ENCODER]["msmarco"].details = {"recall_curve": 5}
    html = render_html([run])
    check_html(html)
    assert "ValueError: boom" in html and "cannot import &lt;script&gt;" in html
    md = render_markdown([run])
    assert "ValueError: boom" in md and "<script>" not in md


def test_two_runs_render_as_a_comparison(tmp_path):
    from evalharness.report.html import render_html

    a = synthetic_run(created="2026-11-24T10:00:00Z")
    b = synthetic_run(created="2026-11-25T10:00:00Z", shift=0.05, seed=1)
    html = render_html([a, b])
    c = check_html(html)
    assert_self_contained(c, html)
    assert "minilm (standard 2026-11-24 10:00:00)" in html
    assert "minilm (standard 2026-11-25 10:00:00)" in html
    assert html.count('class="banner fail"') == 2
    bars = svg_text(figure_svgs(c)["main score of every task per encoder"])
    assert "2026-11-24" in bars and "2026-11-25" in bars


def test_markdown_tables_escaped_and_complete():
    from evalharness.report.markdown import render_markdown

    run = synthetic_run()
    run.results["minilm"]["stsb"].metrics["cosine_pearson"] = _metric(0.5)
    run.datasets["stsb"]["checksum"] = "sha256:a|b"  # a cell holding a pipe
    md = render_markdown([run])
    assert "<script>" not in md and "data:" not in md and "<img" not in md
    assert "lsa&lt;script>alert(1)&lt;/script>" in md  # no tag can open
    assert "sha256:a\\|b" in md
    # every table row has the header's number of cells (no cell broke the table)
    for block in re.findall(r"((?:^\|.*\|$\n?)+)", md, flags=re.M):
        rows = [r for r in block.strip().split("\n")]
        widths = {len(re.findall(r"(?<!\\)\|", r)) for r in rows}
        assert len(widths) == 1, rows[:3]
    assert "| cosine_spearman (main) | ↑ | 0.8200 | [0.8000, 0.8400] | 1,379 |" in md
    assert "❌ fail" in md and "⚠️ warn" in md and "✅ pass" in md
    assert "stsb.cosine_spearman" in md and "< 0.001" not in md  # '<' escaped
    assert "&lt; 0.001" in md
    assert "## Run metadata" in md and "sha256:def" in md


def test_write_run_reports_and_index(tmp_path):
    from evalharness.report import write_run_reports

    root = tmp_path / "reports"
    runs = [synthetic_run(created=f"2026-11-2{i}T10:00:00Z", shift=0.02 * i, seed=i)
            for i in range(1, 4)]
    for run in runs:  # two tasks without details: the reports stay light
        run.results = {enc: {cid: comp.model_copy(update={"details": {}, "items": None})
                             for cid, comp in comps.items() if cid in ("stsb", "agnews")}
                       for enc, comps in run.results.items()}
    for i, run in enumerate(runs):
        save_results(run, root / f"run{i}" / "results.json")
    (root / "junk").mkdir()
    (root / "junk" / "results.json").write_text("{not json")
    written = write_run_reports(root / "run2", runs[2])
    assert [p.name for p in written] == ["report.html", "index.html"]
    index = (root / "index.html").read_text()
    c = check_html(index)
    hrefs = [u for _, a, u in c.urls if a == "href"]
    # newest first; run2 links its report, the others (no report yet) their results
    assert hrefs == ["run2/report.html", "run1/results.json", "run0/results.json"]
    assert all(u.startswith("data:") for _, a, u in c.urls if a == "src")
    svgs = figure_svgs(c)
    trend = svg_text(svgs["main scores across runs of suite standard"])
    assert "stsb.cosine_spearman" in trend and "minilm" in trend and "run (UTC)" in trend
    assert "&lt;script&gt;" in index and "<script" not in index.lower()
    # a run outside a reports folder writes its report only; someone else's index.html
    # is never overwritten, an index evalharness wrote is refreshed
    other = tmp_path / "elsewhere" / "runX"
    assert [p.name for p in write_run_reports(other, runs[0])] == ["report.html"]
    assert not (tmp_path / "elsewhere" / "index.html").exists()
    (tmp_path / "elsewhere" / "index.html").write_text("<html>mine</html>")
    assert [p.name for p in write_run_reports(other, runs[0])] == ["report.html"]
    assert (tmp_path / "elsewhere" / "index.html").read_text() == "<html>mine</html>"
    renamed = tmp_path / "archive"
    root.rename(renamed)
    assert [p.name for p in write_run_reports(renamed / "run1", runs[1])] == \
        ["report.html", "index.html"]


@pytest.mark.integration
def test_real_sts_run_report_and_cli(shared_data, tmp_path):
    """A real run (random + TF-IDF/LSA encoders, no model) through the runner and the CLI:
    report.html next to results.json, ``report`` as HTML for two runs and as Markdown."""
    from evalharness.cli import main
    from evalharness.report import write_run_reports
    from evalharness.runner import RunOptions, run_suite
    from evalharness.suite import load_suite

    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "suite: tiny\nseed: 1\nbootstrap: 200\n"
        "encoders:\n  rand: random?dim=32&seed=0\n  lsa: {type: tfidf-lsa, dim: 64}\n"
        "tasks:\n  stsb: {type: sts, dataset: stsb, split: test, limit: 300}\n"
        "thresholds:\n  - {metric: stsb.cosine_spearman, min: 0.2, severity: warn}\n")
    outcome = run_suite(load_suite(str(suite)),
                        RunOptions(data_dir=str(shared_data), output=str(tmp_path / "r1"),
                                   no_cache=True, log=None))
    write_run_reports(outcome.folder, outcome.results)
    html = (outcome.folder / "report.html").read_text()
    c = check_html(html)
    assert_self_contained(c, html)
    res = load_results(outcome.folder / "results.json")
    v = res.results["lsa"]["stsb"].metrics["cosine_spearman"].value
    assert f"{v:.4f}" in html and "tfidf-lsa?dim=64" in html
    assert res.datasets["stsb"]["checksum"] in html
    out = tmp_path / "both.html"
    second = tmp_path / "r2.json"
    second.write_text(json.dumps({**json.loads((outcome.folder / "results.json").read_text()),
                                  "created": "2030-01-01T00:00:00Z"}))
    assert main(["report", str(outcome.folder / "results.json"), str(second),
                 "-o", str(out)]) == 0
    both = out.read_text()
    check_html(both)
    assert "rand (tiny 2030-01-01 00:00:00)" in both
    md = tmp_path / "r.md"
    assert main(["report", str(outcome.folder / "results.json"), "--format", "md",
                 "-o", str(md)]) == 0
    text = md.read_text()
    assert text.startswith("# evalharness report: tiny") and f"{v:.4f}" in text


def test_rendering_is_deterministic(full_html):
    from evalharness.report.html import render_html

    assert render_html([synthetic_run()]) == full_html
