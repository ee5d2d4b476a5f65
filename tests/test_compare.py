"""Paired comparisons: the bootstrap p-value and CI against a plain loop over resamples
with scipy, item matching by id, winners only where significant, the CLI, the runner hook,
and, on real STS-B test vectors (MiniLM, 1379 pairs), a planted difference is detected
while two identical runs are not flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr

from evalharness.cli import main
from evalharness.compare import (compare_encoders, compare_files, compare_metric, compare_runs,
                                 dumps_comparisons, match_items, p_value_two_sided,
                                 paired_bootstrap, run_labels)
from evalharness.errors import UserError
from evalharness.results import (ComponentResult, EncoderRecord, Metric, RunResults,
                                 load_results, save_results)
from evalharness.stats import resample_indices


def test_p_value_by_hand():
    # d = [-1, 1, 2, 3]: P(d <= 0) = (1 + 1) / 5, P(d >= 0) = (3 + 1) / 5 -> p = 2 * 0.4
    assert p_value_two_sided(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.8)
    # all resamples on one side: the smallest p for B resamples is 2 / (B + 1)
    assert p_value_two_sided(np.ones(999)) == pytest.approx(2 / 1000)
    assert p_value_two_sided(np.zeros(10)) == 1.0


def _noisy_sts(n=300, seed=0):
    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 5, n)
    cos_a = gold / 5 + rng.normal(0, 0.2, n)
    cos_b = gold / 5 + rng.normal(0, 0.25, n)
    return gold, cos_a, cos_b


@pytest.mark.parametrize("stat,fn", [("spearman", lambda g, c: spearmanr(g, c).statistic),
                                     ("pearson", lambda g, c: pearsonr(g, c).statistic)])
def test_paired_bootstrap_matches_a_loop_over_resamples(stat, fn):
    """Independent implementation: one scipy call per resample on the same indices."""
    gold, a, b = _noisy_sts()
    n_boot, seed, alpha = 300, 7, 0.1
    out = paired_bootstrap(stat, [gold, a], [gold, b], n_boot=n_boot, seed=seed, alpha=alpha)
    idx = resample_indices(len(gold), n_boot, seed)
    d = np.array([fn(gold[i], b[i]) - fn(gold[i], a[i]) for i in idx])
    assert out["diff"] == pytest.approx(fn(gold, b) - fn(gold, a), abs=1e-12)
    assert out["ci"] == pytest.approx(list(np.quantile(d, [alpha / 2, 1 - alpha / 2])),
                                      abs=1e-12)
    le, ge = (np.sum(d <= 0) + 1) / (n_boot + 1), (np.sum(d >= 0) + 1) / (n_boot + 1)
    assert out["p_value"] == pytest.approx(min(1.0, 2 * min(le, ge)))
    assert out["n"] == len(gold)


def test_identical_sides_give_zero_difference_and_p_one():
    gold, a, _ = _noisy_sts()
    out = paired_bootstrap("spearman", [gold, a], [gold, a], n_boot=200)
    assert out["diff"] == 0 and out["ci"] == [0.0, 0.0] and out["p_value"] == 1.0


def test_match_items_by_id_across_order_and_partial_overlap():
    a = {"id": ["q1", "q2", "q3", "q4"], "x": [1, 2, 3, 4]}
    b = {"id": ["q4", "q9", "q2", "q1"], "x": [40, 90, 20, 10]}
    ia, ib, how = match_items(a, b)
    assert how == "id"
    assert np.array(a["x"])[ia].tolist() == [1, 2, 4]
    assert np.array(b["x"])[ib].tolist() == [10, 20, 40]
    with pytest.raises(ValueError, match="not unique"):
        match_items({"id": [1, 1]}, {"id": [1, 2]})
    ia, ib, how = match_items({"x": [1, 2]}, {"x": [3, 4]})
    assert how == "position" and ia.tolist() == ib.tolist() == [0, 1]


def _sts_comp(gold, cos, ids=None) -> ComponentResult:
    gold, cos = np.asarray(gold, float), np.asarray(cos, float)
    m = lambda stat, v: Metric(value=float(v), n=len(gold), stat=stat,  # noqa: E731
                               inputs=["gold", "cosine"])
    return ComponentResult(
        type="sts", main_metric="cosine_spearman",
        metrics={"cosine_spearman": m("spearman", spearmanr(gold, cos).statistic),
                 "cosine_pearson": m("pearson", pearsonr(gold, cos).statistic)},
        items={"id": list(range(len(gold))) if ids is None else list(ids),
               "gold": gold.tolist(), "cosine": cos.tolist()})


def _run(comps: dict[str, dict[str, ComponentResult]], suite="unit") -> RunResults:
    res = RunResults(suite=suite, created="2026-01-01T00:00:00Z")
    for enc, cs in comps.items():
        res.encoders[enc] = EncoderRecord(spec="random")
        res.results[enc] = cs
    return res


def test_compare_metric_uses_only_matched_items():
    gold, a, b = _noisy_sts(n=200)
    ca = _sts_comp(gold, a)
    keep = np.arange(50, 200)  # B lacks the first 50 items, and lists the rest reversed
    cb = _sts_comp(gold[keep][::-1], b[keep][::-1], ids=keep[::-1])
    row = compare_metric(ca, cb, "cosine_spearman", n_boot=100)
    assert row["n"] == 150 and "150 matched items" in row["note"]
    assert row["diff"] == pytest.approx(spearmanr(gold[keep], b[keep]).statistic
                                        - spearmanr(gold[keep], a[keep]).statistic)


def test_metric_without_items_gets_the_difference_only():
    ca = ComponentResult(type="x", metrics={"m": Metric(value=0.5)})
    cb = ComponentResult(type="x", metrics={"m": Metric(value=0.7)})
    row = compare_metric(ca, cb, "m")
    assert row["diff"] == pytest.approx(0.2) and row["p_value"] is None
    assert row["method"] == "difference only"


def test_winner_named_only_when_significant_and_respects_direction():
    gold, a, _ = _noisy_sts(n=400)
    rng = np.random.default_rng(1)
    worse = a + rng.normal(0, 0.5, len(a))
    res = _run({"ref": {"stsb": _sts_comp(gold, a)}, "bad": {"stsb": _sts_comp(gold, worse)},
                "same": {"stsb": _sts_comp(gold, a)}})
    rows = compare_encoders(res, n_boot=300)
    by = {(r["b"], r["metric"]): r for r in rows}
    bad = by[("bad", "stsb.cosine_spearman")]
    assert bad["diff"] < 0 and bad["significant"] and bad["winner"] == "ref"
    assert bad["ci"][1] < 0 and bad["main"] is True
    same = by[("same", "stsb.cosine_spearman")]
    assert same["diff"] == 0 and not same["significant"] and same["winner"] is None
    # lower is better: the same numbers name the other side
    for comp in (res.results["ref"]["stsb"], res.results["bad"]["stsb"]):
        comp.metrics["cosine_spearman"].higher_is_better = False
    flipped = compare_encoders(res, n_boot=300)[0]
    assert flipped["winner"] == "bad"


def test_reference_encoder_must_exist():
    gold, a, _ = _noisy_sts(n=20)
    res = _run({"x": {"s": _sts_comp(gold, a)}, "y": {"s": _sts_comp(gold, a)}})
    with pytest.raises(UserError, match="did you mean 'x'"):
        compare_encoders(res, reference="xx")


def test_compare_runs_same_ids_or_only_encoder():
    gold, a, b = _noisy_sts(n=100)
    r1 = _run({"mini": {"s": _sts_comp(gold, a)}})
    r2 = _run({"other": {"s": _sts_comp(gold, b)}})
    rows = compare_runs([r1, r2], ["base", "pr"], n_boot=50)
    assert {(r["a"], r["b"], r["encoder_a"], r["encoder_b"]) for r in rows} == {
        ("base", "pr", "mini", "other")}
    r3 = _run({"p": {"s": _sts_comp(gold, a)}, "q": {"s": _sts_comp(gold, a)}})
    with pytest.raises(UserError, match="share no encoder"):
        compare_runs([r1, r3], ["base", "x"])


def test_run_labels():
    assert run_labels(["runs/a/results.json", "runs/b/results.json"]) == ["a", "b"]
    assert run_labels(["x/base.json", "y/base.json"]) == ["x/base.json", "y/base.json"]


def test_cli_compare_files_and_bad_input(tmp_path, capsys):
    gold, a, b = _noisy_sts(n=200)
    save_results(_run({"mini": {"s": _sts_comp(gold, a)}}), tmp_path / "a.json")
    save_results(_run({"mini": {"s": _sts_comp(gold, a + 0.5 * np.random.default_rng(3)
                                                .normal(size=200))}}), tmp_path / "b.json")
    out = tmp_path / "cmp.json"
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--bootstrap", "200", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "s.cosine_spearman*" in text and "winner" in text
    rows = json.loads(out.read_text())
    assert rows[0]["winner"] == "a" and rows[0]["p_value"] < 0.05
    # one file with one encoder: nothing to compare; a missing file: bad input
    assert main(["compare", str(tmp_path / "a.json")]) == 2
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "nope.json")]) == 2
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"),
                 "--alpha", "0"]) == 2
    assert "alpha" in capsys.readouterr().err


def test_runner_stores_comparisons_for_multi_encoder_runs(tmp_path):
    """The runner hook: a run of two encoders carries paired comparisons in results.json."""
    from evalharness.runner import RunOptions, run_suite
    from evalharness.suite import load_suite

    rng = np.random.default_rng(0)
    words = ["cat", "dog", "car", "tree", "house", "river", "music", "bread", "road", "sky"]
    rows = [{"sentence1": " ".join(rng.choice(words, 4)), "sentence2": " ".join(rng.choice(words, 4)),
             "score": float(rng.uniform(0, 5))} for _ in range(40)]
    (tmp_path / "data" / "tiny").mkdir(parents=True)
    (tmp_path / "data" / "tiny" / "test.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.yaml").write_text(
        "suite: two\nbootstrap: 100\nencoders:\n  r0: 'random?dim=16&seed=0'\n"
        "  r1: 'random?dim=16&seed=1'\ntasks:\n  sts: {type: sts, dataset: tiny}\n")
    out = run_suite(load_suite(tmp_path / "s.yaml"),
                    RunOptions(data_dir=str(tmp_path / "data"), output=str(tmp_path / "run"),
                               no_cache=True, log=None))
    saved = load_results(tmp_path / "run" / "results.json")
    comps = saved.comparisons
    assert {c["metric"] for c in comps} == {"sts.cosine_spearman", "sts.cosine_pearson"}
    assert all(c["a"] == "r0" and c["b"] == "r1" and c["n"] == 40 for c in comps)
    assert out.results.comparisons == comps


# -- real data: STS-B test, MiniLM vectors (cached) -------------------------------------------

NOISE_SIGMA = 0.03  # per coordinate, on unit-norm 384-d vectors (noise norm ~0.59)


@pytest.fixture(scope="module")
def stsb_runs(shared_data, minilm_embed):
    """STS-B test evaluated by the STS task on MiniLM vectors, on the same vectors again,
    and on MiniLM vectors with seeded Gaussian noise added (one draw per distinct text)."""
    from evalharness.data.resolve import DatasetResolver
    from evalharness.tasks.sts import STSConfig, STSTask

    task = STSTask("stsb", STSConfig(dataset="stsb"), DatasetResolver(shared_data))
    texts = sorted(set(task.s1) | set(task.s2))
    clean = minilm_embed(texts)
    noisy = clean + np.random.default_rng(0).normal(0, NOISE_SIGMA, clean.shape).astype(np.float32)

    class Vecs:
        def __init__(self, m):
            self.row = {t: i for i, t in enumerate(texts)}
            self.m = m

        def get(self, role, ts):
            return self.m[[self.row[t] for t in ts]]

    res = {name: task.evaluate(Vecs(m), None) for name, m in
           (("minilm", clean), ("minilm_again", clean), ("minilm_noisy", noisy))}
    return _run({k: {"stsb": v} for k, v in res.items()}, suite="stsb")


def test_stsb_paired_bootstrap_detects_planted_noise(stsb_runs):
    rows = compare_encoders(stsb_runs, n_boot=1000, seed=42)
    by = {(r["b"], r["metric"]): r for r in rows}
    clean = stsb_runs.metric("minilm", "stsb.cosine_spearman").value
    assert clean == pytest.approx(0.8203, abs=2e-4)  # MiniLM on STS-B test (MTEB: 82.03)
    noisy = by[("minilm_noisy", "stsb.cosine_spearman")]
    print(f"\nSTS-B test, 1379 pairs: MiniLM spearman {clean:.4f}; with N(0, {NOISE_SIGMA}) "
          f"noise {noisy['value_b']:.4f}; diff {noisy['diff']:+.4f}, 95% CI "
          f"[{noisy['ci'][0]:+.4f}, {noisy['ci'][1]:+.4f}], p={noisy['p_value']:.4f}")
    assert noisy["n"] == 1379
    assert noisy["diff"] < 0 and noisy["ci"][1] < 0
    assert noisy["p_value"] < 0.01 and noisy["significant"] and noisy["winner"] == "minilm"
    same = by[("minilm_again", "stsb.cosine_spearman")]
    assert same["diff"] == 0 and same["p_value"] == 1.0 and same["winner"] is None
    assert not by[("minilm_again", "stsb.cosine_pearson")]["significant"]


def test_stsb_gate_significant_regression(stsb_runs, tmp_path):
    """`gate --baseline --significant`: the noisy run fails, the identical run passes."""
    base = _run({"minilm": stsb_runs.results["minilm"]}, suite="stsb")
    noisy = _run({"minilm": stsb_runs.results["minilm_noisy"]}, suite="stsb")
    again = _run({"minilm": stsb_runs.results["minilm_again"]}, suite="stsb")
    for name, r in (("base", base), ("noisy", noisy), ("again", again)):
        save_results(r, tmp_path / f"{name}.json")
    gate = ["gate", "--baseline", str(tmp_path / "base.json"), "--significant",
            "--tolerance", "0.001"]
    assert main([gate[0], str(tmp_path / "noisy.json"), *gate[1:]]) == 1
    assert main([gate[0], str(tmp_path / "again.json"), *gate[1:]]) == 0


def test_misaligned_item_arrays_give_the_difference_only():
    ca = _sts_comp([1, 2, 3], [0.1, 0.3, 0.2])
    cb = _sts_comp([1, 2, 3], [0.1, 0.2, 0.3])
    cb.items["cosine"] = [0.5]  # fewer values than ids: cannot be paired
    row = compare_metric(ca, cb, "cosine_spearman")
    assert row["p_value"] is None and "do not match" in row["note"]
    assert row["diff"] == pytest.approx(1.0 - 0.5)


def test_compare_files_takes_plain_arguments(tmp_path):
    gold, a, b = _noisy_sts(n=120)
    save_results(_run({"x": {"s": _sts_comp(gold, a)}, "y": {"s": _sts_comp(gold, b)}}),
                 tmp_path / "two.json")
    rows = compare_files([str(tmp_path / "two.json")], reference="y", n_boot=100, seed=1)
    assert {(r["a"], r["b"]) for r in rows} == {("y", "x")}
    assert rows == compare_encoders(load_results(tmp_path / "two.json"), reference="y",
                                    n_boot=100, seed=1)
    assert json.loads(dumps_comparisons(rows)) == json.loads(json.dumps(rows))
    with pytest.raises(UserError, match="--bootstrap must be >= 0"):
        compare_files([str(tmp_path / "two.json")], n_boot=-1)
    with pytest.raises(UserError, match="--alpha"):
        compare_files([str(tmp_path / "two.json")], alpha=1.0)


def _imported(value: float) -> RunResults:
    """A run as imported from MTEB result files: scores only, no CI, n or items."""
    return _run({"model": {"stsb": ComponentResult(
        type="sts", main_metric="cosine_spearman",
        metrics={"cosine_spearman": Metric(value=value), "main_score": Metric(value=value)})}})


def test_compare_without_per_item_data_says_no_paired_test(tmp_path, capsys):
    from evalharness.console import comparison_table

    save_results(_imported(0.82), tmp_path / "published.json")
    save_results(_imported(0.80), tmp_path / "mine.json")
    rows = compare_files([str(tmp_path / "published.json"), str(tmp_path / "mine.json")])
    assert all(r["p_value"] is None and r["winner"] is None for r in rows)
    assert rows[0]["diff"] == pytest.approx(-0.02)
    table = comparison_table(rows)
    assert table.count("no paired test") == 2 and "-0.0200" in table
    assert main(["compare", str(tmp_path / "published.json"), str(tmp_path / "mine.json")]) == 0
    out = capsys.readouterr().out
    assert "no paired test" in out and "2 without a paired test" in out
