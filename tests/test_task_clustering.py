"""Clustering task on tiny synthetic data, checked against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.errors import UserError
from evalharness.components import EncoderContext
from evalharness.tasks.clustering import ClusteringConfig, ClusteringTask, strip_reply


def write_split(folder, texts, labels, subjects=None):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "test.jsonl", "w") as fh:
        for i, (t, y) in enumerate(zip(texts, labels)):
            row = {"text": t, "label": int(y)}
            if subjects is not None:
                row["subject"] = subjects[i]
            fh.write(json.dumps(row) + "\n")


def vectors_for(texts, matrix) -> Vectors:
    index = {t: i for i, t in enumerate(texts)}
    return Vectors(lambda role: "any", {"any": (index, np.asarray(matrix, dtype=np.float32))})


def make_task(tmp_path, **cfg):
    config = ClusteringConfig(type="clustering", dataset={"path": str(tmp_path / "ds")}, **cfg)
    return ClusteringTask("clu", config, DatasetResolver(tmp_path), seed=7, bootstrap=0)


@pytest.fixture
def blobs(tmp_path):
    rng = np.random.default_rng(0)
    k, n = 4, 240
    centers = rng.normal(size=(k, 16)) * 2
    y = rng.integers(0, k, size=n)
    x = (centers[y] + rng.normal(size=(n, 16)) * 1.5).astype(np.float32)
    texts = [f"doc {i}" for i in range(n)]
    write_split(tmp_path / "ds", texts, y)
    return texts, x, y


def test_metrics_match_sklearn(tmp_path, blobs):
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import (adjusted_mutual_info_score, adjusted_rand_score,
                                 davies_bouldin_score, silhouette_score, v_measure_score)

    texts, x, y = blobs
    task = make_task(tmp_path, n_seeds=3, batch_size=64)
    res = task.evaluate(vectors_for(texts, x), EncoderContext("fake"))
    v, ari, ami, sil, db = [], [], [], [], []
    for seed in (7, 8, 9):
        pred = MiniBatchKMeans(n_clusters=4, batch_size=64, n_init="auto",
                               random_state=seed).fit(x).labels_
        v.append(v_measure_score(y, pred))
        ari.append(adjusted_rand_score(y, pred))
        ami.append(adjusted_mutual_info_score(y, pred))
        sil.append(silhouette_score(x, pred, metric="cosine"))
        db.append(davies_bouldin_score(x, pred))
    m = res.metrics
    assert 0.3 < np.mean(v) < 1.0
    assert m["v_measure"].value == pytest.approx(np.mean(v), abs=1e-12)
    assert m["v_measure"].std == pytest.approx(np.std(v), abs=1e-12)
    assert res.details["per_seed"]["v_measure"] == pytest.approx(v, abs=1e-12)
    assert m["ari"].value == pytest.approx(np.mean(ari), abs=1e-12)
    assert m["ami"].value == pytest.approx(np.mean(ami), abs=1e-12)
    assert m["silhouette_gold"].value == pytest.approx(silhouette_score(x, y, metric="cosine"),
                                                       abs=1e-6)
    assert m["silhouette_pred"].value == pytest.approx(np.mean(sil), abs=1e-6)
    assert m["davies_bouldin_gold"].value == pytest.approx(davies_bouldin_score(x, y), rel=1e-6)
    assert m["davies_bouldin_pred"].value == pytest.approx(np.mean(db), rel=1e-6)
    assert res.main_metric == "v_measure"
    assert res.details["seeds"] == [7, 8, 9] and res.details["n_clusters"] == 4
    assert res.details["silhouette_sample"] == 240 and m["silhouette_gold"].n == 240
    higher = {k: met.higher_is_better for k, met in m.items()}
    assert higher == {"v_measure": True, "ari": True, "ami": True, "silhouette_gold": True,
                      "silhouette_pred": True, "davies_bouldin_gold": False,
                      "davies_bouldin_pred": False}
    assert "truncated_fraction" not in m  # the encoder cannot tell


def test_silhouette_on_seeded_sample(tmp_path, blobs):
    from sklearn.metrics import silhouette_score

    texts, x, y = blobs
    task = make_task(tmp_path, n_seeds=1, silhouette_sample=50)
    res = task.evaluate(vectors_for(texts, x), EncoderContext("fake"))
    idx = np.sort(np.random.default_rng(7).choice(240, 50, replace=False))
    assert res.details["silhouette_sample"] == 50
    assert res.metrics["silhouette_gold"].n == 50
    assert res.metrics["silhouette_gold"].value == pytest.approx(
        silhouette_score(x[idx], y[idx], metric="cosine"), abs=1e-6)
    assert res.metrics["v_measure"].n == 240


def test_perfectly_separated_clusters(tmp_path):
    # three tight, far-apart groups: k-means recovers them exactly whatever the seed
    x = np.repeat(np.eye(3, 5) * 10, 10, axis=0) + np.linspace(0, 0.01, 30)[:, None]
    y = np.repeat([0, 1, 2], 10)
    texts = [f"p{i}" for i in range(30)]
    write_split(tmp_path / "ds", texts, y)
    res = make_task(tmp_path, n_seeds=2).evaluate(vectors_for(texts, x), EncoderContext("f"))
    assert res.metrics["v_measure"].value == pytest.approx(1.0)
    assert res.metrics["ari"].value == pytest.approx(1.0)
    assert res.metrics["ami"].value == pytest.approx(1.0)
    assert res.metrics["v_measure"].std == pytest.approx(0.0)
    assert res.metrics["silhouette_gold"].value > 0.99


@pytest.mark.parametrize("raw,clean", [
    ("Re: about the bible quiz answers", "about the bible quiz answers"),
    ("RE: Re: re:Clipper chip", "Clipper chip"),
    ("  re : spaced out", "spaced out"),
    ("Reply to everyone", "Reply to everyone"),
    ("Question Re: drivers", "Question Re: drivers"),
    ("Re:", ""),
])
def test_strip_reply(raw, clean):
    assert strip_reply(raw) == clean


def test_subject_field_is_stripped(tmp_path):
    subjects = ["Re: Space", "RE: re: Space", "Hockey", "re: Hockey"]
    write_split(tmp_path / "ds", ["t1", "t2", "t3", "t4"], [0, 0, 1, 1], subjects)
    task = make_task(tmp_path, field="subject")
    assert task.texts == ["Space", "Space", "Hockey", "Hockey"]
    assert [n.texts for n in task.needs()] == [("Space", "Space", "Hockey", "Hockey")]
    # text field is untouched
    assert make_task(tmp_path).texts == ["t1", "t2", "t3", "t4"]
    with pytest.raises(UserError, match="no text column 'title'"):
        make_task(tmp_path, field="title")


def test_truncated_fraction_when_encoder_can_tell(tmp_path, blobs):
    texts, x, y = blobs
    lengths = {t: (600 if i % 4 == 0 else 20) for i, t in enumerate(texts)}  # 60 of 240 long
    ctx = EncoderContext("fake", token_lengths=lambda ts: np.array([lengths[t] for t in ts]),
                         max_seq_length=256)
    res = make_task(tmp_path, n_seeds=1).evaluate(vectors_for(texts, x), ctx)
    met = res.metrics["truncated_fraction"]
    assert met.value == pytest.approx(0.25) and met.higher_is_better is False
    assert res.details["max_seq_length"] == 256
    no_len = EncoderContext("fake", token_lengths=None, max_seq_length=256)
    res2 = make_task(tmp_path, n_seeds=1).evaluate(vectors_for(texts, x), no_len)
    assert "truncated_fraction" not in res2.metrics


def test_config_and_data_errors(tmp_path):
    with pytest.raises(ValidationError):
        ClusteringConfig(type="clustering", dataset="x", seeds=3)
    with pytest.raises(ValidationError):
        ClusteringConfig(type="clustering", dataset="x", n_seeds=0)
    write_split(tmp_path / "ds", ["a", "b", "c"], [0, 0, 0])
    with pytest.raises(UserError, match="at least 2 gold labels"):
        make_task(tmp_path)
    cfg = ClusteringConfig(type="clustering", dataset="twentynewsgroups", field="text")
    assert ClusteringTask.metric_names(cfg)[0] == "v_measure"
