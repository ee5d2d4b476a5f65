"""Drift check: MMD^2 (unbiased, RBF median heuristic) vs a direct double loop, permutation
p-values, domain-classifier AUC, and same-vs-shifted behaviour on synthetic and real data."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.spatial.distance import pdist

from evalharness.checks.drift import (DriftCheck, DriftConfig, domain_auc, mean_cosine_distance,
                                      median_bandwidth, mmd2_unbiased, mmd_test, rbf_kernel,
                                      squared_distances)
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from helpers import write_jsonl


def mmd2_loop(x, y, sigma):
    """Gretton et al. (2012) eq. 3, written out term by term."""
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma ** 2))  # noqa: E731
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_the_double_loop():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((5, 3)) + 0.3
    z = np.vstack([x, y])
    d2 = squared_distances(z)
    sigma = median_bandwidth(d2)
    assert sigma == pytest.approx(np.median(pdist(z)))
    k = rbf_kernel(d2, sigma)
    mask = np.r_[np.ones(6), np.zeros(5)]
    assert mmd2_unbiased(k, mask)[0] == pytest.approx(mmd2_loop(x, y, sigma), rel=1e-10)
    # vectorised over permutations: each row equals its own loop value
    perms = [rng.permutation(11) for _ in range(4)]
    masks = np.zeros((4, 11))
    for r, p in enumerate(perms):
        masks[r, p[:6]] = 1
    got = mmd2_unbiased(k, masks)
    for r, p in enumerate(perms):
        assert got[r] == pytest.approx(mmd2_loop(z[p[:6]], z[p[6:]], sigma), rel=1e-10)


def test_mean_cosine_distance_by_hand():
    a = np.array([[1.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 1.0], [0.0, 3.0]])
    assert mean_cosine_distance(a, b) == pytest.approx(1.0)
    assert mean_cosine_distance(a, a) == pytest.approx(0.0)
    c = np.array([[1.0, 1.0]])
    assert mean_cosine_distance(a, c) == pytest.approx(1 - 1 / np.sqrt(2))


def test_same_distribution_vs_shifted():
    rng = np.random.default_rng(42)
    a = rng.standard_normal((200, 16))
    same = rng.standard_normal((200, 16))
    shifted = rng.standard_normal((200, 16))
    shifted[:, :4] += 0.8
    auc_same = domain_auc(a, same, folds=5, seed=0).mean()
    auc_shift = domain_auc(a, shifted, folds=5, seed=0).mean()
    mmd_same, p_same, _ = mmd_test(a, same, n_permutations=200, seed=0)
    mmd_shift, p_shift, _ = mmd_test(a, shifted, n_permutations=200, seed=0)
    assert abs(auc_same - 0.5) < 0.08 and p_same > 0.05
    assert auc_shift > 0.8 and p_shift == pytest.approx(1 / 201)
    assert mmd_shift > 10 * abs(mmd_same)
    # seeded: the same call gives the same p-value
    assert mmd_test(a, same, n_permutations=200, seed=0)[1] == p_same


def test_domain_auc_is_the_mean_of_fold_aucs():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, 5)), rng.standard_normal((30, 5)) + 0.4
    x, y = np.vstack([a, b]), np.r_[np.zeros(40), np.ones(30)]
    want = []
    for tr, te in StratifiedKFold(4, shuffle=True, random_state=7).split(x, y):
        clf = LogisticRegression(max_iter=1000).fit(x[tr], y[tr])
        want.append(roc_auc_score(y[te], clf.predict_proba(x[te])[:, 1]))
    np.testing.assert_allclose(domain_auc(a, b, folds=4, seed=7), want)


def test_config_needs_a_different_side():
    with pytest.raises(ValidationError, match="different dataset, split or encoder"):
        DriftConfig(type="drift", dataset="agnews", split="test", other={"split": "test"})
    DriftConfig(type="drift", dataset="agnews", split="train", other={"split": "test"})
    DriftConfig(type="drift", dataset="agnews", other={"dataset": "twentynewsgroups"})


def _vectors(mapping: dict[str, np.ndarray]) -> Vectors:
    texts = list(mapping)
    return Vectors(lambda role: "any", {"any": ({t: i for i, t in enumerate(texts)},
                                                np.array([mapping[t] for t in texts],
                                                         dtype=np.float32))})


def test_check_on_two_splits(tmp_path):
    folder = tmp_path / "toy"
    write_jsonl(folder / "train.jsonl", [{"text": f"train text {i}", "label": i % 2}
                                         for i in range(60)])
    write_jsonl(folder / "test.jsonl", [{"text": f"test text {i}", "label": i % 2}
                                        for i in range(50)])
    cfg = DriftConfig(type="drift", dataset={"path": str(folder)}, split="train",
                      other={"split": "test"}, n=40, n_permutations=50)
    check = DriftCheck("drift", cfg, DatasetResolver(tmp_path), seed=1)
    assert len(check.texts_a) == len(check.texts_b) == 40
    rng = np.random.default_rng(0)
    vec = {t: rng.standard_normal(8) + (1.5 if t.startswith("test") else 0.0) * np.eye(8)[0]
           for t in check.texts_a + check.texts_b}
    res = check.evaluate(_vectors(vec), None)
    m = res.metrics
    assert set(m) == set(DriftCheck.metric_names(cfg))
    assert m["domain_auc"].value > 0.8 and m["mmd_p_value"].value < 0.05
    assert not m["domain_auc"].higher_is_better and m["mmd_p_value"].higher_is_better
    assert res.details["a"]["split"] == "train" and res.details["b"]["split"] == "test"


@pytest.mark.integration
def test_agnews_train_vs_test_and_vs_stsb_with_minilm(shared_data, minilm_embed):
    resolver = DatasetResolver(shared_data)
    results = {}
    for name, other in (("splits", {"split": "test"}), ("datasets", {"dataset": "stsb",
                                                                     "split": "test"})):
        cfg = DriftConfig(type="drift", dataset="agnews", split="train", other=other, n=200,
                          n_permutations=200)
        check = DriftCheck("drift", cfg, resolver, seed=42)
        texts = list(dict.fromkeys(check.texts_a + check.texts_b))
        vec = dict(zip(texts, minilm_embed(texts)))
        results[name] = check.evaluate(_vectors(vec), None).metrics
    same, diff = results["splits"], results["datasets"]
    print({k: round(v.value, 4) for k, v in same.items()},
          {k: round(v.value, 4) for k, v in diff.items()})
    assert same["domain_auc"].value < 0.62 and same["mmd_p_value"].value > 0.05
    assert diff["domain_auc"].value > 0.85 and diff["mmd_p_value"].value < 0.01
    assert diff["mean_cosine_distance"].value > same["mean_cosine_distance"].value


def test_drift_between_two_encoders_of_one_run(tmp_path):
    """other: {encoder: ID}: the same texts under two encoders. Identical encoders under
    two ids do not drift; an encoder whose vectors share a common offset direction
    (helpers.good_fn) drifts from isotropic random vectors of the same dimension."""
    import json as _json

    from evalharness.cli import main

    from helpers import make_sts, write_suite

    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", """\
