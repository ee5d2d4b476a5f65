"""CI outputs of ``evalharness gate``: JUnit XML (one testcase per verdict, failures with
value and threshold, warnings as skipped, broken components as errors) and the compact
Markdown summary for a PR comment / $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from evalharness.cli import main
from evalharness.results import (ComponentResult, EncoderRecord, Metric, RunResults, Verdict,
                                 save_results)
from evalharness.report.gate_summary import render_gate_summary
from evalharness.report.junit import render_junit


def _results() -> RunResults:
    res = RunResults(suite="ci", created="2026-01-01T00:00:00Z", seconds={"total": 12.5})
    res.encoders = {"mini": EncoderRecord(spec="minilm"), "lsa": EncoderRecord(spec="tfidf-lsa")}
    res.results = {
        "mini": {"stsb": ComponentResult(type="sts", seconds=1.25,
                                         metrics={"cosine_spearman": Metric(value=0.82)})},
        "lsa": {"stsb": ComponentResult(type="sts", metrics={"cosine_spearman": Metric(value=0.5)}),
                "news20": ComponentResult(type="clustering", error="MemoryError: too big")},
    }
    res.verdicts = [
        Verdict(encoder="mini", metric="stsb.cosine_spearman", op=">=", threshold=0.75,
                value=0.82, severity="error", passed=True),
        Verdict(encoder="lsa", metric="stsb.cosine_spearman", op=">=", threshold=0.75,
                value=0.5, severity="error", passed=False),
        Verdict(encoder="lsa", metric="stsb.cosine_spearman", op="between", threshold=[0.6, 0.9],
                value=0.5, severity="warn", passed=False),
        Verdict(encoder="mini", metric="stsb.cosine_spearman", op="regression", threshold=0.84,
                value=0.82, severity="error", passed=False, baseline=0.85, delta=-0.03,
                tolerance=0.01, higher_is_better=True, p_value=0.002),
        Verdict(encoder="lsa", metric="news20.v_measure", op=">=", threshold=0.3, value=None,
                severity="error", passed=False, confidence="lower"),
    ]
    return res


def test_junit_parses_and_counts():
    root = ET.fromstring(render_junit(_results()))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "ci"
    cases = suite.findall("testcase")
    # 5 verdicts + 1 component that could not be computed
    assert suite.get("tests") == "6" and len(cases) == 6
    assert suite.get("failures") == "3"   # error-severity verdicts that failed
    assert suite.get("skipped") == "1"    # the warn-severity failure
    assert suite.get("errors") == "1"     # news20 for lsa
    assert float(suite.get("time")) == 12.5
    assert root.get("tests") == "6" and root.get("failures") == "3"
    assert len(suite.findall("testcase/failure")) == 3
    assert len(suite.findall("testcase/skipped")) == 1
    assert len(suite.findall("testcase/error")) == 1
    for case in cases:
        assert case.get("classname").startswith("evalharness.ci.")
        float(case.get("time"))


def test_junit_failure_carries_value_and_threshold():
    root = ET.fromstring(render_junit(_results()))
    cases = {(c.get("classname"), c.get("name")): c for c in root.iter("testcase")}
    ok = cases[("evalharness.ci.mini", "stsb.cosine_spearman >= 0.75")]
    assert list(ok) == [] and ok.get("time") == "1.250"
    fail = cases[("evalharness.ci.lsa", "stsb.cosine_spearman >= 0.75")].find("failure")
    assert fail.get("type") == "threshold"
    assert "0.5" in fail.get("message") and "0.75" in fail.get("message")
    reg = cases[("evalharness.ci.mini", "stsb.cosine_spearman no regression (tolerance 0.01)")]
    f = reg.find("failure")
    assert f.get("type") == "regression"
    assert "baseline 0.85" in f.get("message") and "p=0.002" in f.get("message")
    warn = cases[("evalharness.ci.lsa", "stsb.cosine_spearman between [0.6, 0.9]")]
    assert warn.find("failure") is None
    assert warn.find("skipped").get("message").startswith("warning: value 0.5")
    missing = cases[("evalharness.ci.lsa", "news20.v_measure >= 0.3")].find("failure")
    assert "lower CI bound missing" in missing.get("message")
    err = cases[("evalharness.ci.lsa", "news20 (clustering)")].find("error")
    assert err.get("message") == "MemoryError: too big"


def test_junit_all_passing():
    res = _results()
    res.verdicts = res.verdicts[:1]
    res.results["lsa"].pop("news20")
    suite = ET.fromstring(render_junit(res)).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("1", "0", "0", "0")


def test_markdown_summary_is_compact_and_failures_first():
    md = render_gate_summary(_results())
    lines = md.splitlines()
    assert lines[0] == "### ❌ evalharness gate — ci: FAILED"
    assert "3 failed, 1 warning(s), 1 passed of 5 check(s)." in md
    assert "Could not be computed: lsa/news20." in md
    table = [ln for ln in lines if ln.startswith("| ")]
    header = "| | encoder | metric | value | required | severity |"
    assert table[0] == header
    assert table[1].startswith("| ❌ | lsa | `stsb.cosine_spearman` | 0.5000 | ≥ 0.7500")
    assert any(ln.startswith("| ⚠️ | lsa |") and "between [0.6000, 0.9000]" in ln for ln in table)
    assert any("-0.0300, p=0.002" in ln and "baseline 0.8500 ± 0.0100" in ln for ln in table)
    assert any("— | ≥ 0.3000 (lower CI bound)" in ln for ln in table)
    # passing verdicts are folded away
    assert "<details><summary>1 passed</summary>" in md
    assert md.index("<details>") < md.index("| ✅ | mini |")


def test_markdown_passed_and_empty():
    res = _results()
    res.verdicts = res.verdicts[:1]
    res.results["lsa"].pop("news20")
    assert render_gate_summary(res).startswith("### ✅ evalharness gate — ci: PASSED")
    res.verdicts = []
    assert "nothing was gated" in render_gate_summary(res)


def test_markdown_escapes_pipes():
    res = _results()
    res.verdicts = [Verdict(encoder="a|b", metric="t.m", op=">=", threshold=1.0, value=0.0,
                            severity="error", passed=False)]
    assert "| a\\|b |" in render_gate_summary(res)


@pytest.fixture
def results_file(tmp_path):
    res = _results()
    res.verdicts = []
    res.thresholds = [{"metric": "stsb.cosine_spearman", "min": 0.75},
                      {"metric": "stsb.cosine_spearman", "min": 0.9, "severity": "warn",
                       "encoders": ["mini"]}]
    save_results(res, tmp_path / "results.json")
    return tmp_path / "results.json"


def test_cli_gate_writes_junit_and_markdown(results_file, tmp_path, capsys):
    junit, md = tmp_path / "out" / "junit.xml", tmp_path / "out" / "gate.md"
    code = main(["gate", str(results_file), "--junit", str(junit), "--markdown", str(md)])
    assert code == 1  # lsa misses the error-severity 0.75
    suite = ET.parse(junit).getroot().find("testsuite")
    # 2 verdicts of the first threshold + 1 of the second + the broken component
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"),
            suite.get("errors")) == ("4", "1", "1", "1")
    assert md.read_text().startswith("### ❌ evalharness gate — ci: FAILED")
    assert "verdict: FAILED" in capsys.readouterr().out


def test_cli_gate_markdown_to_stdout(results_file, capsys):
    """``--markdown -``: only the Markdown on stdout (>> $GITHUB_STEP_SUMMARY)."""
    assert main(["gate", str(results_file), "--markdown", "-"]) == 1
    cap = capsys.readouterr()
    assert cap.out.startswith("### ❌ evalharness gate")
    assert "verdict: FAILED" in cap.err and "verdict:" not in cap.out
