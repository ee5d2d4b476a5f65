"""Class separation: hand values on orthogonal clusters, brute force with sklearn
(cosine_similarity + roc_auc_score over every pair), pair sampling, MiniLM on AG News."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics.pairwise import cosine_similarity

from evalharness.checks.separation import SeparationCheck, pair_cosines, separation_scores
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.errors import UserError
from evalharness.components import EncoderContext


def make_vectors(texts, matrix) -> Vectors:
    index = {t: i for i, t in enumerate(texts)}
    return Vectors(lambda role: "text", {"text": (index, np.asarray(matrix, np.float32))})


def labelled(tmp_path, labels, name="lab"):
    folder = tmp_path / name
    folder.mkdir()
    rows = [{"text": f"t{i}", "label": int(lab), "label_name": f"class{lab}"}
            for i, lab in enumerate(labels)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return [f"t{i}" for i in range(len(labels))]


def build(resolver, **cfg):
    return SeparationCheck("sep", SeparationCheck.Config(type="separation", **cfg), resolver,
                           seed=42, bootstrap=0)


def brute_force(x, labels):
    """Every distinct pair, with sklearn."""
    c = cosine_similarity(np.asarray(x, np.float64))
    i, j = np.triu_indices(len(x), 1)
    cos, same = c[i, j], labels[i] == labels[j]
    return {"intra_class_mean": cos[same].mean(), "inter_class_mean": cos[~same].mean(),
            "margin": cos[same].mean() - cos[~same].mean(),
            "auc": roc_auc_score(same, cos)}, same


def test_orthogonal_clusters_hand_values(tmp_path):
    labels = np.array([0, 0, 0, 1, 1, 2])
    texts = labelled(tmp_path, labels)
    x = np.array([[1, 0, 0], [2, 0, 0], [5, 0, 0], [0, 1, 0], [0, 3, 0], [0, 0, 1]], float)
    res = build(DatasetResolver(tmp_path), dataset="lab").evaluate(
        make_vectors(texts, x), EncoderContext("rnd"))
    m = {k: v.value for k, v in res.metrics.items()}
    assert m == {"intra_class_mean": pytest.approx(1.0), "inter_class_mean": pytest.approx(0.0),
                 "margin": pytest.approx(1.0), "auc": pytest.approx(1.0)}
    assert res.metrics["intra_class_mean"].n == 4 and res.metrics["inter_class_mean"].n == 11
    assert res.details["pairs"] == 15 and res.details["sampled"] is False
    h = res.details["histogram"]
    assert len(h["edges"]) == 51 and sum(h["intra"]) == 4 and sum(h["inter"]) == 11
    assert h["intra"][-1] == 4  # cosine 1 lands in the last bin
    assert res.details["per_class_intra_mean"] == {"class0": pytest.approx(1.0),
                                                   "class1": pytest.approx(1.0)}
    assert res.metrics["inter_class_mean"].higher_is_better is False
    assert res.main_metric == "auc" and res.kind == "check"


def test_matches_sklearn_brute_force(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=80)
    centres = rng.normal(size=(4, 16))
    x = centres[labels] + 1.5 * rng.normal(size=(80, 16))
    texts = labelled(tmp_path, labels)
    res = build(DatasetResolver(tmp_path), dataset="lab").evaluate(
        make_vectors(texts, x), EncoderContext("rnd"))
    ref, same = brute_force(x.astype(np.float32), labels)
    for k, v in ref.items():
        assert res.metrics[k].value == pytest.approx(v, abs=1e-7), k
    assert res.metrics["intra_class_mean"].n == same.sum()
    # the pure functions agree with the brute force too
    i, j = np.triu_indices(80, 1)
    cos = pair_cosines(x, i, j, chunk=97)
    np.testing.assert_allclose(cos, cosine_similarity(x)[i, j], atol=1e-12)
    assert separation_scores(cos, labels[i] == labels[j])["auc"] == pytest.approx(
        roc_auc_score(labels[i] == labels[j], cos))


def test_sampled_pairs_are_seeded_and_close(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=400)
    x = rng.normal(size=(3, 8))[labels] + rng.normal(size=(400, 8))
    texts = labelled(tmp_path, labels)
    r = DatasetResolver(tmp_path)
    vec = make_vectors(texts, x)
    a = build(r, dataset="lab", max_pairs=20_000).evaluate(vec, EncoderContext("rnd"))
    b = build(r, dataset="lab", max_pairs=20_000).evaluate(vec, EncoderContext("rnd"))
    assert a.details["sampled"] and a.details["pairs"] == 20_000
    assert {k: v.value for k, v in a.metrics.items()} == {k: v.value for k, v in
                                                          b.metrics.items()}
    exact = build(r, dataset="lab").evaluate(vec, EncoderContext("rnd"))
    assert exact.details["pairs"] == 400 * 399 // 2
    for k in ("intra_class_mean", "inter_class_mean", "auc"):
        assert a.metrics[k].value == pytest.approx(exact.metrics[k].value, abs=0.02), k


def test_user_errors(tmp_path):
    texts = labelled(tmp_path, [0, 0, 0], name="one")
    chk = build(DatasetResolver(tmp_path), dataset="one")
    with pytest.raises(UserError, match="different-class"):
        chk.evaluate(make_vectors(texts, np.eye(3)), EncoderContext("rnd"))
    sts = tmp_path / "sts"
    sts.mkdir()
    (sts / "test.jsonl").write_text(json.dumps({"sentence1": "a", "sentence2": "b",
                                                "score": 1}) + "\n")
    with pytest.raises(UserError, match="needs a labelled dataset"):
        build(DatasetResolver(tmp_path), dataset="sts")


@pytest.mark.integration
def test_minilm_agnews_separation(shared_data, minilm_embed):
    chk = build(DatasetResolver(shared_data), dataset="agnews", limit=1000, max_pairs=500_000)
    texts = chk.data.texts
    x = minilm_embed(texts)
    res = chk.evaluate(make_vectors(texts, x), EncoderContext("minilm"))
    m = {k: v.value for k, v in res.metrics.items()}
    print(f"\nMiniLM agnews (1000): intra={m['intra_class_mean']:.4f} "
          f"inter={m['inter_class_mean']:.4f} margin={m['margin']:.4f} auc={m['auc']:.4f}")
    assert res.details["classes"] == 4 and res.details["pairs"] == 1000 * 999 // 2
    assert not res.details["sampled"]
    assert 0.05 < m["margin"] < 0.5 and m["intra_class_mean"] > m["inter_class_mean"]
    assert 0.6 < m["auc"] < 1.0
    # sampled: same seed, same output
    s1 = build(DatasetResolver(shared_data), dataset="agnews", limit=1000, max_pairs=50_000)
    a = s1.evaluate(make_vectors(texts, x), EncoderContext("minilm"))
    b = s1.evaluate(make_vectors(texts, x), EncoderContext("minilm"))
    assert a.metrics["auc"].value == b.metrics["auc"].value
    assert a.metrics["auc"].value == pytest.approx(m["auc"], abs=0.01)
