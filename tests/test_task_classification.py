"""Classification task on tiny synthetic data, checked against scikit-learn, MTEB's own
undersampling, and hand-computed kNN votes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.errors import UserError
from evalharness.components import EncoderContext
from evalharness.tasks.classification import (
    ClassificationConfig,
    ClassificationTask,
    first_per_label,
    mteb_undersample,
)


def write_split(folder, split, texts, labels, names=None):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}.jsonl", "w") as fh:
        for i, (t, y) in enumerate(zip(texts, labels)):
            row = {"text": t, "label": int(y), "id": f"{split}-{i}"}
            if names:
                row["label_name"] = names[int(y)]
            fh.write(json.dumps(row) + "\n")


def vectors_for(texts, matrix) -> Vectors:
    index = {t: i for i, t in enumerate(texts)}
    return Vectors(lambda role: "any", {"any": (index, np.asarray(matrix, dtype=np.float32))})


def make_task(tmp_path, **cfg):
    cfg.setdefault("dataset", {"path": str(tmp_path / "ds")})
    config = ClassificationConfig(type="classification", **cfg)
    return ClassificationTask("clf", config, DatasetResolver(tmp_path), seed=42, bootstrap=200)


def blobs(n, k, dim, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, dim)) * 3
    y = rng.integers(0, k, size=n)
    return centers[y] + rng.normal(size=(n, dim)) * spread, y


@pytest.fixture
def dataset(tmp_path):
    """Overlapping blobs (so the probe makes some mistakes): 120 train, 60 test."""
    x, y = blobs(180, 3, 8, seed=0, spread=2.5)
    texts = [f"t{i}" for i in range(180)]
    names = ["alpha", "beta", "gamma"]
    write_split(tmp_path / "ds", "train", texts[:120], y[:120], names)
    write_split(tmp_path / "ds", "test", texts[120:], y[120:], names)
    return {"texts": texts, "x": x.astype(np.float32), "y": y, "names": names,
            "vectors": vectors_for(texts, x)}


def test_linear_probe_matches_sklearn(tmp_path, dataset):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    task = make_task(tmp_path, protocol="linear-probe")
    res = task.evaluate(dataset["vectors"], EncoderContext("fake"))
    x, y = dataset["x"], dataset["y"]
    pred = LogisticRegression(max_iter=1000).fit(x[:120], y[:120]).predict(x[120:])
    y_test = y[120:]
    acc = accuracy_score(y_test, pred)
    assert 0.5 < acc < 1.0  # not trivial: some errors to count
    assert res.metrics["accuracy"].value == pytest.approx(acc, abs=1e-12)
    assert res.metrics["macro_f1"].value == pytest.approx(f1_score(y_test, pred, average="macro"))
    assert res.metrics["weighted_f1"].value == pytest.approx(
        f1_score(y_test, pred, average="weighted"))
    assert res.main_metric == "accuracy"
    # per-item arrays recompute the metrics; CIs bracket the values
    assert res.items["y_pred"] == pred.tolist()
    assert res.items["correct"] == (pred == y_test).astype(int).tolist()
    assert res.items["id"][0] == "test-0"
    lo, hi = res.metrics["accuracy"].ci
    assert lo <= acc <= hi
    assert res.metrics["macro_f1"].stat == "macro_f1"
    assert res.metrics["macro_f1"].inputs == ["y_true", "y_pred"]
    assert res.metrics["accuracy"].n == 60
    assert res.details["labels"] == ["alpha", "beta", "gamma"]
    assert res.details["confusion_matrix"] == confusion_matrix(y_test, pred).tolist()
    assert res.details["converged"] is True
    assert "protocol_note" not in res.details


def test_knn_by_hand(tmp_path):
    # 2-d vectors: cosine neighbours are read off the angles (degrees in the comments)
    train = {"a0": ([1, 0], 0), "a1": ([1, 0.1], 0), "a2": ([1, -0.1], 0),   # 0, 5.7, -5.7
             "b0": ([0, 1], 1), "b1": ([0.1, 1], 1), "c0": ([-1, 0.2], 2)}   # 90, 84.3, 168.7
    test = {"q0": ([1, 0.05], 0),    # 2.9: a1, a0, a2 -> 0
            "q1": ([0.2, 1], 1),     # 78.7: b1, b0, a1 -> 1
            "q2": ([-1, 0.5], 2),    # 153.4: c0, b0, b1 -> 1 (outvoted)
            "q3": ([0.5, -1], 1)}    # -63.4: a2, a0, a1 -> 0
    texts = list(train) + list(test)
    mat = np.array([v for v, _ in train.values()] + [v for v, _ in test.values()], float)
    write_split(tmp_path / "ds", "train", list(train), [y for _, y in train.values()])
    write_split(tmp_path / "ds", "test", list(test), [y for _, y in test.values()])
    vecs = vectors_for(texts, mat)
    res = make_task(tmp_path, protocol="knn", k=3).evaluate(vecs, EncoderContext("fake"))
    assert res.items["y_pred"] == [0, 1, 1, 0]
    assert res.items["correct"] == [1, 1, 0, 0]
    assert res.metrics["accuracy"].value == 0.5
    assert res.details["k"] == 3
    # k=1: the single nearest neighbour (a1, b1, c0, a2)
    k1 = make_task(tmp_path, protocol="knn", k=1).evaluate(vecs, EncoderContext("fake"))
    assert k1.items["y_pred"] == [0, 1, 2, 0]
    assert k1.metrics["accuracy"].value == 0.75
    with pytest.raises(UserError, match="k <= the number of train items"):
        make_task(tmp_path, protocol="knn", k=7).evaluate(vecs, EncoderContext("fake"))


def test_mteb_undersample_matches_mteb():
    from datasets import Dataset
    from mteb.abstasks.classification import AbsTaskClassification

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=97)
    ds = Dataset.from_dict({"text": [str(i) for i in range(97)], "label": labels.tolist()})

    class Probe(AbsTaskClassification):  # only the undersampling is used
        def __init__(self):
            self.seed = 42
            self.samples_per_label = 5

    probe, idxs = Probe(), None
    ours = mteb_undersample(labels, n_experiments=6, samples_per_label=5, seed=42)
    for i in range(6):
        _, idxs, selected = probe._undersample_data(ds, i, idxs)
        assert ours[i].tolist() == selected


def test_first_per_label_keeps_order():
    order = np.array([5, 2, 7, 0, 3, 6, 1, 4])
    labels = np.array([0, 1, 0, 1, 0, 1, 0, 1])  # label of index i
    # in order: 5(1) 2(0) 7(1) 0(0) 3(1) 6(0) 1(1) 4(0) -> first 2 of each
    assert first_per_label(order, labels, 2).tolist() == [5, 2, 7, 0]


def test_mteb_fewshot_matches_manual_protocol(tmp_path, dataset):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    task = make_task(tmp_path, protocol="mteb-fewshot", n_experiments=4, samples_per_label=3)
    # only the drawn train items are requested from the encoder
    needed = {t for need in task.needs() for t in need.texts}
    assert len(needed) < 60 + 120
    res = task.evaluate(dataset["vectors"], EncoderContext("fake"))
    x, y = dataset["x"], dataset["y"]
    xtr, ytr, xte, yte = x[:120], y[:120], x[120:], y[120:]
    # MTEB's draw, written out: shuffle one list in place with a fresh RandomState(42)
    idxs, accs, f1s, preds = list(range(120)), [], [], []
    for _ in range(4):
        np.random.RandomState(42).shuffle(idxs)
        count, sel = {}, []
        for i in idxs:
            if count.get(ytr[i], 0) < 3:
                sel.append(i)
                count[ytr[i]] = count.get(ytr[i], 0) + 1
        assert {f"t{i}" for i in sel} <= needed
        p = LogisticRegression(max_iter=100, random_state=42).fit(xtr[sel], ytr[sel]).predict(xte)
        preds.append(p)
        accs.append(accuracy_score(yte, p))
        f1s.append(f1_score(yte, p, average="macro"))
    acc = res.metrics["accuracy"]
    assert acc.value == pytest.approx(np.mean(accs), abs=1e-12)
    assert acc.std == pytest.approx(np.std(accs), abs=1e-12)
    assert res.metrics["macro_f1"].value == pytest.approx(np.mean(f1s), abs=1e-12)
    assert res.details["per_experiment"]["accuracy"] == pytest.approx(accs)
    # items: fraction of experiments right per item; its mean is the mean accuracy
    frac = (np.array(preds) == yte).mean(axis=0)
    assert res.items["correct"] == pytest.approx(frac.tolist())
    assert np.mean(res.items["correct"]) == pytest.approx(np.mean(accs))
    assert res.items["y_pred"] == preds[0].tolist()
    assert np.sum(res.details["confusion_matrix"]) == 4 * 60
    assert res.details["n_experiments"] == 4 and res.details["max_iter"] == 100


def test_no_train_split_uses_stratified_kfold(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import StratifiedKFold

    x, y = blobs(90, 3, 6, seed=1, spread=2.0)
    texts = [f"s{i}" for i in range(90)]
    write_split(tmp_path / "ds", "test", texts, y)  # no train.jsonl
    task = make_task(tmp_path, protocol="linear-probe", folds=3)
    res = task.evaluate(vectors_for(texts, x), EncoderContext("fake"))
    assert "3-fold cross-validation" in res.details["protocol_note"]
    assert "no 'train' split" in res.details["protocol_note"]
    pred = np.empty(90, dtype=int)
    xs = x.astype(np.float32)
    for tr, te in StratifiedKFold(3, shuffle=True, random_state=42).split(xs, y):
        pred[te] = LogisticRegression(max_iter=1000).fit(xs[tr], y[tr]).predict(xs[te])
    assert res.items["y_pred"] == pred.tolist()
    assert res.metrics["accuracy"].value == pytest.approx(accuracy_score(y, pred))
    assert res.metrics["accuracy"].n == 90
    # explicit train_split: null forces the same path even when a train split exists
    write_split(tmp_path / "ds", "train", texts[:30], y[:30])
    again = make_task(tmp_path, protocol="linear-probe", folds=3, train_split=None)
    res2 = again.evaluate(vectors_for(texts, x), EncoderContext("fake"))
    assert res2.items["y_pred"] == pred.tolist()
    assert "train_split is null" in res2.details["protocol_note"]
    # few-shot under cross-validation: every experiment predicts every item once
    fs = make_task(tmp_path, protocol="mteb-fewshot", folds=3, train_split=None,
                   n_experiments=3, samples_per_label=4)
    res3 = fs.evaluate(vectors_for(texts, x), EncoderContext("fake"))
    assert len(res3.details["per_experiment"]["accuracy"]) == 3
    assert np.sum(res3.details["confusion_matrix"]) == 3 * 90


def test_labels_are_aligned_by_name_across_splits(tmp_path):
    # train knows a, b, c; test has only b and c, so its own codes would be 0, 1
    write_split(tmp_path / "ds", "train", ["a1", "a2", "b1", "b2", "c1", "c2"],
                [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    with open(tmp_path / "ds" / "test.jsonl", "w") as fh:
        for t, name in (("qb", "b"), ("qc", "c")):
            fh.write(json.dumps({"text": t, "label": name, "label_name": name}) + "\n")
    mat = {"a1": [1, 0, 0], "a2": [1, .1, 0], "b1": [0, 1, 0], "b2": [.1, 1, 0],
           "c1": [0, 0, 1], "c2": [0, .1, 1], "qb": [0, 1, .1], "qc": [.1, 0, 1]}
    task = make_task(tmp_path, protocol="knn", k=1)
    res = task.evaluate(vectors_for(list(mat), list(mat.values())), EncoderContext("fake"))
    assert res.details["labels"] == ["a", "b", "c"]
    assert res.items["y_true"] == [1, 2]
    assert res.items["y_pred"] == [1, 2]
    assert res.metrics["accuracy"].value == 1.0


def test_config_errors(tmp_path, dataset):
    with pytest.raises(ValidationError):
        ClassificationConfig(type="classification", dataset="x", protocol="svm")
    with pytest.raises(ValidationError):
        ClassificationConfig(type="classification", dataset="x", n_neighbours=3)
    with pytest.raises(UserError, match="scored on its own training data"):
        make_task(tmp_path, train_split="test")
    cfg = ClassificationConfig(type="classification", dataset="agnews",
                               protocol="mteb-fewshot", train_split="train")
    assert ClassificationTask.metric_names(cfg) == ["accuracy", "macro_f1", "weighted_f1"]


def test_limits_apply_to_test_and_train(tmp_path, dataset):
    task = make_task(tmp_path, protocol="linear-probe", limit=20, train_limit=50)
    assert len(task.test_texts) == 20 and len(task.train_texts) == 50
    res = task.evaluate(dataset["vectors"], EncoderContext("fake"))
    assert res.metrics["accuracy"].n == 20
    assert res.details["n_train"] == 50
