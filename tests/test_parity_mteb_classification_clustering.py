"""mteb's own classification and clustering evaluation, fed the same local data and the
same MiniLM vectors, gives the same numbers as our tasks:

- few-shot classification (AG News subset): mteb's ``AbsTaskClassification.evaluate``
  (its undersampling, LogisticRegression and scoring) on the built-in NewsClassification
  task given our local splits; accuracy and F1 per experiment and on average, to 1e-6.
- clustering (20 Newsgroups subset): mteb's ``ClusteringEvaluator`` run with each of our
  seeds; V-measure per seed and on average, to 1e-6.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import v_measure_score

from evalharness.data.local import load_labelled
from evalharness.data.resolve import DatasetResolver
from evalharness.components import EncoderContext
from evalharness.tasks.classification import ClassificationTask
from evalharness.tasks.clustering import ClusteringTask

from mteb_helpers import PrecomputedEncoder, lookup_vectors

pytestmark = pytest.mark.integration


def write_subset(folder, split, data, rows):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as fh:
        for i in rows:
            fh.write(json.dumps({"text": data.texts[i], "label": int(data.labels[i]),
                                 "label_name": data.label_names[data.labels[i]]}) + "\n")


@pytest.fixture(scope="module")
def agnews_subset(shared_data, minilm_embed, tmp_path_factory):
    """400 train and 1000 test AG News texts (seeded draw), with their MiniLM vectors."""
    train = load_labelled(shared_data / "agnews", "train", "agnews")
    test = load_labelled(shared_data / "agnews", "test", "agnews")
    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(len(train), 400, replace=False))
    te = np.sort(rng.choice(len(test), 1000, replace=False))
    root = tmp_path_factory.mktemp("agnews-subset")
    write_subset(root / "agnews", "train", train, tr)
    write_subset(root / "agnews", "test", test, te)
    texts = list(dict.fromkeys([train.texts[i] for i in tr] + [test.texts[i] for i in te]))
    lookup = dict(zip(texts, minilm_embed(texts)))
    return root, train, test, tr, te, lookup


def mteb_news_scores(agnews_subset, *, n_experiments: int, samples_per_label: int) -> dict:
    """mteb's NewsClassification (AG News) evaluated on our subset and vectors, seed 42."""
    import mteb
    from datasets import Dataset, DatasetDict

    _, train, test, tr, te, lookup = agnews_subset
    mt = mteb.get_task("NewsClassification")
    mt.n_experiments, mt.samples_per_label, mt.seed = n_experiments, samples_per_label, 42
    mt.dataset = {"default": DatasetDict({
        "train": Dataset.from_dict({"text": [train.texts[i] for i in tr],
                                    "label": train.labels[tr].tolist()}),
        "test": Dataset.from_dict({"text": [test.texts[i] for i in te],
                                   "label": test.labels[te].tolist()})})}
    mt.data_loaded = True
    return mt.evaluate(PrecomputedEncoder(lookup), "test",
                       encode_kwargs={"batch_size": 64})["default"]


def test_fewshot_classification_equals_mteb(agnews_subset):
    root, train, test, tr, te, lookup = agnews_subset
    task = ClassificationTask(
        "agnews_fewshot",
        ClassificationTask.Config(type="classification", dataset="agnews",
                                  protocol="mteb-fewshot", train_split="train", bootstrap=0),
        DatasetResolver(root), seed=42)
    ours = task.evaluate(lookup_vectors(lookup), EncoderContext("minilm"))

    scores = mteb_news_scores(agnews_subset, n_experiments=10, samples_per_label=8)

    per_exp = scores["scores_per_experiment"]
    assert len(per_exp) == 10
    np.testing.assert_allclose(ours.details["per_experiment"]["accuracy"],
                               [s["accuracy"] for s in per_exp], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.details["per_experiment"]["macro_f1"],
                               [s["f1"] for s in per_exp], rtol=0, atol=1e-6)
    assert ours.metrics["accuracy"].value == pytest.approx(scores["accuracy"], abs=1e-6)
    assert ours.metrics["macro_f1"].value == pytest.approx(scores["f1"], abs=1e-6)
    assert ours.metrics["weighted_f1"].value == pytest.approx(scores["f1_weighted"], abs=1e-6)
    assert ours.metrics["accuracy"].std == pytest.approx(
        np.std([s["accuracy"] for s in per_exp]), abs=1e-6)
    assert 0.6 < ours.metrics["accuracy"].value < 0.95  # 8 shots per label, MiniLM


def test_linear_probe_equals_mteb_with_every_train_item(agnews_subset):
    """mteb's protocol with one experiment and no undersampling limit is a linear probe
    on all train items (in shuffled order); ours with the same max_iter agrees."""
    root, train, test, tr, te, lookup = agnews_subset
    task = ClassificationTask(
        "agnews",
        ClassificationTask.Config(type="classification", dataset="agnews", max_iter=100,
                                  protocol="linear-probe", train_split="train", bootstrap=0),
        DatasetResolver(root), seed=42)
    ours = task.evaluate(lookup_vectors(lookup), EncoderContext("minilm"))
    scores = mteb_news_scores(agnews_subset, n_experiments=1, samples_per_label=10**6)
    assert ours.metrics["accuracy"].value == pytest.approx(scores["accuracy"], abs=1e-6)
    assert ours.metrics["macro_f1"].value == pytest.approx(scores["f1"], abs=1e-6)


def test_clustering_v_measure_equals_mteb(shared_data, minilm_embed):
    import mteb
    from datasets import Dataset
    from mteb._evaluators import ClusteringEvaluator
    from mteb.timing import TimingStack

    data = load_labelled(shared_data / "twentynewsgroups", "test", "twentynewsgroups")
    rows = np.arange(0, len(data), 5)  # every 5th text: ~1460, all 20 groups
    texts = [data.texts[i] for i in rows]
    labels = data.labels[rows]
    uniq = list(dict.fromkeys(texts))
    lookup = dict(zip(uniq, minilm_embed(uniq)))

    class _Resolver:
        def labelled(self, ref, split):
            return type(data)(texts, labels, data.label_names, data.info)

    task = ClusteringTask("news20", ClusteringTask.Config(
        type="clustering", dataset="twentynewsgroups", field="text", n_seeds=3),
        _Resolver(), seed=42)
    ours = task.evaluate(lookup_vectors(lookup), EncoderContext("minilm"))

    meta = mteb.get_task("TwentyNewsgroupsClustering").metadata
    ds = Dataset.from_dict({"sentences": texts, "labels": labels.tolist()})
    theirs = []
    for seed in ours.details["seeds"]:
        evaluator = ClusteringEvaluator(ds, input_column_name="sentences",
                                        label_column_name="labels", task_metadata=meta,
                                        hf_split="test", hf_subset="default",
                                        timer=TimingStack(), seed=seed)
        pred = evaluator(PrecomputedEncoder(lookup), encode_kwargs={"batch_size": 64})
        theirs.append(v_measure_score(labels.tolist(), pred))
    assert ours.details["seeds"] == [42, 43, 44]
    np.testing.assert_allclose(ours.details["per_seed"]["v_measure"], theirs, rtol=0, atol=1e-6)
    assert ours.metrics["v_measure"].value == pytest.approx(np.mean(theirs), abs=1e-6)
    assert ours.metrics["v_measure"].std == pytest.approx(np.std(theirs), abs=1e-6)
    assert 0.2 < ours.metrics["v_measure"].value < 0.8
