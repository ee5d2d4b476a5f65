"""What a report tells its user (issue 20): a run without thresholds says "no gates" in
a neutral style (report banner, Markdown, gate summary, the CLI's verdict line);
``report --format junit`` writes JUnit; rows used vs rows in the file, the encoders'
model facts and engine, and task prompts are shown; results imported from MTEB files
(scores only, no per-item arrays) render, their comparisons saying "no paired test"."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from test_report_html import check_html, synthetic_run

from evalharness.cli import main
from evalharness.compare import compare_encoders
from evalharness.console import verdict_line
from evalharness.report.gate_summary import render_gate_summary
from evalharness.report.html import render_html
from evalharness.report.markdown import render_markdown
from evalharness.results import (ComponentResult, EncoderRecord, Metric, RunResults, Verdict,
                                 save_results)


def _ungated() -> RunResults:
    run = synthetic_run(encoders=("minilm",))
    run.results = {"minilm": {"stsb": run.results["minilm"]["stsb"]}}
    run.verdicts, run.passed, run.comparisons = [], True, None
    return run


def _verdict(passed: bool, severity: str = "error") -> Verdict:
    return Verdict(encoder="m", metric="t.x", op=">=", threshold=0.5,
                   value=0.6 if passed else 0.4, severity=severity, passed=passed)


# --------------------------------------------------------------------------- no gates
def test_run_without_thresholds_is_neutral_not_passed():
    run = _ungated()
    html = render_html([run])
    check_html(html)
    banner = re.search(r'<div class="banner (\w+)" role="status">\s*<strong>([^<]+)</strong>',
                       html)
    assert banner.groups() == ("none", "NO GATES")
    assert "nothing was gated" in html and 'class="banner pass"' not in html
    assert ".banner.none { background: var(--bg-alt)" in html  # neutral grey, not green
    md = render_markdown([run])
    assert "**⚪ NO GATES**: no thresholds: nothing was gated" in md and "✅" not in md
    summary = render_gate_summary(run)
    assert summary.startswith("### ⚪ evalharness gate — standard: NO GATES")
    assert "PASSED" not in summary


def test_verdict_line():
    run = _ungated()
    assert verdict_line(run, 0) == "verdict: no gates (no thresholds: nothing was checked)"
    run.verdicts = [_verdict(True), _verdict(True)]
    assert verdict_line(run, 0) == "verdict: PASSED (2 of 2 gate checks passed)"
    run.verdicts.append(_verdict(False, "warn"))
    assert verdict_line(run, 0) == "verdict: PASSED with 1 warning(s) (2 of 3 gate checks passed)"
    run.verdicts.append(_verdict(False))
    assert verdict_line(run, 1) == "verdict: FAILED (1 of 4 gate checks failed)"
    assert verdict_line(run, 2) == "verdict: ERROR (bad input)"
    assert verdict_line(run, 3) == "verdict: ERROR (encoder or internal failure)"
    assert verdict_line(_ungated(), 130) == "verdict: ERROR (exit 130)"


# --------------------------------------------------------------------------- report --format
def test_report_format_junit_writes_junit(tmp_path, capsys):
    a, b = synthetic_run(), synthetic_run(created="2026-11-26T10:00:00Z")
    b.suite = "other"
    save_results(a, tmp_path / "a.json")
    save_results(b, tmp_path / "b.json")
    out = tmp_path / "j.xml"
    assert main(["report", str(tmp_path / "a.json"), "--format", "junit", "-o", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites" and [s.get("name") for s in root] == ["standard"]
    # 3 verdicts: 1 failed (error), 1 skipped (warn), 1 passed
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "1")
    # two runs: one testsuite each, the totals summed; to stdout without -o
    capsys.readouterr()
    assert main(["report", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--format", "junit"]) == 0
    root = ET.fromstring(capsys.readouterr().out.split("\n", 1)[1])
    assert [s.get("name") for s in root] == ["standard", "other"]
    assert (root.get("tests"), root.get("failures")) == ("6", "2")
    # html stays the default
    assert main(["report", str(tmp_path / "a.json"), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


# --------------------------------------------------------------------------- run facts
def _with_facts() -> RunResults:
    run = synthetic_run()
    run.datasets["stsb"]["rows_used"] = 300
    run.encoders["minilm"].model = {"name": "sentence-transformers/all-MiniLM-L6-v2",
                                    "revision": "c9745ed1", "parameters": 22713216,
                                    "dim": 384, "max_tokens": 256, "device": "cpu",
                                    "dtype": "float32", "truncated": 3, "texts": 7559}
    run.encoders["minilm"].engine = {"engine": "local", "workers": 1}
    enc2 = next(e for e in run.encoders if e != "minilm")
    run.encoders[enc2].model = {"name": "tfidf-lsa", "dim": 256}  # the others missing
    run.results["minilm"]["stsb"].details = {"prompts": {"query": "query: ",
                                                         "document": "passage: <b>"}}
    run.results[enc2]["stsb"].details = {"prompts": "Represent the sentence: "}
    return run


def _table(html: str, cls: str) -> list[list[str]]:
    block = re.search(rf'<table class="{cls}">(.*?)</table>', html, flags=re.S).group(1)
    return [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>",
                                                                   row, flags=re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", block, flags=re.S)]


def test_rows_used_model_facts_engine_and_prompts_in_html():
    html = render_html([_with_facts()])
    check_html(html)
    ds = _table(html, "datasets")
    assert ds[0][:4] == ["dataset", "split", "rows used", "rows in file"]
    assert ds[1][:4] == ["stsb", "test", "300", "1,379"]
    assert ds[2][2:4] == ["–", "7,600"]  # no subset recorded for this one
    models = _table(html, "models")
    assert models[0] == ["encoder", "name", "revision", "parameters", "dim", "max tokens",
                         "device", "dtype", "truncated", "engine"]
    assert models[1] == ["minilm", "sentence-transformers/all-MiniLM-L6-v2", "c9745ed1",
                         "22,713,216", "384", "256", "cpu", "float32", "3 of 7,559",
                         "local (workers: 1)"]
    assert models[2][1:3] == ["tfidf-lsa", "–"] and models[2][-1] == "–"
    prompts = _table(html, "prompts")
    assert prompts[1:] == [["minilm", "query", "query:"], ["minilm", "document", "passage: &lt;b&gt;"],
                           [prompts[3][0], "all", "Represent the sentence:"]]
    assert "passage: <b>" not in html


def test_rows_used_model_facts_and_prompts_in_markdown():
    md = render_markdown([_with_facts()])
    assert "| dataset | split | rows used | rows in file | checksum |" in md
    assert "| stsb | test | 300 | 1,379 | sha256:abc |" in md
    assert ("| minilm | sentence-transformers/all-MiniLM-L6-v2 | c9745ed1 | 22,713,216 | 384 | "
            "256 | cpu | float32 | 3 of 7,559 | local (workers: 1) |") in md
    assert "| minilm | document | passage: &lt;b> |" in md


def test_without_facts_the_tables_stay_as_they_were():
    html = render_html([synthetic_run()])
    assert '<table class="models">' not in html and '<table class="prompts">' not in html
    assert _table(html, "datasets")[0][:3] == ["dataset", "split", "rows"]
    assert "rows used" not in render_markdown([synthetic_run()])


# --------------------------------------------------------------------------- MTEB imports
def _imported() -> RunResults:
    """Two models' scores as imported from MTEB result files: values only (no CI, n,
    per-item arrays or details), and the paired comparisons the harness computes."""
    run = RunResults(suite="mteb-import", created="2026-11-27T00:00:00Z",
                     datasets={"STSBenchmark": {"split": "test"}})
    for name, v in (("all-MiniLM-L6-v2", 0.8203), ("bge-small-en-v1.5", 0.8559)):
        run.encoders[name] = EncoderRecord(spec=f"mteb-results:{name}",
                                           model={"name": name, "revision": "main"})
        run.results[name] = {
            "STSBenchmark": ComponentResult(type="sts", dataset="STSBenchmark",
                                            main_metric="cosine_spearman",
                                            metrics={"cosine_spearman": Metric(value=v),
                                                     "main_score": Metric(value=v)}),
            "Banking77Classification": ComponentResult(
                type="classification", main_metric="accuracy",
                metrics={"accuracy": Metric(value=v - 0.02)})}
    run.comparisons = compare_encoders(run)
    return run


def test_mteb_imported_results_render_with_no_paired_test():
    run = _imported()
    assert run.comparisons and all(c["p_value"] is None for c in run.comparisons)
    html = render_html([run])
    check_html(html)
    rows = _table(html, "comparisons")
    assert rows[1][0] == "STSBenchmark.cosine_spearman" and rows[1][5] == "0.0356"
    assert rows[1][8] == "no paired test" and "no per-item" in rows[1][9]
    assert html.count("no paired test") == len(run.comparisons)
    assert "main score of every task per encoder" in html  # bars without CIs still drawn
    md = render_markdown([run])
    assert md.count("no paired test") == len(run.comparisons)
    # with a run of the harness's own, as two series
    own = synthetic_run(encoders=("minilm",))
    check_html(render_html([run, own]))
    assert "no paired test" in render_markdown([run, own])
