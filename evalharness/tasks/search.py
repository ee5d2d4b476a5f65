"""Exact top-k search (cosine or dot product), chunked so memory stays bounded.

``exact_topk`` never builds the full queries x documents score matrix unless it fits the
chunk budget. It walks blocks of (queries, documents) whose score block plus the
temporaries of the selection fit in ``chunk_bytes``, keeps a running top-k per query
and merges each block's top-k into it.

Ties are broken by document order: among equal scores the document that comes first in
``docs`` ranks first, so for given scores the result depends neither on the block
layout nor on numpy's selection algorithm. (pytrec_eval, and therefore MTEB, break ties by document id in
descending string order instead; with real-valued embeddings exact ties only happen
between identical documents.)

Cosine similarity normalises neither matrix: each block of raw dot products is scaled in
place by the precomputed inverse norms of its documents and of its queries, so peak
memory is the embeddings, the running top-k and the chunk budget. Scores are float32
(BLAS matmul); a zero vector has cosine 0 with everything. "Equal scores" means equal
float32 values: identical documents whose dot products are exact (e.g. small integers)
always tie, but BLAS may round the dot products of identical float documents differently
in the last bit depending on where they fall in a block, and then the one that scores a
hair higher ranks first.
"""

from __future__ import annotations

import numpy as np

from evalharness.errors import UserError

DEFAULT_CHUNK_BYTES = 256 * 2**20
# bytes per cell of a score block at peak: the float32 scores, np.partition's float32 copy
# (freed before the masks) or three boolean masks, plus headroom for numpy's temporaries
BYTES_PER_CELL = 12
MIN_DOC_BLOCK = 4096
SIMILARITIES = ("cosine", "dot")


def block_shape(n_queries: int, n_docs: int, k: int, chunk_bytes: int) -> tuple[int, int]:
    """(query block, document block) whose score block fits ``chunk_bytes``.

    All queries at once when the documents block stays at least ``MIN_DOC_BLOCK`` wide
    (or the whole corpus), otherwise fewer queries per block."""
    cells = max(1, int(chunk_bytes) // BYTES_PER_CELL)
    doc_min = min(n_docs, max(k, MIN_DOC_BLOCK))
    qb = int(min(n_queries, max(1, cells // max(1, doc_min))))
    db = int(min(n_docs, max(1, cells // qb)))
    return qb, db


def _inv_norms(x: np.ndarray) -> np.ndarray:
    n = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))
    with np.errstate(divide="ignore"):
        inv = np.where(n > 0, 1.0 / n, 0.0)
    return inv.astype(np.float32)


def _block_topk(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns of each row, ties resolved towards lower column index.

    Returns (values, columns), both (rows, k), unordered within a row. ``scores`` is
    left unchanged."""
    rows, n = scores.shape
    if k >= n:
        cols = np.broadcast_to(np.arange(n), (rows, n))
        return scores.copy(), np.array(cols)
    # k-th largest value per row (np.partition works on a copy)
    kth = np.partition(scores, n - k, axis=1)[:, n - k][:, None]
    above = scores > kth
    tied = scores == kth
    need = k - above.sum(axis=1)  # >= 1: how many tied cells each row still takes
    n_tied = tied.sum(axis=1)
    take = above
    extra = np.flatnonzero(n_tied > need)  # rows where the tie straddles the cut
    if len(extra):
        rank_in_tie = np.cumsum(tied[extra], axis=1, dtype=np.int32)
        tied[extra] &= rank_in_tie <= need[extra, None]
    take |= tied
    r, c = np.nonzero(take)  # row-major: exactly k per row
    cols = c.reshape(rows, k)
    return np.take_along_axis(scores, cols, axis=1), cols


def _merge(vals: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort candidates by (score desc, document index asc) and keep the first ``k``."""
    order = np.lexsort((idx, -vals), axis=1)[:, :k]
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def exact_topk(queries: np.ndarray, docs: np.ndarray, k: int, *,
               chunk_bytes: int = DEFAULT_CHUNK_BYTES,
               similarity: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` documents per query.

    Args:
        queries: (n_queries, dim) float array.
        docs: (n_docs, dim) float array (float32 is used as is, without a copy).
        k: documents per query; capped at ``n_docs``.
        chunk_bytes: memory budget for one block of scores and its selection
            temporaries (``BYTES_PER_CELL`` bytes per query-document cell).
        similarity: ``"cosine"`` or ``"dot"``.

    Returns:
        (scores, indices), both (n_queries, min(k, n_docs)): float32 similarities sorted
        in descending order and the int64 row indices of the documents in ``docs``; equal
        scores are ordered by document index.
    """
    if similarity not in SIMILARITIES:
        raise UserError(f"The 'similarity' parameter must be one of {list(SIMILARITIES)}. "
                        f"Got {similarity!r} instead.")
    if int(k) < 1:
        raise UserError(f"The 'k' parameter must be an int >= 1. Got {k!r} instead.")
    if int(chunk_bytes) < BYTES_PER_CELL:
        raise UserError(f"The 'chunk_bytes' parameter must be >= {BYTES_PER_CELL}. "
                        f"Got {chunk_bytes!r} instead.")
    docs = np.asarray(docs, dtype=np.float32)
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or docs.ndim != 2 or queries.shape[1] != docs.shape[1]:
        raise UserError(f"queries and documents must be 2-d with the same dimension; got "
                        f"shapes {queries.shape} and {docs.shape}")
    nq, nd = queries.shape[0], docs.shape[0]
    k = min(int(k), nd)
    if nq == 0 or nd == 0:
        return np.zeros((nq, k), np.float32), np.zeros((nq, k), np.int64)
    if similarity == "cosine":
        q_scale = _inv_norms(queries)[:, None]
        doc_scale = _inv_norms(docs)[None, :]
    qb, db = block_shape(nq, nd, k, chunk_bytes)
    out_vals = np.empty((nq, k), np.float32)
    out_idx = np.empty((nq, k), np.int64)
    for q0 in range(0, nq, qb):
        q = queries[q0:q0 + qb]
        if similarity == "cosine":
            qs = q_scale[q0:q0 + qb]
        best_v = np.empty((len(q), 0), np.float32)
        best_i = np.empty((len(q), 0), np.int64)
        for d0 in range(0, nd, db):
            s = q @ docs[d0:d0 + db].T
            if similarity == "cosine":
                s *= doc_scale[:, d0:d0 + db]
                s *= qs
            v, c = _block_topk(s, k)
            del s
            best_v, best_i = _merge(np.concatenate([best_v, v], axis=1),
                                    np.concatenate([best_i, c + d0], axis=1), k)
        out_vals[q0:q0 + qb], out_idx[q0:q0 + qb] = best_v, best_i
    return out_vals, out_idx


__all__ = ["exact_topk", "block_shape", "DEFAULT_CHUNK_BYTES", "BYTES_PER_CELL"]
