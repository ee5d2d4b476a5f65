"""Retrieval ties as trec_eval breaks them (issue 20).

A BEIR folder with graded qrels and many groups of duplicate documents (identical texts,
so identical float vectors, judged differently within a group): the retrieval task's
per-query nDCG/MRR/MAP/Recall/P equal pytrec_eval's, fed the full run of float64 cosines,
to 1e-9. trec_eval sorts a run by score descending, then by document id descending
(``comp_sim_docno``); the corpus order that the search used before gives other numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import pytrec_eval

from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.tasks.base import EncoderContext
from evalharness.tasks.retrieval import RetrievalConfig, RetrievalTask, evaluate_ranking
from evalharness.tasks.search import distinct_rows, exact_topk, trec_tie_ranks

K = [1, 3, 5, 10, 100]
DIM = 24


def _beir_with_duplicates(folder, seed=5):
    """(folder, text -> vector, query text -> vector): 40 groups of 2-6 identical
    documents among 360 unique ones, ids whose string order differs from corpus order,
    queries close to a duplicated document, graded qrels that differ inside a group."""
    rng = np.random.default_rng(seed)
    n_unique, n_groups = 360, 40
    texts = [f"passage {i}" for i in range(n_unique)]
    copies = {i: int(rng.integers(2, 7)) for i in rng.choice(n_unique, n_groups, replace=False)}
    doc_texts = [t for i, t in enumerate(texts) for _ in range(copies.get(i, 1))]
    order = rng.permutation(len(doc_texts))  # copies scattered over the corpus
    doc_texts = [doc_texts[i] for i in order]
    # ids: mixed lengths and prefixes, so string order is neither numeric nor corpus order
    pool = rng.permutation(10 * len(doc_texts))[:len(doc_texts)]
    doc_ids = [f"{'D' if j % 3 else 'd'}{n}" for j, n in enumerate(pool)]
    tvec = {t: rng.standard_normal(DIM).astype(np.float32) for t in texts}
    dup_texts = [texts[i] for i in copies]
    queries = []
    for qi in range(30):
        base = tvec[dup_texts[qi % len(dup_texts)]].astype(np.float64)
        queries.append((f"q{qi}", f"query {qi}",
                        (base + 0.35 * rng.standard_normal(DIM)).astype(np.float32)))
    qrels = []
    by_text = {}
    for did, t in zip(doc_ids, doc_texts):
        by_text.setdefault(t, []).append(did)
    for qi, (qid, _, _) in enumerate(queries):
        target = dup_texts[qi % len(dup_texts)]
        # inside the group of the near-duplicate: grades 0..3, not all equal
        for j, did in enumerate(by_text[target]):
            qrels.append((qid, did, (j + qi) % 4))
        for i in rng.choice(n_unique, 12, replace=False):
            for did in by_text[texts[i]]:
                qrels.append((qid, did, int(rng.integers(0, 4))))
    folder.mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as f:
        for did, t in zip(doc_ids, doc_texts):
            f.write(json.dumps({"_id": did, "title": "", "text": t}) + "\n")
    with open(folder / "queries.jsonl", "w") as f:
        for qid, qt, _ in queries:
            f.write(json.dumps({"_id": qid, "text": qt}) + "\n")
    (folder / "qrels").mkdir()
    seen = set()
    with open(folder / "qrels" / "test.tsv", "w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d, g in qrels:
            if (q, d) not in seen:
                seen.add((q, d))
                f.write(f"{q}\t{d}\t{g}\n")
    return folder, tvec, {qt: v for _, qt, v in queries}


@pytest.fixture(scope="module")
def dup_beir(tmp_path_factory):
    return _beir_with_duplicates(tmp_path_factory.mktemp("ties") / "dupbeir")


def _reference(task, tvec, qvec):
    """pytrec_eval on the full run of float64 cosines, one score per distinct text."""
    unit = {t: v.astype(np.float64) / np.linalg.norm(v.astype(np.float64))
            for t, v in tvec.items()}
    run = {}
    for qid, qt in zip(task.query_ids, task.query_texts):
        qv = qvec[qt].astype(np.float64)
        qv /= np.linalg.norm(qv)
        per_text = {t: float(u @ qv) for t, u in unit.items()}
        run[qid] = {did: per_text[t] for did, t in zip(task.doc_ids, task.doc_texts)}
        # the distinct texts that can reach the top 100 are far apart: float32 orders
        # them as float64 does
        s = np.sort(np.fromiter(per_text.values(), float))[-110:]
        assert np.diff(s).min() > 1e-6  # float32 cosine error here: ~1e-7
    cut = ",".join(map(str, K))
    measures = {f"ndcg_cut.{cut}", f"map_cut.{cut}", f"recall.{cut}", f"P.{cut}",
                "recip_rank"}
    return pytrec_eval.RelevanceEvaluator(task.qrels, measures).evaluate(run)


@pytest.mark.parametrize("chunk_mb", [256.0, 0.004])  # one block; many small blocks
def test_duplicates_and_graded_qrels_equal_pytrec_eval(dup_beir, chunk_mb):
    folder, tvec, qvec = dup_beir
    config = RetrievalConfig(type="retrieval", dataset={"path": str(folder)}, chunk_mb=chunk_mb)
    task = RetrievalTask("dups", config, DatasetResolver(), seed=0, bootstrap=100)
    assert len(task.doc_ids) > len(set(task.doc_texts)) + 80  # many duplicate documents
    vectors = Vectors(lambda role: role, {
        "query": ({t: i for i, t in enumerate(task.query_texts)},
                  np.stack([qvec[t] for t in task.query_texts])),
        "document": ({t: i for i, t in enumerate(tvec)}, np.stack(list(tvec.values())))})
    res = task.evaluate(vectors, EncoderContext("toy", DIM))
    assert res.details["tie_break"] == "document id, descending (trec_eval)"
    ref = _reference(task, tvec, qvec)
    for k in K:
        for fam, measure in [("ndcg", "ndcg_cut_"), ("map", "map_cut_"),
                             ("recall", "recall_"), ("precision", "P_")]:
            np.testing.assert_allclose(res.items[f"{fam}_at_{k}"],
                                       [ref[q][f"{measure}{k}"] for q in task.query_ids],
                                       rtol=0, atol=1e-9, err_msg=f"{fam}@{k}")
        # MRR@k from trec_eval's reciprocal rank over the whole run
        rr = np.array([ref[q]["recip_rank"] for q in task.query_ids])
        expected = np.where((rr > 0) & (1 / np.where(rr > 0, rr, 1) <= k + 1e-9), rr, 0.0)
        np.testing.assert_allclose(res.items[f"mrr_at_{k}"], expected, rtol=0, atol=1e-9)

    # the test is sensitive to the tie order: corpus order gives other numbers
    q = vectors.get("query", task.query_texts)
    d = vectors.get("document", task.doc_texts)
    _, by_corpus = exact_topk(q, d, 100)
    old = evaluate_ranking(by_corpus, task.qrels, task.query_ids, task.doc_ids, K)
    assert np.abs(old["per_query"]["ndcg_at_10"] - np.asarray(res.items["ndcg_at_10"])).max() \
        > 1e-3


def test_identical_documents_get_one_score_whatever_the_block():
    """Float (non-integer) duplicates scattered over blocks of different widths: every
    copy gets bitwise the same score, and copies are ordered by id descending."""
    rng = np.random.default_rng(1)
    d = rng.standard_normal((3001, 384)).astype(np.float32)
    dup_at = rng.choice(3001, 200, replace=False)
    d[dup_at] = d[7]
    q = rng.standard_normal((17, 384)).astype(np.float32)
    q[:5] = d[7] + 0.01 * rng.standard_normal((5, 384)).astype(np.float32)
    ids = [f"x{i}" for i in range(3001)]
    for chunk in (12 * 997, 12 * 4096, 256 * 2**20):
        s, idx = exact_topk(q, d, 300, chunk_bytes=chunk, doc_ids=ids)
        copies = np.isin(idx[:5], np.r_[dup_at, 7])
        assert copies.sum(axis=1).min() == 201  # all copies in the top 201 of those queries
        tied = s[:5][copies].reshape(5, 201)
        assert (tied == tied[:, :1]).all()  # bitwise equal scores
        # among the tie: ids in descending string order
        for row in idx[:5]:
            got = [ids[i] for i in row[:201]]
            assert got == sorted(got, reverse=True)


def test_distinct_rows_and_trec_tie_ranks():
    x = np.array([[1, 2], [3, 4], [1, 2], [0, 0], [3, 4], [1, 2]], np.float32)
    reps, inv = distinct_rows(x)
    assert reps.tolist() == [0, 1, 3] and inv.tolist() == [0, 1, 0, 2, 1, 0]
    np.testing.assert_array_equal(x[reps[inv]], x)
    big = np.random.default_rng(0).standard_normal((20000, 3)).astype(np.float32)
    reps, inv = distinct_rows(big)
    assert len(reps) == 20000 and (inv == np.arange(20000)).all()
    # descending string order (strcmp on UTF-8 = code point order): "b" > "a10" > "a1"
    ranks = trec_tie_ranks(["a1", "b", "a10", "A", "é"])
    assert [r for _, r in sorted(zip(ranks, ["a1", "b", "a10", "A", "é"]))] == \
        ["é", "b", "a10", "a1", "A"]
