"""ANN check: recall@k of Annoy and HNSW against brute-force exact search, nDCG@10 through
the index vs the retrieval task's exact nDCG@10."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from evalharness.checks.ann import (AnnCheck, AnnConfig, AnnoyParams, HnswParams, annoy_search,
                                    hnsw_search, ndcg_at_10, recall_at_k)
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.tasks.retrieval import RetrievalConfig, RetrievalTask


def brute_topk(q, d, k):
    """Exact cosine top-k by a full argsort (independent of tasks.search)."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    return np.argsort(-(qn.astype(np.float64) @ dn.T.astype(np.float64)), axis=1,
                      kind="stable")[:, :k]


def brute_recall(approx, exact, k):
    return np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx, exact)])


def test_recall_at_k_by_hand():
    approx = np.array([[1, 2, 3], [4, 5, -1]])
    exact = np.array([[3, 2, 9], [6, 7, 8]])
    np.testing.assert_allclose(recall_at_k(approx, exact, 3), [2 / 3, 0.0])
    np.testing.assert_allclose(recall_at_k(approx, exact, 2), [0.5, 0.0])


@pytest.mark.parametrize("backend", ["annoy", "hnsw"])
def test_recall_against_brute_force_on_random_vectors(backend):
    rng = np.random.default_rng(0)
    d = rng.standard_normal((2000, 32)).astype(np.float32)
    q = rng.standard_normal((100, 32)).astype(np.float32)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = brute_topk(q, d, 10)
    if backend == "annoy":
        ranking, _, _ = annoy_search(d, q, 10, AnnoyParams(n_trees=20), seed=1)
    else:
        ranking, _, _ = hnsw_search(d, q, 10, HnswParams(M=16, ef_construction=100, ef=50), 1)
    got = recall_at_k(ranking, exact, 10).mean()
    assert got == pytest.approx(brute_recall(ranking, exact, 10))
    print(f"{backend} recall@10 on 2000 random 32-d vectors: {got:.3f}")
    assert 0.5 < got <= 1.0
    # seeded and single-threaded: the same index gives the same neighbours
    again = (annoy_search(d, q, 10, AnnoyParams(n_trees=20), seed=1)[0] if backend == "annoy"
             else hnsw_search(d, q, 10, HnswParams(M=16, ef_construction=100, ef=50), 1)[0])
    np.testing.assert_array_equal(again, ranking)


def test_exhaustive_settings_reach_recall_one():
    rng = np.random.default_rng(1)
    d = rng.standard_normal((300, 8)).astype(np.float32)
    q = rng.standard_normal((20, 8)).astype(np.float32)
    exact = brute_topk(q, d, 10)
    ranking, _, _ = hnsw_search(d / np.linalg.norm(d, axis=1, keepdims=True),
                                q / np.linalg.norm(q, axis=1, keepdims=True), 10,
                                HnswParams(M=32, ef_construction=400, ef=300), seed=0)
    assert recall_at_k(ranking, exact, 10).mean() == 1.0