suite: drift2
seed: 3
encoders:
  a: random?dim=8&seed=0
  same: random?dim=8&seed=0
  other: py:helpers:good_fn
  wide: random?dim=32&seed=0
checks:
  drift: {type: drift, dataset: tinysts, other: {encoder: a}, n: null, folds: 2,
          n_permutations: 99}
""")
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "data"),
                 "-o", str(tmp_path / "out"), "--no-cache"])
    res = _json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    same, other = res["same"]["drift"], res["other"]["drift"]
    assert same["metrics"]["mmd_p_value"]["value"] > 0.5
    assert abs(same["metrics"]["mean_cosine_distance"]["value"]) < 1e-9
    assert other["metrics"]["domain_auc"]["value"] > 0.9
    assert other["metrics"]["mmd_p_value"]["value"] <= 0.02
    assert other["details"]["b"]["encoder"] == "a"
    assert "share a dimension" in res["wide"]["drift"]["error"]
    assert res["a"]["drift"]["metrics"] == {}
    assert "itself" in res["a"]["drift"]["error"]
    assert code == 2  # the 32-d encoder cannot be compared: bad input, reported


def test_drift_other_encoder_must_exist(tmp_path, capsys):
    from evalharness.cli import main

    from helpers import make_sts, write_suite

    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", """\
suite: drift3
encoders:
  a: random?dim=8
checks:
  drift: {type: drift, dataset: tinysts, other: {encoder: b}, n: null, folds: 2}
""")
    assert main(["run", str(suite), "--data-dir", str(tmp_path / "data"), "--no-cache",
                 "-o", str(tmp_path / "out")]) == 2
    assert "encoder 'b', which is not an encoder of this run" in capsys.readouterr().err
