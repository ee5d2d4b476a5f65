"""Retrieval task: chunked exact search, trec_eval metrics (hand-computed and against
pytrec_eval / MTEB's evaluator), and any BEIR folder working unchanged."""

from __future__ import annotations

import json
from math import log2

import numpy as np
import pytest
import pytrec_eval

from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.errors import UserError
from evalharness.tasks import ir_metrics
from evalharness.tasks.base import EncoderContext
from evalharness.tasks.retrieval import RetrievalConfig, RetrievalTask, evaluate_ranking
from evalharness.tasks.search import BYTES_PER_CELL, block_shape, exact_topk

K_ALL = [1, 3, 5, 10, 100]


# helpers ----------------------------------------------------------------------------
def write_beir(folder, corpus, queries, qrels, *, qrels_path="qrels.tsv"):
    """corpus: [(id, title, text)], queries: [(id, text)], qrels: [(qid, did, grade)]."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for did, title, text in corpus:
            f.write(json.dumps({"_id": did, "title": title, "text": text}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, text in queries:
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    p = folder / qrels_path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("query-id\tcorpus-id\tscore\n"
                 + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels))
    return folder


def vectors_of(table: dict[str, dict[str, np.ndarray]]) -> Vectors:
    """Vectors from {role: {text: vector}} (stands in for the embed stage)."""
    tables = {}
    for role, by_text in table.items():
        texts = list(by_text)
        tables[role] = ({t: i for i, t in enumerate(texts)},
                        np.asarray([by_text[t] for t in texts], np.float32))
    return Vectors(lambda role: role, tables)


def make_task(folder, **cfg) -> RetrievalTask:
    config = RetrievalConfig(type="retrieval", dataset={"path": str(folder)}, **cfg)
    return RetrievalTask("ret", config, DatasetResolver(), seed=0, bootstrap=200)


def brute_force(q, d, k, similarity="cosine"):
    """The whole float32 score matrix (the same arithmetic as the search, in one block),
    fully sorted by (score desc, corpus order); plus float64 cosines to check values."""
    q32, d32 = np.asarray(q, np.float32), np.asarray(d, np.float32)
    s = q32 @ d32.T
    s64 = np.asarray(q, np.float64) @ np.asarray(d, np.float64).T
    if similarity == "cosine":
        # inverse norms computed in float64, then rounded to float32 (as the search)
        qn = np.linalg.norm(np.asarray(q, np.float64), axis=1)
        dn = np.linalg.norm(np.asarray(d, np.float64), axis=1)
        qi = np.where(qn > 0, 1 / np.where(qn > 0, qn, 1), 0).astype(np.float32)
        di = np.where(dn > 0, 1 / np.where(dn > 0, dn, 1), 0).astype(np.float32)
        s = s * di[None, :] * qi[:, None]
        s64 = s64 * di[None, :].astype(np.float64) * qi[:, None].astype(np.float64)
    cols = np.broadcast_to(np.arange(d32.shape[0]), s.shape)
    order = np.lexsort((cols, -s), axis=1)[:, :k]  # score desc, then corpus order
    return np.take_along_axis(s64, order, axis=1), order


# search -----------------------------------------------------------------------------
@pytest.mark.parametrize("chunk_bytes", [BYTES_PER_CELL * 7, BYTES_PER_CELL * 997,
                                         2**20, 2**30])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_exact_topk_matches_brute_force_with_ties(chunk_bytes, similarity):
    rng = np.random.default_rng(0)
    # small integers: exact dot products, so duplicated documents tie exactly whatever the
    # block layout (BLAS may otherwise round them differently in the last bit)
    q = rng.integers(-3, 4, size=(23, 6)).astype(np.float32)
    d = rng.integers(-2, 3, size=(600, 6)).astype(np.float32)  # many exact ties
    d[[10, 11, 400]] = d[5]  # duplicated documents: tie across blocks
    d[7] = 0.0  # zero vector: cosine 0
    q[3] = 0.0
    s, idx = exact_topk(q, d, 40, chunk_bytes=chunk_bytes, similarity=similarity)
    ref_s, ref_idx = brute_force(q, d, 40, similarity)
    assert s.dtype == np.float32 and idx.dtype == np.int64 and idx.shape == (23, 40)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(s, ref_s, atol=1e-5)
    # the all-zero query ties everything at 0: corpus order
    np.testing.assert_array_equal(idx[3], np.arange(40))


def test_exact_topk_caps_k_and_rejects_bad_input():
    rng = np.random.default_rng(1)
    q, d = rng.standard_normal((4, 5)), rng.standard_normal((7, 5))
    s, idx = exact_topk(q, d, 100)
    assert idx.shape == (4, 7)
    np.testing.assert_array_equal(np.sort(idx, axis=1), np.tile(np.arange(7), (4, 1)))
    assert np.all(np.diff(s, axis=1) <= 0)
    with pytest.raises(UserError, match="similarity"):
        exact_topk(q, d, 3, similarity="l2")
    with pytest.raises(UserError, match="dimension"):
        exact_topk(q, d[:, :4], 3)


def test_block_shape_stays_within_budget():
    for nq, nd, k, budget in [(1000, 1_000_000, 100, 256 * 2**20), (50_000, 10**6, 100, 2**26),
                              (43, 5000, 100, 256 * 2**20), (10, 10**6, 10, 2**20)]:
        qb, db = block_shape(nq, nd, k, budget)
        assert 1 <= qb <= nq and 1 <= db <= nd
        assert qb * db * BYTES_PER_CELL <= budget
    assert block_shape(43, 5000, 100, 256 * 2**20) == (43, 5000)  # fits: one block


# metrics: hand-computed -------------------------------------------------------------
def hand_folder(tmp_path):
    """Two-dimensional toy: cosines are exact, some tie, one qrels row has score 0."""
    corpus = [("d1", "", "one"), ("d2", "", "two"), ("d3", "", "three"),
              ("d4", "", "four"), ("d5", "", "five")]
    queries = [("q1", "east"), ("q2", "north"), ("q3", "nothing relevant"),
               ("q4", "no judgements")]
    qrels = [("q1", "d1", 1), ("q1", "d3", 2), ("q1", "d5", 3), ("q1", "d4", 0),
             ("q2", "d5", 1), ("q2", "d3", 1),
             ("q3", "d1", 0)]
    folder = write_beir(tmp_path / "toy", corpus, queries, qrels)
    vecs = vectors_of({
        "query": {"east": [1, 0], "north": [0, 1], "nothing relevant": [0.6, 0.8],
                  "no judgements": [1, 1]},
        "document": {"one": [1, 0], "two": [0.8, 0.6], "three": [0.8, -0.6],
                     "four": [0, 1], "five": [-1, 0]},
    })
    return folder, vecs


def test_hand_computed_metrics(tmp_path):
    folder, vecs = hand_folder(tmp_path)
    task = make_task(folder, k_values=[1, 3, 10])
    assert task.query_ids == ["q1", "q2", "q3"]  # q4 has no qrels row: dropped
    res = task.evaluate(vecs, EncoderContext("toy"))
    items = res.items
    # ties go as trec_eval orders them: document id descending
    # q1 ranking: d1 (1.0), d3 (0.8, tie: id "d3" > "d2" puts d3 first), d2 (0.8), d4 (0),
    #   d5 (-1); grades 1, 2, 0, 0(score-0 row), 3; relevant: d1, d3, d5
    idcg3 = 3 + 2 / log2(3) + 1 / log2(4)
    q1 = {"ndcg_at_1": 1 / 3, "ndcg_at_3": (1 + 2 / log2(3)) / idcg3,
          "ndcg_at_10": (1 + 2 / log2(3) + 3 / log2(6)) / idcg3,
          "mrr_at_1": 1.0, "mrr_at_3": 1.0, "mrr_at_10": 1.0,
          "recall_at_1": 1 / 3, "recall_at_3": 2 / 3, "recall_at_10": 1.0,
          "precision_at_1": 1.0, "precision_at_3": 2 / 3, "precision_at_10": 3 / 10,
          "map_at_1": 1 / 3, "map_at_3": (1 + 1) / 3, "map_at_10": (1 + 1 + 3 / 5) / 3}
    # q2 ranking: d4 (1), d2 (0.6), d5 (0, tie: "d5" > "d1"), d1 (0), d3 (-0.6);
    #   relevant d5 (rank 3) and d3 (rank 5)
    q2 = {"ndcg_at_1": 0.0, "ndcg_at_3": (1 / log2(4)) / (1 + 1 / log2(3)),
          "ndcg_at_10": (1 / log2(4) + 1 / log2(6)) / (1 + 1 / log2(3)),
          "mrr_at_1": 0.0, "mrr_at_3": 1 / 3, "mrr_at_10": 1 / 3,
          "recall_at_1": 0.0, "recall_at_3": 1 / 2, "recall_at_10": 1.0,
          "precision_at_1": 0.0, "precision_at_3": 1 / 3, "precision_at_10": 2 / 10,
          "map_at_1": 0.0, "map_at_3": (1 / 3) / 2, "map_at_10": (1 / 3 + 2 / 5) / 2}
    # q3: its only judgement has score 0 -> no relevant document -> 0 everywhere
    assert set(res.metrics) == set(RetrievalTask.metric_names(task.config))
    assert items["id"] == ["q1", "q2", "q3"]
    for name in q1:
        expected = [q1[name], q2[name], 0.0]
        np.testing.assert_allclose(items[name], expected, atol=1e-12, err_msg=name)
        assert res.metrics[name].value == pytest.approx(np.mean(expected), abs=1e-12)
        assert res.metrics[name].stat == "mean" and res.metrics[name].inputs == [name]
        assert res.metrics[name].n == 3
    assert res.main_metric == "ndcg_at_10"
    assert res.details["queries_without_relevant"] == 1
    assert res.details["recall_curve"]["k"] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(res.details["recall_curve"]["recall"],
                               [(1 / 3) / 3, (2 / 3) / 3, (2 / 3 + 1 / 2) / 3,
                                (2 / 3 + 1 / 2) / 3, 2 / 3], atol=1e-12)
    dist = res.details["per_query_distribution"]
    assert sum(dist["counts"]) == 3 and dist["zero"] == 1


def test_hand_computed_agrees_with_pytrec_eval_given_the_same_order(tmp_path):
    """pytrec_eval re-sorts a run by score (ties: document id descending), so it is fed
    our ranking as strictly decreasing scores: the metric math must then agree."""
    folder, vecs = hand_folder(tmp_path)
    task = make_task(folder, k_values=[1, 3, 10])
    res = task.evaluate(vecs, EncoderContext("toy"))
    _, ranking = task.search(vecs.get("query", task.query_texts),
                             vecs.get("document", task.doc_texts))
    run = {q: {task.doc_ids[c]: float(len(row) - r) for r, c in enumerate(row)}
           for q, row in zip(task.query_ids, ranking)}
    ref = pytrec_eval.RelevanceEvaluator(
        task.qrels, {"ndcg_cut.1,3,10", "map_cut.1,3,10", "recall.1,3,10", "P.1,3,10"}
    ).evaluate(run)
    for fam, measure in [("ndcg", "ndcg_cut_"), ("map", "map_cut_"), ("recall", "recall_"),
                         ("precision", "P_")]:
        for k in (1, 3, 10):
            expected = [ref[q][f"{measure}{k}"] for q in task.query_ids]
            np.testing.assert_allclose(res.items[f"{fam}_at_{k}"], expected, atol=1e-12)


def test_judged_documents_missing_from_the_corpus_count_like_trec_eval():
    qrels = {"a": {"x": 2, "gone": 3, "y": 0}, "b": {"y": -1, "z": 1}}
    qids, dids = ["a", "b"], ["x", "y", "z"]
    ranking = np.array([[1, 0, 2], [1, 2, 0]])
    ev = evaluate_ranking(ranking, qrels, qids, dids, [1, 2, 10])
    run = {q: {dids[c]: float(3 - r) for r, c in enumerate(row)}
           for q, row in zip(qids, ranking)}
    ref = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.1,2,10", "map_cut.1,2,10", "recall.1,2,10", "P.1,2,10"}
    ).evaluate(run)
    for fam, measure in [("ndcg", "ndcg_cut_"), ("map", "map_cut_"), ("recall", "recall_"),
                         ("precision", "P_")]:
        for k in (1, 2, 10):
            np.testing.assert_allclose(ev["per_query"][f"{fam}_at_{k}"],
                                       [ref[q][f"{measure}{k}"] for q in qids], atol=1e-12)
    # by hand for query a: ranking y(0), x(2), z(unjudged); ideal gains 3 ("gone"), 2
    assert ev["per_query"]["ndcg_at_10"][0] == pytest.approx((2 / log2(3)) / (3 + 2 / log2(3)))
    assert ev["per_query"]["recall_at_10"][0] == pytest.approx(1 / 2)
    # query b: a negative grade is a gain of 0 and not relevant
    assert ev["per_query"]["mrr_at_10"][1] == pytest.approx(1 / 2)


# metrics: random data against pytrec_eval / MTEB ------------------------------------
def test_metrics_match_mteb_on_random_rankings():
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    rng = np.random.default_rng(3)
    nq, nd = 60, 400
    qids, dids = [f"q{i}" for i in range(nq)], [f"doc{i}" for i in range(nd)]
    qrels = {q: {dids[j]: int(rng.integers(0, 4))
                 for j in rng.choice(nd, int(rng.integers(1, 40)), replace=False)}
             for q in qids}
    qrels["q0"]["not-in-corpus"] = 2
    scores = rng.standard_normal((nq, nd))  # continuous: no ties
    ranking = np.argsort(-scores, axis=1)[:, :100]
    ev = evaluate_ranking(ranking, qrels, qids, dids, K_ALL)["per_query"]
    results = {q: {dids[j]: float(scores[i, j]) for j in range(nd)} for i, q in enumerate(qids)}
    ref = calculate_retrieval_scores(results, qrels, K_ALL)
    for k in K_ALL:
        for fam, measure in [("ndcg", "ndcg_cut_"), ("map", "map_cut_"),
                             ("recall", "recall_"), ("precision", "P_")]:
            np.testing.assert_allclose(ev[f"{fam}_at_{k}"],
                                       [ref.all_scores[q][f"{measure}{k}"] for q in qids],
                                       atol=1e-12)
        assert ev[f"mrr_at_{k}"].mean() == pytest.approx(ref.mrr[f"MRR@{k}"], abs=1e-12)
        assert ev[f"ndcg_at_{k}"].mean() == pytest.approx(ref.ndcg[f"NDCG@{k}"], abs=5e-6)


def test_any_beir_folder_works_unchanged(tmp_path):
    """A BEIR folder with titles and qrels/test.tsv: the task gives MTEB's numbers."""
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores

    rng = np.random.default_rng(7)
    nd, nq = 300, 25
    corpus = [(f"doc-{i}", f"Title {i}" if i % 3 else "", f"passage number {i}")
              for i in range(nd)]
    queries = [(f"query-{i}", f"question {i}") for i in range(nq + 3)]
    qrels = [(f"query-{i}", f"doc-{j}", int(rng.integers(0, 3)))
             for i in range(nq) for j in rng.choice(nd, 8, replace=False)]
    folder = write_beir(tmp_path / "mybeir", corpus, queries, qrels,
                        qrels_path="qrels/test.tsv")
    texts = {f"doc-{i}": (f"Title {i} passage number {i}" if i % 3 else
                          f"passage number {i}") for i in range(nd)}
    dvec = rng.standard_normal((nd, 16)).astype(np.float32)
    qvec = rng.standard_normal((nq + 3, 16)).astype(np.float32)
    vecs = vectors_of({"query": {f"question {i}": qvec[i] for i in range(nq + 3)},
                       "document": {texts[f"doc-{i}"]: dvec[i] for i in range(nd)}})
    task = make_task(folder, chunk_mb=0.01)  # several blocks
    assert task.doc_texts[1] == "Title 1 passage number 1" and task.doc_texts[0] == texts["doc-0"]
    assert len(task.query_ids) == nq  # the 3 unjudged queries are dropped
    res = task.evaluate(vecs, EncoderContext("random"))

    s = (qvec[:nq] / np.linalg.norm(qvec[:nq], axis=1, keepdims=True)).astype(np.float64) @ \
        (dvec / np.linalg.norm(dvec, axis=1, keepdims=True)).astype(np.float64).T
    results = {f"query-{i}": {f"doc-{j}": float(s[i, j]) for j in range(nd)} for i in range(nq)}
    ref = calculate_retrieval_scores(results, task.qrels, K_ALL)
    for k in K_ALL:
        for fam, measure in [("ndcg", "ndcg_cut_"), ("map", "map_cut_"),
                             ("recall", "recall_"), ("precision", "P_")]:
            np.testing.assert_allclose(
                res.items[f"{fam}_at_{k}"],
                [ref.all_scores[q][f"{measure}{k}"] for q in task.query_ids], atol=1e-9)
        assert res.metrics[f"mrr_at_{k}"].value == pytest.approx(ref.mrr[f"MRR@{k}"],
                                                                 abs=1e-9)
    m = res.metrics["ndcg_at_10"]
    assert m.ci is not None and m.ci[0] <= m.value <= m.ci[1]


# config, plan -----------------------------------------------------------------------
def test_config_and_needs(tmp_path):
    folder, _ = hand_folder(tmp_path)
    task = make_task(folder, limit=2)
    assert task.query_ids == ["q1", "q2"]
    needs = task.needs()
    assert [n.role for n in needs] == ["query", "document"]
    assert needs[1].texts == ("one", "two", "three", "four", "five")
    cfg = RetrievalConfig(type="retrieval", dataset="x", k_values=[100, 10, 10, 1])
    assert cfg.k_values == [1, 10, 100]
    assert RetrievalTask.metric_names(cfg) == ir_metrics.metric_names([1, 10, 100])
    assert "ndcg_at_10" in RetrievalTask.metric_names(RetrievalConfig(type="retrieval",
                                                                      dataset="x"))
    with pytest.raises(ValueError, match="include 10"):
        RetrievalConfig(type="retrieval", dataset="x", k_values=[1, 5])
    with pytest.raises(ValueError):
        RetrievalConfig(type="retrieval", dataset="x", top_k=5)
    with pytest.raises(ValueError):
        RetrievalConfig(type="retrieval", dataset="x", chunk_mb=0)