def _beir(folder, n_docs=300, n_queries=25, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for i in range(n_docs):
            f.write(json.dumps({"_id": f"d{i}", "title": "", "text": f"document {i}"}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for i in range(n_queries):
            f.write(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n")
    rows = [(f"q{i}", f"d{j}", int(rng.integers(1, 3))) for i in range(n_queries)
            for j in rng.choice(n_docs, 3, replace=False)]
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                      + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows))
    return folder


def _vectors(texts_by_role: dict[str, list[str]], dim=16, seed=0) -> Vectors:
    rng = np.random.default_rng(seed)
    tables = {}
    for role, texts in texts_by_role.items():
        tables[role] = ({t: i for i, t in enumerate(texts)},
                        rng.standard_normal((len(texts), dim)).astype(np.float32))
    return Vectors(lambda role: role, tables)


def test_check_end_to_end_matches_the_retrieval_task(tmp_path):
    folder = _beir(tmp_path / "toy")
    ref = {"path": str(folder)}
    cfg = AnnConfig(type="ann", dataset=ref, hnsw={"ef": 20}, annoy={"n_trees": 5})
    check = AnnCheck("ann", cfg, DatasetResolver(), seed=3, bootstrap=50)
    task = RetrievalTask("ret", RetrievalConfig(type="retrieval", dataset=ref),
                         DatasetResolver(), seed=3, bootstrap=50)
    vec = _vectors({"query": check.query_texts, "document": check.doc_texts})
    res = check.evaluate(vec, None)
    assert set(res.metrics) == set(AnnCheck.metric_names(cfg))
    assert res.main_metric == "annoy_recall_at_10"
    exact_task = task.evaluate(vec, None).metrics["ndcg_at_10"].value
    assert res.metrics["exact_ndcg_at_10"].value == pytest.approx(exact_task)
    q, d = vec.get("query", check.query_texts), vec.get("document", check.doc_texts)
    exact = brute_topk(q, d, 10)
    for b in ("annoy", "hnsw"):
        per = np.array(res.items[f"{b}_recall"])
        assert 0 <= per.min() and per.max() <= 1
        assert res.metrics[f"{b}_build_seconds"].machine_dependent is True
        assert res.metrics[f"{b}_recall_at_10"].ci is not None
    # the index ranking scored with the retrieval metric code equals brute-force scoring
    ranking, _, _ = hnsw_search(d / np.linalg.norm(d, axis=1, keepdims=True),
                                q / np.linalg.norm(q, axis=1, keepdims=True), 10,
                                HnswParams(ef=20), seed=3)
    assert res.metrics["hnsw_ndcg_at_10"].value == pytest.approx(
        ndcg_at_10(ranking, check.qrels, check.query_ids, check.doc_ids).mean())
    assert res.metrics["hnsw_recall_at_10"].value == pytest.approx(
        brute_recall(ranking, exact, 10))


def test_ndcg_counts_missing_ranks_as_misses():
    qrels = {"a": {"x": 1, "y": 1}}
    full = ndcg_at_10(np.array([[0, 1]]), qrels, ["a"], ["x", "y", "z"])
    short = ndcg_at_10(np.array([[0, -1]]), qrels, ["a"], ["x", "y", "z"])
    assert full[0] == pytest.approx(1.0)
    assert short[0] == pytest.approx(1.0 / (1.0 + 1.0 / np.log2(3)))


def test_config_validation():
    with pytest.raises(ValidationError):
        AnnConfig(type="ann", dataset="msmarco", backends=["faiss"])
    with pytest.raises(ValidationError):
        AnnConfig(type="ann", dataset="msmarco", hnsw={"m": 8})
    with pytest.raises(ValidationError, match="twice"):
        AnnConfig(type="ann", dataset="msmarco", backends=["hnsw", "hnsw"])


@pytest.mark.integration
def test_msmarco_minilm_recall(shared_data, minilm_embed):
    check = AnnCheck("ann", AnnConfig(type="ann", dataset="msmarco"),
                     DatasetResolver(shared_data), seed=42, bootstrap=200)
    q = minilm_embed(check.query_texts, "query")
    d = minilm_embed(check.doc_texts, "document")
    vec = Vectors(lambda role: role, {
        "query": ({t: i for i, t in enumerate(check.query_texts)}, q),
        "document": ({t: i for i, t in enumerate(check.doc_texts)}, d)})
    m = check.evaluate(vec, None).metrics
    exact = brute_topk(q, d, 10)
    print("msmarco MiniLM: " + ", ".join(f"{k}={v.value:.4f}" for k, v in m.items()))
    for b in ("annoy", "hnsw"):
        assert m[f"{b}_recall_at_10"].value > 0.8
    assert m["exact_ndcg_at_10"].value > 0.3
    assert brute_recall(exact, exact, 10) == 1.0
