"""Quality gates: threshold operators and severities, CI-bound gating, baseline
regression (incl. lower-is-better metrics, machine-dependent metrics, significance),
threshold files and the bad-input errors of ``evalharness gate``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalharness.cli import main
from evalharness.errors import UserError
from evalharness.gate import (evaluate_thresholds, gate, overall_passed, regression_verdicts,
                              run_gate)
from evalharness.gate_files import load_threshold_file, load_thresholds_for
from evalharness.results import ComponentResult, EncoderRecord, Metric, RunResults, save_results
from evalharness.suite import ThresholdSpec, build_suite
from evalharness.yamlio import parse_yaml


def run_of(spec: dict, *, main: dict | None = None, thresholds=()) -> RunResults:
    """spec: {encoder: {component: {metric: value | Metric kwargs}}}."""
    res = RunResults(suite="unit", created="2026-01-01T00:00:00Z",
                     thresholds=[dict(t) for t in thresholds])
    for enc, comps in spec.items():
        res.encoders[enc] = EncoderRecord(spec=f"random?seed={len(res.encoders)}")
        res.results[enc] = {}
        for cid, metrics in comps.items():
            ms = {k: Metric(**v) if isinstance(v, dict) else Metric(value=v)
                  for k, v in metrics.items()}
            res.results[enc][cid] = ComponentResult(
                type="sts", main_metric=(main or {}).get(cid, next(iter(ms))), metrics=ms)
    return res


def th(**kw) -> ThresholdSpec:
    return ThresholdSpec.model_validate(kw)


RES = run_of({"mini": {"stsb": {"cosine_spearman": {"value": 0.80, "ci": [0.78, 0.82]},
                                "cosine_pearson": 0.81}},
              "lsa": {"stsb": {"cosine_spearman": {"value": 0.60, "ci": [0.55, 0.65]},
                               "cosine_pearson": 0.62}}})


# -- operators -----------------------------------------------------------------------------

def test_min_operator_passes_at_and_above_bound_and_fails_below():
    vs = evaluate_thresholds(RES, [th(metric="stsb.cosine_spearman", min=0.80)])
    assert [(v.encoder, v.op, v.threshold, v.value, v.passed) for v in vs] == [
        ("mini", ">=", 0.80, 0.80, True), ("lsa", ">=", 0.80, 0.60, False)]


def test_max_operator():
    vs = evaluate_thresholds(RES, [th(metric="stsb.cosine_pearson", max=0.7)])
    assert [(v.op, v.passed) for v in vs] == [("<=", False), ("<=", True)]


@pytest.mark.parametrize("spec", [{"between": [0.5, 0.7]}, {"min": 0.5, "max": 0.7}])
def test_between_operator(spec):
    vs = evaluate_thresholds(RES, [th(metric="stsb.cosine_spearman", **spec)])
    assert [(v.op, v.threshold, v.passed) for v in vs] == [
        ("between", [0.5, 0.7], False), ("between", [0.5, 0.7], True)]


def test_between_bounds_are_inclusive():
    vs = evaluate_thresholds(RES, [th(metric="stsb.cosine_spearman", between=[0.6, 0.8])])
    assert all(v.passed for v in vs)


def test_encoder_filter_limits_verdicts():
    vs = evaluate_thresholds(RES, [th(metric="stsb.cosine_spearman", min=0.9, encoders=["lsa"])])
    assert [v.encoder for v in vs] == ["lsa"]


def test_missing_metric_value_fails():
    res = run_of({"mini": {"stsb": {"cosine_spearman": {"value": None}}}})
    (v,) = evaluate_thresholds(res, [th(metric="stsb.cosine_spearman", min=0.0)])
    assert v.value is None and not v.passed


# -- severity ------------------------------------------------------------------------------

def test_warn_failure_does_not_fail_the_gate_but_error_does():
    warn = evaluate_thresholds(RES, [th(metric="stsb.cosine_spearman", min=0.7, severity="warn")])
    assert [v.passed for v in warn] == [True, False]
    assert overall_passed(warn) is True
    err = evaluate_thresholds(RES, [th(metric="stsb.cosine_spearman", min=0.7)])
    assert overall_passed(err) is False
    assert overall_passed(warn + [v for v in err if v.passed]) is True


# -- confidence-bound gating ---------------------------------------------------------------

def test_lower_ci_bound_gating():
    t = [th(metric="stsb.cosine_spearman", min=0.79, encoders=["mini"])]
    (point,) = evaluate_thresholds(RES, t)
    (lower,) = evaluate_thresholds(RES, [th(metric="stsb.cosine_spearman", min=0.79,
                                            encoders=["mini"], confidence="lower")])
    assert point.passed and point.value == 0.80
    assert not lower.passed and lower.value == 0.78 and lower.confidence == "lower"


def test_upper_ci_bound_gating():
    t = dict(metric="stsb.cosine_spearman", max=0.81, encoders=["mini"])
    (point,) = evaluate_thresholds(RES, [th(**t)])
    (upper,) = evaluate_thresholds(RES, [th(**t, confidence="upper")])
    assert point.passed
    assert not upper.passed and upper.value == 0.82


def test_ci_bound_falls_back_to_point_without_ci():
    (v,) = evaluate_thresholds(RES, [th(metric="stsb.cosine_pearson", min=0.8,
                                        encoders=["mini"], confidence="lower")])
    assert v.value == 0.81 and v.passed


# -- baseline regression ---------------------------------------------------------------------

def _pair(old: float, new: float, *, hib=True, name="cosine_spearman", extra=None):
    m = lambda v: {"value": v, "higher_is_better": hib, **(extra or {})}  # noqa: E731
    return (run_of({"mini": {"t": {name: m(new)}}}), run_of({"mini": {"t": {name: m(old)}}}))


@pytest.mark.parametrize("old,new,tol,passed", [
    (0.80, 0.80, 0.0, True),     # unchanged
    (0.80, 0.85, 0.0, True),     # better
    (0.80, 0.795, 0.01, True),   # drop within the tolerance
    (0.80, 0.78, 0.01, False),   # drop beyond the tolerance
    (0.80, 0.7999, 0.0, False),  # any drop with tolerance 0
])
def test_regression_higher_is_better(old, new, tol, passed):
    new_res, base = _pair(old, new)
    (v,) = regression_verdicts(new_res, base, tolerance=tol)
    assert v.op == "regression" and v.passed is passed
    assert v.baseline == old and v.value == new
    assert v.delta == pytest.approx(new - old)
    assert v.threshold == pytest.approx(old - tol)


@pytest.mark.parametrize("old,new,passed", [(1.20, 1.25, False), (1.20, 1.205, True),
                                            (1.20, 0.90, True)])
def test_regression_lower_is_better(old, new, passed):
    """Davies-Bouldin: lower is better, so an *increase* is the regression."""
    new_res, base = _pair(old, new, hib=False, name="davies_bouldin_pred")
    (v,) = regression_verdicts(new_res, base, tolerance=0.01)
    assert v.passed is passed
    assert v.higher_is_better is False and v.threshold == pytest.approx(old + 0.01)


def test_regression_main_metrics_by_default_all_on_request():
    base = run_of({"mini": {"stsb": {"cosine_spearman": 0.8, "cosine_pearson": 0.8}}})
    new = run_of({"mini": {"stsb": {"cosine_spearman": 0.8, "cosine_pearson": 0.7}}})
    main_only = regression_verdicts(new, base)
    assert [(v.metric, v.passed) for v in main_only] == [("stsb.cosine_spearman", True)]
    every = regression_verdicts(new, base, metrics="all")
    assert [(v.metric, v.passed) for v in every] == [("stsb.cosine_spearman", True),
                                                     ("stsb.cosine_pearson", False)]


def test_machine_dependent_metrics_are_excluded_unless_asked():
    base = run_of({"mini": {"latency": {"ms_per_text": {"value": 1.0, "higher_is_better": False,
                                                        "machine_dependent": True}}}})
    new = run_of({"mini": {"latency": {"ms_per_text": {"value": 3.0, "higher_is_better": False,
                                                       "machine_dependent": True}}}})
    assert regression_verdicts(new, base) == []
    (v,) = regression_verdicts(new, base, include_machine_dependent=True)
    assert not v.passed


def test_machine_dependent_flag_on_the_component():
    base = run_of({"mini": {"lat": {"p50": 1.0}}})
    new = run_of({"mini": {"lat": {"p50": 0.5}}})
    base.results["mini"]["lat"].machine_dependent = True
    assert regression_verdicts(new, base) == []


def test_regression_matches_the_only_encoder_when_ids_differ():
    base = run_of({"old": {"t": {"m": 0.9}}})
    new = run_of({"new": {"t": {"m": 0.5}}})
    (v,) = regression_verdicts(new, base)
    assert v.encoder == "new" and v.baseline_encoder == "old" and not v.passed


def test_regression_without_shared_encoder_is_bad_input():
    base = run_of({"a": {"t": {"m": 0.9}}, "b": {"t": {"m": 0.9}}})
    new = run_of({"c": {"t": {"m": 0.9}}})
    with pytest.raises(UserError, match="shares no encoder"):
        regression_verdicts(new, base)


def test_regression_fails_when_the_component_now_errors():
    base = run_of({"mini": {"t": {"m": 0.9}}})
    new = run_of({"mini": {}})
    new.results["mini"]["t"] = ComponentResult(type="sts", error="boom")
    (v,) = regression_verdicts(new, base)
    assert not v.passed and v.value is None and "boom" in v.note


def test_negative_tolerance_is_rejected():
    new, base = _pair(0.8, 0.8)
    with pytest.raises(UserError, match="tolerance"):
        regression_verdicts(new, base, tolerance=-0.1)


def _sts_items(cosine, gold):
    return {"id": list(range(len(gold))), "gold": list(map(float, gold)),
            "cosine": list(map(float, cosine))}


def _sts_run(enc, gold, cosine):
    from scipy.stats import spearmanr

    res = run_of({enc: {"stsb": {"cosine_spearman": {
        "value": float(spearmanr(gold, cosine).statistic), "stat": "spearman",
        "inputs": ["gold", "cosine"]}}}})
    res.results[enc]["stsb"].items = _sts_items(cosine, gold)
    return res


def test_significant_regression_needs_a_significant_drop():
    rng = np.random.default_rng(0)
    gold = rng.uniform(0, 5, 400)
    cos = gold / 5 + rng.normal(0, 0.15, 400)
    base = _sts_run("mini", gold, cos)
    big = _sts_run("mini", gold, cos + rng.normal(0, 0.3, 400))          # large planted drop
    tiny = _sts_run("mini", gold, cos + rng.normal(0, 0.01, 400))        # within noise
    drop_tiny = (base.metric("mini", "stsb.cosine_spearman").value
                 - tiny.metric("mini", "stsb.cosine_spearman").value)
    assert drop_tiny > 0  # a real (tiny) drop: the plain gate fails it ...
    (plain,) = regression_verdicts(tiny, base, tolerance=0.0)
    assert not plain.passed
    (sig_tiny,) = regression_verdicts(tiny, base, significant=True, n_boot=500)
    assert sig_tiny.passed and sig_tiny.p_value >= 0.05 and not sig_tiny.significant
    (sig_big,) = regression_verdicts(big, base, significant=True, n_boot=500)
    assert not sig_big.passed and sig_big.p_value < 0.01 and sig_big.significant
    assert sig_big.diff_ci[1] < 0


def test_significant_without_items_uses_the_tolerance_alone():
    new, base = _pair(0.8, 0.7)
    (v,) = regression_verdicts(new, base, significant=True)
    assert not v.passed and v.p_value is None and "tolerance alone" in v.note


def test_gate_combines_thresholds_and_regressions():
    new, base = _pair(0.8, 0.7)
    vs = gate(new, [th(metric="t.cosine_spearman", min=0.5)], base, tolerance=0.05)
    assert [v.op for v in vs] == [">=", "regression"]
    assert [v.passed for v in vs] == [True, False]


# -- threshold files -------------------------------------------------------------------------

def test_threshold_file_as_list_and_as_mapping_with_include(tmp_path):
    (tmp_path / "a.yaml").write_text("- {metric: stsb.cosine_spearman, min: 0.7}\n")
    (tmp_path / "b.yaml").write_text(
        "description: x\nthresholds:\n  - include: a.yaml\n"
        "  - {metric: stsb.cosine_pearson, max: 0.9, severity: warn, encoders: [lsa]}\n")
    listed = load_thresholds_for(tmp_path / "a.yaml", RES)
    assert [t.metric for t in listed] == ["stsb.cosine_spearman"]
    both = load_thresholds_for(tmp_path / "b.yaml", RES)
    assert [(t.metric, t.severity) for t in both] == [("stsb.cosine_spearman", "error"),
                                                      ("stsb.cosine_pearson", "warn")]


def test_unknown_metric_in_threshold_file_suggests_the_close_one(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text("thresholds:\n  - {metric: stsb.cosine_spearmann, min: 0.7}\n")
    with pytest.raises(UserError) as exc:
        load_thresholds_for(f, RES)
    text = str(exc.value)
    assert "stsb.cosine_spearmann" in text and "did you mean 'stsb.cosine_spearman'" in text
    assert f"{f}:2" in text


def test_threshold_on_a_failed_component_is_accepted_and_fails(tmp_path):
    res = run_of({"mini": {}})
    res.results["mini"]["news20"] = ComponentResult(type="clustering", error="out of memory")
    f = tmp_path / "t.yaml"
    f.write_text("- {metric: news20.v_measure, min: 0.3}\n")
    (t,) = load_thresholds_for(f, res)
    (v,) = evaluate_thresholds(res, [t])
    assert not v.passed


@pytest.mark.parametrize("text,match", [
    ("- {metric: stsb.cosine_spearman, min: [0.7\n", "YAML syntax error"),
    ("- {metric: stsb.cosine_spearman}\n", "needs 'min', 'max' or 'between'"),
    ("- {metric: stsb.cosine_spearman, minimum: 0.7}\n", "unknown key 'minimum'"),
    ("- {metric: stsb.cosine_spearman, min: 0.7, severity: fatal}\n", "severity"),
    ("thresholds: {metric: stsb.cosine_spearman}\n", "must be a list"),
    ("thresholds_: []\n", "unknown key 'thresholds_'"),
    ("42\n", "must be a YAML list"),
    ("", "empty"),
    ("- stsb.cosine_spearman\n", "must be a mapping"),
    ("- {metric: stsb.cosine_spearman, min: 0.5, encoders: [bert]}\n", "unknown encoder"),
    ("- include: nowhere.yaml\n", "not found"),
])
def test_malformed_threshold_files_are_user_errors(tmp_path, text, match):
    f = tmp_path / "t.yaml"
    f.write_text(text)
    with pytest.raises(UserError, match=match):
        load_thresholds_for(f, RES)


def test_reference_table_is_warn_only_and_names_the_reference_metrics():
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "suites" / "thresholds" / "reference.yaml"
    entries = [t for t, _, _ in load_threshold_file(path)]
    table = {t.metric: (t.min, t.max) for t in entries}
    assert table == {
        "agnews.accuracy": (0.92, None), "agnews.macro_f1": (0.92, None),
        "msmarco.mrr_at_10": (0.35, None), "msmarco.recall_at_100": (0.35, None),
        "news20.silhouette_pred": (0.6, None), "news20.davies_bouldin_pred": (None, 1.0),
        "separation.intra_class_mean": (0.8, None), "separation.inter_class_mean": (None, 0.3),
        "spectrum.top_k_variance": (0.85, None), "robustness.fluctuation": (None, 0.15)}
    assert {t.severity for t in entries} == {"warn"}
    assert all(t.encoders is None for t in entries)
    # a run that misses every reference value still passes the gate (warnings only)
    spec: dict = {}
    for metric, (lo, _) in table.items():
        cid, name = metric.split(".")
        spec.setdefault(cid, {})[name] = 0.0 if lo is not None else 9.0
    res = run_of({"small": spec})
    vs = evaluate_thresholds(res, entries)
    assert len(vs) == 10 and not any(v.passed for v in vs) and overall_passed(vs)


def test_suite_thresholds_inline_and_included(tmp_path):
    (tmp_path / "thresholds").mkdir()
    (tmp_path / "thresholds" / "t.yaml").write_text(
        "thresholds:\n  - {metric: stsb.cosine_pearson, min: 0.5, severity: warn}\n")
    text = ("suite: s\nencoders: {r: 'random?dim=8'}\n"
            "tasks: {stsb: {type: sts, dataset: stsb}}\n"
            "thresholds:\n  - include: thresholds/t.yaml\n"
            "  - {metric: stsb.cosine_spearman, min: 0.7, confidence: lower}\n")
    data, locs = parse_yaml(text, "s.yaml")
    suite = build_suite(data, locs, source="s.yaml", base_dir=tmp_path)
    assert [(t.metric, t.severity, t.confidence) for t in suite.thresholds] == [
        ("stsb.cosine_pearson", "warn", "point"), ("stsb.cosine_spearman", "error", "lower")]


# -- CLI: exit codes and bad input -----------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    res = run_of({"mini": {"stsb": {"cosine_spearman": {"value": 0.80, "ci": [0.78, 0.82]}}}},
                 thresholds=[{"metric": "stsb.cosine_spearman", "min": 0.75}])
    save_results(res, tmp_path / "new.json")
    old = run_of({"mini": {"stsb": {"cosine_spearman": 0.85}}})
    save_results(old, tmp_path / "old.json")
    return tmp_path


def test_cli_gate_exit_codes(files, capsys):
    assert main(["gate", str(files / "new.json")]) == 0  # thresholds stored in the results
    (files / "hi.yaml").write_text("- {metric: stsb.cosine_spearman, min: 0.9}\n")
    assert main(["gate", str(files / "new.json"), "--thresholds", str(files / "hi.yaml")]) == 1
    (files / "warn.yaml").write_text("- {metric: stsb.cosine_spearman, min: 0.9, severity: warn}\n")
    assert main(["gate", str(files / "new.json"), "--thresholds", str(files / "warn.yaml")]) == 0
    out = capsys.readouterr().out
    assert "FAILED" in out and "warn" in out


def test_cli_gate_baseline(files, capsys):
    args = ["gate", str(files / "new.json"), "--baseline", str(files / "old.json")]
    assert main(args + ["--tolerance", "0.01"]) == 1
    assert main(args + ["--tolerance", "0.06"]) == 0
    assert "regression" in capsys.readouterr().out


@pytest.mark.parametrize("extra,match", [
    (["--thresholds", "MISSING.yaml"], "file not found"),
    (["--baseline", "MISSING.json"], "results file not found"),
    (["--tolerance", "0.1"], "--tolerance needs --baseline"),
    (["--significant"], "--significant needs --baseline"),
    (["--baseline", "old.json", "--alpha", "1.5"], "--alpha"),
    (["--baseline", "old.json", "--tolerance", "-1"], "tolerance must be >= 0"),
])
def test_cli_gate_bad_input_exits_2(files, capsys, monkeypatch, extra, match):
    monkeypatch.chdir(files)
    assert main(["gate", "new.json", *extra]) == 2
    assert match in capsys.readouterr().err


def test_cli_gate_unknown_metric_exits_2(files, capsys):
    (files / "t.yaml").write_text("- {metric: stsb.cosine_spearmen, min: 0.7}\n")
    assert main(["gate", str(files / "new.json"), "--thresholds", str(files / "t.yaml")]) == 2
    assert "did you mean 'stsb.cosine_spearman'" in capsys.readouterr().err


def test_cli_gate_malformed_results_exits_2(files, capsys):
    (files / "bad.json").write_text(json.dumps({"schema_version": 99}))
    assert main(["gate", str(files / "bad.json")]) == 2
    assert "schema_version" in capsys.readouterr().err


# -- gate.run_gate: the domain function behind `evalharness gate` ---------------------------

def test_run_gate_takes_runs_or_paths_and_returns_the_gated_results(files):
    outcome = run_gate(files / "new.json")  # the thresholds stored in the results
    assert outcome.passed and [v.op for v in outcome.verdicts] == [">="]
    assert outcome.results.verdicts == outcome.verdicts and outcome.results.passed
    (files / "hi.yaml").write_text("- {metric: stsb.cosine_spearman, min: 0.9}\n")
    res = run_of({"mini": {"stsb": {"cosine_spearman": 0.80}}})
    failed = run_gate(res, thresholds_file=files / "hi.yaml")
    assert not failed.passed and failed.results.passed is False
    assert res.verdicts == [] and res.passed  # the input run is left as it was
    # a baseline as a run: 0.80 vs 0.85 is a regression beyond 0.01, within 0.06
    old = run_of({"mini": {"stsb": {"cosine_spearman": 0.85}}})
    assert not run_gate(res, baseline=old, tolerance=0.01).passed
    reg = run_gate(res, baseline=old, tolerance=0.06)
    assert reg.passed and reg.verdicts[-1].op == "regression"
    assert reg.verdicts[-1].baseline == 0.85 and reg.verdicts[-1].tolerance == 0.06


@pytest.mark.parametrize("kw,match", [
    ({"tolerance": 0.1}, "--tolerance needs --baseline"),
    ({"significant": True}, "--significant needs --baseline"),
    ({"include_machine_dependent": True}, "--include-machine-dependent needs --baseline"),
    ({"baseline": RES, "alpha": 1.5}, "--alpha"),
])
def test_run_gate_rejects_options_that_need_a_baseline(kw, match):
    with pytest.raises(UserError, match=match):
        run_gate(RES, **kw)


def test_gate_without_thresholds_says_no_gates(files, capsys):
    res = run_of({"mini": {"stsb": {"cosine_spearman": 0.80}}})
    save_results(res, files / "bare.json")
    assert main(["gate", str(files / "bare.json")]) == 0
    out = capsys.readouterr().out
    assert "verdict: no gates" in out and "PASSED" not in out
