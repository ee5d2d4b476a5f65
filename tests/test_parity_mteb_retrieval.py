"""Parity with MTEB's retrieval evaluation (its pytrec_eval path plus its own MRR) on real
MS MARCO (TREC DL 2019) data and real MiniLM vectors.

MTEB is fed what its search step would hand to ``RetrievalEvaluator.evaluate``: per
query, the cosine score of every document (computed here independently, in float64,
from the same vectors), with the same qrels. Our task runs its own chunked search."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.components import EncoderContext
from evalharness.tasks.retrieval import RetrievalConfig, RetrievalTask

N_DOCS = 2000  # the first 2000 passages of the 5000 (keeps encoding small); all 43 queries
K_VALUES = [1, 3, 5, 10, 100]


@pytest.fixture(scope="module")
def msmarco_subset(shared_data, tmp_path_factory):
    src = shared_data / "msmarco"
    dst = tmp_path_factory.mktemp("msmarco_subset")
    with open(src / "corpus.jsonl", encoding="utf-8") as f:
        lines = list(itertools.islice(f, N_DOCS))
    (dst / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    for name in ("queries.jsonl", "qrels.tsv"):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_retrieval_matches_mteb_on_msmarco_minilm(msmarco_subset, minilm_embed):
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    config = RetrievalConfig(type="retrieval", dataset={"path": str(msmarco_subset)},
                             chunk_mb=1)  # several blocks of documents
    task = RetrievalTask("msmarco", config, DatasetResolver(), seed=0, bootstrap=200)
    assert len(task.query_ids) == 43 and len(task.doc_ids) == N_DOCS
    qv = minilm_embed(task.query_texts, "query")
    dv = minilm_embed(task.doc_texts, "document")
    vectors = Vectors(lambda role: role, {
        "query": ({t: i for i, t in enumerate(task.query_texts)}, qv),
        "document": ({t: i for i, t in enumerate(task.doc_texts)}, dv)})
    res = task.evaluate(vectors, EncoderContext("minilm", 384))

    q = qv.astype(np.float64)
    d = dv.astype(np.float64)
    s = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ \
        (d / np.linalg.norm(d, axis=1, keepdims=True)).T
    results = {qid: dict(zip(task.doc_ids, map(float, row)))
               for qid, row in zip(task.query_ids, s)}
    # what mteb.RetrievalEvaluator.evaluate calls (with ignore_identical_ids=False)
    ref = calculate_retrieval_scores(results, task.qrels, K_VALUES)

    for name, measure in [("ndcg_at_10", "ndcg_cut_10"), ("recall_at_100", "recall_100")]:
        ours = np.asarray(res.items[name])
        theirs = np.array([ref.all_scores[qid][measure] for qid in task.query_ids])
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6, err_msg=name)
        assert res.metrics[name].value == pytest.approx(theirs.mean(), abs=1e-6)
    assert res.metrics["mrr_at_10"].value == pytest.approx(ref.mrr["MRR@10"], abs=1e-6)
    # MTEB's reported (5-decimal rounded) means
    for k in K_VALUES:
        assert res.metrics[f"ndcg_at_{k}"].value == pytest.approx(ref.ndcg[f"NDCG@{k}"],
                                                                  abs=5e-6)
        assert res.metrics[f"map_at_{k}"].value == pytest.approx(ref.map[f"MAP@{k}"], abs=5e-6)
        assert res.metrics[f"recall_at_{k}"].value == pytest.approx(ref.recall[f"Recall@{k}"],
                                                                    abs=5e-6)
        assert res.metrics[f"precision_at_{k}"].value == pytest.approx(ref.precision[f"P@{k}"],
                                                                       abs=5e-6)
        assert res.metrics[f"mrr_at_{k}"].value == pytest.approx(ref.mrr[f"MRR@{k}"], abs=1e-6)
    # a real model retrieves far better than chance on TREC DL 2019
    assert res.metrics["ndcg_at_10"].value > 0.3
