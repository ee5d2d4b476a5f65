"""PCA spectrum: a hand-computed 2-D spectrum, sklearn PCA, and MiniLM on AG News."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.decomposition import PCA

from evalharness.checks.geometry import effective_rank
from evalharness.checks.spectrum import (SpectrumCheck, components_for,
                                         explained_variance_ratio, spectrum_summary)
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.components import EncoderContext


def make_vectors(texts, matrix) -> Vectors:
    index = {t: i for i, t in enumerate(texts)}
    return Vectors(lambda role: "text", {"text": (index, np.asarray(matrix, np.float32))})


def build(resolver, **cfg):
    return SpectrumCheck("spectrum", SpectrumCheck.Config(type="spectrum", **cfg), resolver,
                         seed=42, bootstrap=0)


def test_known_2d_spectrum():
    # variance 9 along x, 1 along y (points symmetric about the origin): ratio 0.9 / 0.1
    x = np.array([[3.0, 0], [-3, 0], [0, 1], [0, -1]])
    ratio = explained_variance_ratio(x)
    assert ratio.tolist() == pytest.approx([0.9, 0.1])
    s = spectrum_summary(ratio, top_k=1)
    assert s == {"top_k_variance": pytest.approx(0.9), "components_85": 1, "components_95": 2}
    assert spectrum_summary(ratio, top_k=20)["top_k_variance"] == pytest.approx(1.0)
    # a shift does not change a PCA spectrum
    assert explained_variance_ratio(x + 10).tolist() == pytest.approx([0.9, 0.1])


def test_components_for_thresholds():
    r = np.array([0.5, 0.35, 0.1, 0.05])
    assert components_for(r, 0.85) == 2  # exactly 0.85 counts
    assert components_for(r, 0.95) == 3
    assert components_for(r, 0.5) == 1
    assert components_for(r, 1.0) == 4


def test_matches_sklearn_pca():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 30)) * np.geomspace(5, 0.05, 30) + 2.0
    ratio = explained_variance_ratio(x)
    ref = PCA().fit(x).explained_variance_ratio_
    np.testing.assert_allclose(ratio, ref, atol=1e-12)
    cum = np.cumsum(ref)
    assert components_for(ratio, 0.85) == int(np.argmax(cum >= 0.85)) + 1
    assert components_for(ratio, 0.95) == int(np.argmax(cum >= 0.95)) + 1
    # fewer rows than dimensions: min(n, dim) components, like sklearn
    small = x[:12]
    np.testing.assert_allclose(explained_variance_ratio(small),
                               PCA().fit(small).explained_variance_ratio_, atol=1e-12)


def test_spectrum_check(tmp_path):
    folder = tmp_path / "lab"
    folder.mkdir()
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(60)]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 25)) * np.geomspace(4, 0.1, 25)
    chk = build(DatasetResolver(tmp_path), dataset="lab", top_k=5)
    assert chk.kind == "check"
    res = chk.evaluate(make_vectors([f"t{i}" for i in range(60)], x), EncoderContext("rnd"))
    ref = PCA().fit(x.astype(np.float32).astype(np.float64)).explained_variance_ratio_
    np.testing.assert_allclose(res.details["explained_variance_ratio"], ref, atol=1e-9)
    assert res.details["k"] == 5 and res.metrics["top_k_variance"].k == 5
    assert res.metrics["top_k_variance"].value == pytest.approx(ref[:5].sum())
    assert res.metrics["components_85"].value == int(np.argmax(np.cumsum(ref) >= 0.85)) + 1
    assert res.metrics["effective_rank"].value == pytest.approx(
        effective_rank(x.astype(np.float32)), rel=1e-9)
    assert res.metrics["top_k_variance"].higher_is_better is False
    assert set(res.metrics) == set(SpectrumCheck.metric_names(chk.config))
    assert all(m.n == 60 for m in res.metrics.values())
    # a pairs dataset works too (texts = sentence1 ∪ sentence2)
    sts = tmp_path / "sts"
    sts.mkdir()
    (sts / "test.jsonl").write_text(json.dumps({"sentence1": "a", "sentence2": "b",
                                                "score": 1}) + "\n")
    assert build(DatasetResolver(tmp_path), dataset="sts").data.texts == ["a", "b"]


@pytest.mark.integration
def test_minilm_agnews_spectrum(shared_data, minilm_embed):
    chk = build(DatasetResolver(shared_data), dataset="agnews", limit=1000)
    texts = chk.data.texts
    assert len(texts) == 1000
    x = minilm_embed(texts)
    res = chk.evaluate(make_vectors(texts, x), EncoderContext("minilm"))
    m = {k: v.value for k, v in res.metrics.items()}
    print(f"\nMiniLM agnews (1000): top20={m['top_k_variance']:.4f} "
          f"c85={m['components_85']:.0f} c95={m['components_95']:.0f} "
          f"erank={m['effective_rank']:.2f}")
    assert len(res.details["explained_variance_ratio"]) == 384
    assert sum(res.details["explained_variance_ratio"]) == pytest.approx(1.0)
    assert 0.2 < m["top_k_variance"] < 0.9
    assert 20 < m["components_85"] < m["components_95"] < 384
    again = chk.evaluate(make_vectors(texts, x), EncoderContext("minilm"))
    assert {k: v.value for k, v in again.metrics.items()} == m
