"""Retrieval (BEIR layout): exact cosine top-k search, then nDCG@10 (main), MRR@k,
Recall@k, MAP@k and P@k with trec_eval's definitions (see ``ir_metrics``).

Queries are encoded with role ``query``, documents with role ``document``. The search is
chunked (``chunk_mb``), so memory stays within the embeddings plus that budget; ties in
score are broken as trec_eval breaks them, by document id in descending string order, and
identical documents always tie (see ``search``). Every metric is a mean over queries,
with its per-query values kept in ``items`` and a seeded bootstrap CI over queries.
``limit`` keeps the first N queries (that have judgements); the corpus is always whole.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from evalharness.components import ComponentConfig, TextNeed, limit
from evalharness.tasks import ir_metrics
from evalharness.tasks.base import Task
from evalharness.tasks.search import exact_topk

MAIN_METRIC = "ndcg_at_10"
ITEM_BINS = np.linspace(0.0, 1.0, 11)


class RetrievalConfig(ComponentConfig):
    type: Literal["retrieval"] = "retrieval"
    k_values: list[int] = Field(default_factory=lambda: [1, 3, 5, 10, 100],
                                description="cut-offs for every metric; must include 10")
    chunk_mb: float = Field(256.0, gt=0, description="memory budget of one block of the "
                                                     "search's score matrix, in MiB")

    @field_validator("k_values")
    @classmethod
    def _check_k(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 for k in v):
            raise ValueError("k_values must be a non-empty list of integers >= 1")
        if 10 not in v:
            raise ValueError("k_values must include 10 (the main metric is ndcg_at_10)")
        return sorted(set(v))


def evaluate_ranking(ranking: np.ndarray, qrels: dict[str, dict[str, int]],
                     query_ids: list[str], doc_ids: list[str], k_values) -> dict:
    """Per-query metrics and Recall@k curve of ``ranking`` ((nq, K) document rows, best
    first) against ``qrels``: {"per_query": {name: (nq,)}, "recall_curve": (K,)}."""
    judged = ir_metrics.judgements(qrels, query_ids, doc_ids, max(k_values))
    grades = ir_metrics.ranked_grades(ranking, judged)
    return {"per_query": ir_metrics.per_query_metrics(grades, judged.n_relevant,
                                                      judged.ideal_gains, k_values),
            "recall_curve": ir_metrics.recall_curve(grades, judged.n_relevant),
            "n_relevant": judged.n_relevant}


class RetrievalTask(Task):
    Config = RetrievalConfig
    metrics = {f"{family}_at_{{k}}": True for family in ir_metrics.FAMILIES}
    main_metric = MAIN_METRIC

    @classmethod
    def metric_names(cls, config) -> list[str]:
        return ir_metrics.metric_names(config.k_values)

    def load(self, resolver) -> None:
        data = resolver.retrieval(self.config.dataset, self.config.split)
        self.dataset_name = data.info.name
        self.query_ids = limit(data.query_ids, self.config.limit)
        self.query_texts = limit(data.query_texts, self.config.limit)
        self.doc_ids = data.corpus_ids
        self.doc_texts = data.corpus_texts
        self.qrels = data.qrels

    def needs(self):
        return [TextNeed("query", tuple(self.query_texts)),
                TextNeed("document", tuple(self.doc_texts))]

    def search(self, q: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return exact_topk(q, d, max(self.config.k_values),
                          chunk_bytes=int(self.config.chunk_mb * 2**20), similarity="cosine",
                          doc_ids=self.doc_ids)

    def evaluate(self, vectors, encoder):
        q = vectors.get("query", self.query_texts)
        d = vectors.get("document", self.doc_texts)
        _, ranking = self.search(q, d)
        del d
        ev = evaluate_ranking(ranking, self.qrels, self.query_ids, self.doc_ids,
                              self.config.k_values)
        per_query = ev["per_query"]
        metrics = {name: self.stat_metric("mean", {name: arr})
                   for name, arr in per_query.items()}
        main = per_query[MAIN_METRIC]
        hist, _ = np.histogram(main, bins=ITEM_BINS)
        details = {
            "queries": len(self.query_ids),
            "corpus": len(self.doc_ids),
            "k_values": list(self.config.k_values),
            "similarity": "cosine",
            "tie_break": "document id, descending (trec_eval)",
            "queries_without_relevant": int((ev["n_relevant"] == 0).sum()),
            "recall_curve": {"k": list(range(1, len(ev["recall_curve"]) + 1)),
                             "recall": [float(x) for x in ev["recall_curve"]]},
            "per_query_distribution": {
                "metric": MAIN_METRIC,
                "bins": [float(b) for b in ITEM_BINS],
                "counts": hist.tolist(),
                "quantiles": {str(p): float(np.quantile(main, p))
                              for p in (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)},
                "zero": int((main == 0).sum()),
            },
        }
        items = {"id": list(self.query_ids)}
        items.update({name: arr.tolist() for name, arr in per_query.items()})
        return self.result(metrics, details=details, items=items)
