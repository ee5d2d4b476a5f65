"""exact_topk over many blocks (the running-top-k prefilter path) equals a brute-force
ranking: score descending, then the tie rank (trec_eval: document id descending)."""

import numpy as np
import pytest

from evalharness.tasks.search import exact_topk, trec_tie_ranks


def brute(queries, docs, k, ids):
    # integer vectors: every dot product is an exact integer, so ties are exact
    s = queries.astype(np.float64) @ docs.astype(np.float64).T
    ranks = trec_tie_ranks(ids)
    order = np.array([np.lexsort((ranks, -row))[:k] for row in s])
    return order


@pytest.mark.parametrize("seed", range(6))
def test_many_blocks_with_ties_and_duplicates_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    nd, nq, k = 2500, 7, 25
    docs = rng.integers(-2, 3, size=(nd, 6)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(nq, 6)).astype(np.float32)
    ids = [f"d{int(x):05d}" for x in rng.permutation(nd)]
    _, idx = exact_topk(queries, docs, k, doc_ids=ids, chunk_bytes=12 * 600,
                        similarity="dot")
    ref = brute(queries, docs, k, ids)
    assert idx.shape == (nq, k)
    for q in range(nq):
        assert list(idx[q]) == list(ref[q])
