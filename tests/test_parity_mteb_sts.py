"""mteb's own STS evaluation on the same local data and the same vectors gives the same
Spearman (1e-6): the built-in STSBenchmark / SICK-R tasks are given our local split
instead of a Hub download, and an encoder that serves the precomputed MiniLM vectors."""

from __future__ import annotations

import numpy as np
import pytest

from evalharness.data.local import load_pairs
from evalharness.embeddings.planner import Vectors
from evalharness.tasks.base import EncoderContext
from evalharness.tasks.sts import STSTask

pytestmark = pytest.mark.integration


class PrecomputedEncoder:
    """mteb EncoderProtocol that looks vectors up by text (no model call)."""

    def __init__(self, lookup):
        self.lookup = lookup

    def encode(self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None,
               prompt_type=None, **kwargs):
        rows = []
        for batch in inputs:
            rows.extend(self.lookup[t] for t in batch["text"])
        return np.vstack(rows)

    def similarity(self, a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return a @ b.T

    def similarity_pairwise(self, a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return (a * b).sum(axis=1)

    @property
    def mteb_model_meta(self):
        return None


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

    class _V(Vectors):
        def __init__(self):
            pass

        def get(self, role, ts):
            return np.vstack([lookup[t] for t in ts])

    ours = task.evaluate(_V(), EncoderContext("minilm")).metrics

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
