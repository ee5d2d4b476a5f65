"""Approximate nearest-neighbour search vs exact search on a retrieval corpus.

For each backend (``annoy``: random-projection forests, angular distance; ``hnsw``:
hnswlib's HNSW graph, cosine space) the check indexes the document vectors, asks the top
``k`` (and at least 10) documents of every query, and reports:

- ``{backend}_recall_at_{k}``: the share of the exact top-``k`` documents (the retrieval
  task's chunked exact cosine search, ``tasks.search.exact_topk``) that the index returns
  in its top ``k``, averaged over queries (bootstrap CI over queries);
- ``{backend}_ndcg_at_10``: the retrieval main metric computed on the index's ranking, with
  the retrieval task's trec_eval metric code (``tasks.ir_metrics``), next to
  ``exact_ndcg_at_10`` from the exact ranking;
- ``{backend}_build_seconds`` and ``{backend}_query_seconds`` (all queries), flagged
  ``machine_dependent``.

Vectors are scaled to unit length first, so angular (annoy) and cosine (hnsw) distance
order documents as cosine similarity does. Index parameters (annoy ``n_trees``,
``search_k``; hnsw ``M``, ``ef_construction``, ``ef``) are configurable; both indexes are
seeded and built single-threaded so results repeat. Annoy has no batch API: items are
added and queried one by one (its documented interface). A backend that returns fewer
than ``k`` neighbours has the missing ranks counted as misses.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalharness.checks.base import Check
from evalharness.components import ComponentConfig, TextNeed, limit
from evalharness.errors import UserError
from evalharness.results import Metric
from evalharness.tasks import ir_metrics
from evalharness.tasks.search import exact_topk
from evalharness.vectors_math import unit_rows

Backend = Literal["annoy", "hnsw"]


class AnnoyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_trees: int = Field(50, ge=1)
    search_k: int = Field(-1, description="nodes inspected per query; -1: n_trees * k")


class HnswParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    M: int = Field(16, ge=2)
    ef_construction: int = Field(200, ge=1)
    ef: int = Field(50, ge=1, description="search breadth; raised to k when smaller")


class AnnConfig(ComponentConfig):
    type: Literal["ann"] = "ann"
    k: int = Field(10, ge=1)
    backends: list[Backend] = Field(default_factory=lambda: ["annoy", "hnsw"], min_length=1)
    annoy: AnnoyParams = Field(default_factory=AnnoyParams)
    hnsw: HnswParams = Field(default_factory=HnswParams)
    chunk_mb: float = Field(256.0, gt=0, description="memory budget of the exact search")

    @model_validator(mode="after")
    def _unique(self):
        if len(set(self.backends)) != len(self.backends):
            raise ValueError("'backends' lists a backend twice")
        return self


# -- pure functions -------------------------------------------------------------------------
def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int) -> np.ndarray:
    """Per query: |approx[:k] ∩ exact[:k]| / k (rows of document indices; -1 = none)."""
    a, e = np.asarray(approx)[:, :k], np.asarray(exact)[:, :k]
    hit = (a[:, :, None] == e[:, None, :]) & (a[:, :, None] >= 0)
    return hit.any(axis=2).sum(axis=1) / float(k)


def ndcg_at_10(ranking: np.ndarray, qrels, query_ids, doc_ids) -> np.ndarray:
    """Per-query nDCG@10 of a ranking (-1 = no document at that rank), trec_eval gains."""
    ranking = np.asarray(ranking, np.int64)[:, :10]
    judged = ir_metrics.judgements(qrels, query_ids, doc_ids, 10)
    grades = ir_metrics.ranked_grades(np.maximum(ranking, 0), judged)
    grades = np.where(ranking >= 0, grades, 0)
    if grades.shape[1] < 10:
        grades = np.pad(grades, ((0, 0), (0, 10 - grades.shape[1])))
    per = ir_metrics.per_query_metrics(grades, judged.n_relevant, judged.ideal_gains, [10])
    return per[ir_metrics.metric_name("ndcg", 10)]


def annoy_search(docs: np.ndarray, queries: np.ndarray, k: int, params: AnnoyParams,
                 seed: int) -> tuple[np.ndarray, float, float]:
    """(ranking (nq, k) padded with -1, build seconds, query seconds)."""
    from annoy import AnnoyIndex

    t0 = time.perf_counter()
    index = AnnoyIndex(docs.shape[1], "angular")
    index.set_seed(seed)
    for i, v in enumerate(docs):
        index.add_item(i, v)
    index.build(params.n_trees, n_jobs=1)
    build = time.perf_counter() - t0
    out = np.full((len(queries), k), -1, dtype=np.int64)
    t0 = time.perf_counter()
    for qi, v in enumerate(queries):
        ids = index.get_nns_by_vector(v, k, search_k=params.search_k)
        out[qi, :len(ids)] = ids
    return out, build, time.perf_counter() - t0


def hnsw_search(docs: np.ndarray, queries: np.ndarray, k: int, params: HnswParams,
                seed: int) -> tuple[np.ndarray, float, float]:
    import hnswlib

    t0 = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=docs.shape[1])
    index.init_index(max_elements=len(docs), ef_construction=params.ef_construction,
                     M=params.M, random_seed=seed)
    index.add_items(docs, np.arange(len(docs)), num_threads=1)
    build = time.perf_counter() - t0
    index.set_ef(max(params.ef, k))
    t0 = time.perf_counter()
    labels, _ = index.knn_query(queries, k=min(k, len(docs)), num_threads=1)
    query = time.perf_counter() - t0
    out = np.full((len(queries), k), -1, dtype=np.int64)
    out[:, :labels.shape[1]] = labels
    return out, build, query


SEARCHERS = {"annoy": annoy_search, "hnsw": hnsw_search}


# -- the check ------------------------------------------------------------------------------
class AnnCheck(Check):
    """A check on a retrieval dataset (not a :class:`~evalharness.checks.base.TextsCheck`:
    it reads queries and a corpus, by role)."""
    Config = AnnConfig
    metrics = {"exact_ndcg_at_10": True, "{backend}_recall_at_{k}": True,
               "{backend}_ndcg_at_10": True, "{backend}_build_seconds": False,
               "{backend}_query_seconds": False}
    main_metric = "hnsw_recall_at_10"  # load(): the first backend's recall at k

    @classmethod
    def metric_names(cls, config) -> list[str]:
        names = ["exact_ndcg_at_10"]
        for b in config.backends:
            names += [f"{b}_recall_at_{config.k}", f"{b}_ndcg_at_10", f"{b}_build_seconds",
                      f"{b}_query_seconds"]
        return names

    def load(self, resolver) -> None:
        c = self.config
        self.main_metric = f"{c.backends[0]}_recall_at_{c.k}"
        data = resolver.retrieval(c.dataset, c.split)
        self.dataset_name = data.info.name
        self.query_ids = limit(data.query_ids, c.limit)
        self.query_texts = limit(data.query_texts, c.limit)
        self.doc_ids, self.doc_texts, self.qrels = data.corpus_ids, data.corpus_texts, data.qrels
        if not self.doc_ids or not self.query_ids:
            raise UserError(f"check '{self.id}': dataset '{self.dataset_name}' has no "
                            "documents or no queries")

    def needs(self):
        return [TextNeed("query", tuple(self.query_texts)),
                TextNeed("document", tuple(self.doc_texts))]

    def evaluate(self, vectors, encoder):
        c = self.config
        q = unit_rows(vectors.get("query", self.query_texts)).astype(np.float32)
        d = unit_rows(vectors.get("document", self.doc_texts)).astype(np.float32)
        depth = max(c.k, 10)
        _, exact = exact_topk(q, d, depth, chunk_bytes=int(c.chunk_mb * 2**20),
                              similarity="cosine")
        exact_nd = ndcg_at_10(exact, self.qrels, self.query_ids, self.doc_ids)
        metrics = {"exact_ndcg_at_10": self.stat_metric("mean", {"exact_ndcg_at_10": exact_nd})}
        items = {"id": list(self.query_ids), "exact_ndcg_at_10": exact_nd.tolist()}
        details = {"k": c.k, "queries": len(q), "corpus": len(d), "params": {}}
        for b in c.backends:
            params = getattr(c, b)
            ranking, build, query = SEARCHERS[b](d, q, depth, params, self.seed)
            rec = recall_at_k(ranking, exact, c.k)
            nd = ndcg_at_10(ranking, self.qrels, self.query_ids, self.doc_ids)
            metrics[f"{b}_recall_at_{c.k}"] = self.stat_metric("mean", {f"{b}_recall": rec})
            metrics[f"{b}_ndcg_at_10"] = self.stat_metric("mean", {f"{b}_ndcg_at_10": nd})
            for name, secs in (("build", build), ("query", query)):
                metrics[f"{b}_{name}_seconds"] = Metric(value=secs, n=len(q) if name == "query"
                                                        else len(d), machine_dependent=True)
            items[f"{b}_recall"] = rec.tolist()
            items[f"{b}_ndcg_at_10"] = nd.tolist()
            details["params"][b] = params.model_dump()
        return self.result(metrics, details=details, items=items)


__all__ = ["AnnCheck", "AnnConfig", "annoy_search", "hnsw_search", "ndcg_at_10", "recall_at_k"]
