"""mteb's own STS evaluation on the same local data and the same vectors gives the same
Spearman (1e-6): the built-in STSBenchmark / SICK-R tasks are given our local split
instead of a Hub download, and an encoder that serves the precomputed MiniLM vectors."""

from __future__ import annotations

import pytest

from evalharness.data.local import load_pairs
from evalharness.components import EncoderContext
from evalharness.tasks.sts import STSTask

from mteb_helpers import PrecomputedEncoder, lookup_vectors

pytestmark = pytest.mark.integration


class _Resolver:
    def __init__(self, data):
        self.data = data

    def pairs(self, ref, split):
        return self.data


@pytest.mark.parametrize("name,mteb_task", [("stsb", "STSBenchmark"), ("sick", "SICK-R")])
def test_sts_spearman_equals_mteb(shared_data, minilm_embed, name, mteb_task):
    import mteb
    from datasets import Dataset, DatasetDict

    data = load_pairs(shared_data / name, "test", name)
    texts = list(dict.fromkeys(data.sentence1 + data.sentence2))
    vecs = minilm_embed(texts)
    lookup = dict(zip(texts, vecs))

    # ours
    task = STSTask("sts", STSTask.Config(type="sts", dataset=name, bootstrap=0),
                   _Resolver(data))

    ours = task.evaluate(lookup_vectors(lookup), EncoderContext("minilm")).metrics

    # mteb, same data and vectors
    mt = mteb.get_task(mteb_task)
    mt.dataset = {"default": DatasetDict({"test": Dataset.from_dict(
        {"sentence1": data.sentence1, "sentence2": data.sentence2,
         "score": data.scores.tolist()})})}
    mt.data_loaded = True
    scores = mt.evaluate(PrecomputedEncoder(lookup), "test",
                         encode_kwargs={"batch_size": 64})["default"]
    assert ours["cosine_spearman"].value == pytest.approx(scores["cosine_spearman"], abs=1e-6)
    assert ours["cosine_pearson"].value == pytest.approx(scores["cosine_pearson"], abs=1e-6)
    expected = {"stsb": 0.8203, "sick": 0.7715}[name]
    assert ours["cosine_spearman"].value == pytest.approx(expected, abs=5e-4)
