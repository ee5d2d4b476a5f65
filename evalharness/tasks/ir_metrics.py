"""Ranking metrics, vectorised over queries, with trec_eval's definitions.

The inputs are a matrix of the relevance grades of the ranked documents (one row per
query, best first) plus, per query, the number of relevant documents and the ideal
gains taken from *all* of its judgements (as trec_eval / pytrec_eval do, and therefore
MTEB): a judged document that is absent from the corpus still counts in the recall
denominator and in the ideal DCG.

Definitions (pytrec_eval measure in brackets; "relevant" means grade >= 1, so a qrels
row with score 0 is a judged non-relevant document):

- ``ndcg_at_k`` [ndcg_cut_k]: sum over ranks i = 1..k of gain_i / log2(i + 1), divided
  by the same sum for the ideal ordering of all judged documents; gain = max(grade, 0)
  (linear gains, as trec_eval).
- ``map_at_k`` [map_cut_k]: sum over relevant documents in the top k of the precision at
  their rank, divided by the number of relevant documents of the query.
- ``recall_at_k`` [recall_k]: relevant documents in the top k / relevant documents.
- ``precision_at_k`` [P_k]: relevant documents in the top k / k (also when fewer than k
  documents were retrieved).
- ``mrr_at_k`` (MTEB's own ``mrr``): 1 / rank of the first relevant document within the
  top k, 0 when there is none.

A query without any relevant judgement scores 0 on every metric (as pytrec_eval).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FAMILIES = ("ndcg", "mrr", "map", "recall", "precision")


def metric_name(family: str, k: int) -> str:
    return f"{family}_at_{int(k)}"


def metric_names(k_values) -> list[str]:
    return [metric_name(f, k) for f in FAMILIES for k in k_values]


@dataclass
class Judgements:
    """qrels as arrays aligned with a query list and a document list."""
    q_rows: np.ndarray  # (m,) query row of each judgement whose document is in the corpus
    d_cols: np.ndarray  # (m,) document row
    grades: np.ndarray  # (m,) grade
    n_relevant: np.ndarray  # (nq,) judgements with grade >= 1 (corpus or not)
    ideal_gains: np.ndarray  # (nq, max_k) gains of the ideal ranking, padded with 0
    n_docs: int


def judgements(qrels: dict[str, dict[str, int]], query_ids: list[str], doc_ids: list[str],
               max_k: int) -> Judgements:
    """Arrays of the judgements of ``query_ids`` (in that order) over ``doc_ids``."""
    q_pos = {q: i for i, q in enumerate(query_ids)}
    judged = {d for q, docs in qrels.items() if q in q_pos for d in docs}
    d_pos = {d: i for i, d in enumerate(doc_ids) if d in judged}  # no dict of the corpus
    rows = [(q_pos[q], d_pos.get(d, -1), g) for q, docs in qrels.items() if q in q_pos
            for d, g in docs.items()]
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    q, d, g = arr[:, 0], arr[:, 1], arr[:, 2]
    nq = len(query_ids)
    n_relevant = np.bincount(q[g > 0], minlength=nq)
    # ideal gains: per query, all positive grades sorted descending, first max_k of them
    pos = g > 0
    qp, gp = q[pos], g[pos]
    order = np.lexsort((-gp, qp))
    qp, gp = qp[order], gp[order]
    start = np.searchsorted(qp, qp, side="left")
    rank = np.arange(len(qp)) - start
    keep = rank < max_k
    ideal = np.zeros((nq, max_k), np.float64)
    ideal[qp[keep], rank[keep]] = gp[keep]
    in_corpus = d >= 0
    return Judgements(q[in_corpus], d[in_corpus], g[in_corpus], n_relevant, ideal,
                      len(doc_ids))


def ranked_grades(ranking: np.ndarray, judged: Judgements) -> np.ndarray:
    """Grade of each ranked document ((nq, K) document rows -> (nq, K) grades, 0 when
    unjudged)."""
    ranking = np.asarray(ranking, np.int64)
    nq = ranking.shape[0]
    keys = judged.q_rows * judged.n_docs + judged.d_cols
    order = np.argsort(keys, kind="stable")
    keys, grades = keys[order], judged.grades[order]
    if not len(keys):
        return np.zeros(ranking.shape, np.int64)
    want = np.arange(nq, dtype=np.int64)[:, None] * judged.n_docs + ranking
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    return np.where(keys[pos] == want, grades[pos], 0)


def discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def per_query_metrics(grades: np.ndarray, n_relevant: np.ndarray, ideal_gains: np.ndarray,
                      k_values) -> dict[str, np.ndarray]:
    """Per-query values of every metric (see the module docstring) for each k.

    ``grades`` (nq, K): grades of the ranked documents, best first (K may be smaller than
    a k when the corpus is small). ``ideal_gains`` (nq, >= max k)."""
    grades = np.asarray(grades)
    nq, width = grades.shape
    gains = np.maximum(grades, 0).astype(np.float64)
    rel = grades > 0
    n_rel = np.asarray(n_relevant, np.float64)
    disc = discounts(max(max(k_values), width))
    hits_cum = np.cumsum(rel, axis=1)
    prec_at_rank = hits_cum / np.arange(1, width + 1)
    ap_terms = np.cumsum(np.where(rel, prec_at_rank, 0.0), axis=1)
    dcg_cum = np.cumsum(gains * disc[:width], axis=1)
    idcg_cum = np.cumsum(ideal_gains * disc[:ideal_gains.shape[1]], axis=1)
    first = np.where(rel.any(axis=1), rel.argmax(axis=1), width)  # 0-based rank of 1st hit
    out: dict[str, np.ndarray] = {}
    for k in k_values:
        kk = min(int(k), width)
        col = kk - 1
        hits = hits_cum[:, col] if kk else np.zeros(nq)
        dcg = dcg_cum[:, col] if kk else np.zeros(nq)
        idcg = idcg_cum[:, int(k) - 1]
        ap = ap_terms[:, col] if kk else np.zeros(nq)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[metric_name("ndcg", k)] = np.where(idcg > 0, dcg / idcg, 0.0)
            out[metric_name("map", k)] = np.where(n_rel > 0, ap / n_rel, 0.0)
            out[metric_name("recall", k)] = np.where(n_rel > 0, hits / n_rel, 0.0)
        out[metric_name("precision", k)] = hits / float(k)
        out[metric_name("mrr", k)] = np.where(first < kk, 1.0 / (first + 1.0), 0.0)
    return out


def recall_curve(grades: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Mean Recall@k over queries for k = 1..K."""
    n_rel = np.asarray(n_relevant, np.float64)
    hits = np.cumsum(np.asarray(grades) > 0, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rec = np.where(n_rel[:, None] > 0, hits / n_rel[:, None], 0.0)
    return rec.mean(axis=0)


__all__ = ["FAMILIES", "metric_name", "metric_names", "Judgements", "judgements",
           "ranked_grades", "per_query_metrics", "recall_curve"]
