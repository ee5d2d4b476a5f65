"""Forward-pass batches by padded tokens: the one batching rule of the torch encoders.

Texts are sorted by their token count (longest first, ties in input order) and cut into
batches whose padded size ``len(batch) * longest`` stays within ``batch_tokens`` and whose
length stays within ``batch_size``. Short texts then share big batches (little per-call
overhead) and long ones small batches (which run faster on a CPU), and sorting by tokens
rather than characters leaves almost no padding. Measured on 2 CPU cores with MiniLM
(fp32, ``make bench``), against sentence-transformers' batches of 8 sorted by characters:
20 Newsgroups +19%, AG News +29%, MS MARCO passages +19%, SICK sentences +54% texts/s.
The vectors equal per-text encoding to float rounding (max |diff| ~2e-7), so batch
settings are not part of an encoder's fingerprint.
"""

from __future__ import annotations

import numpy as np

from evalharness.encoders.base import count_tokens


def token_batches(lengths, batch_size: int, batch_tokens: int | None) -> list[np.ndarray]:
    """Index arrays of the batches, longest texts first.

    ``lengths``: tokens per text as the model will see them (after truncation).
    ``batch_tokens`` None: batches of ``batch_size`` texts of similar length.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if batch_size < 1:
        raise ValueError(f"The 'batch_size' parameter must be >= 1. Got {batch_size} instead.")
    if batch_tokens is not None and batch_tokens < 1:
        raise ValueError(f"The 'batch_tokens' parameter must be >= 1 or None. "
                         f"Got {batch_tokens} instead.")
    order = np.argsort(-lengths, kind="stable")
    batches = []
    start, n = 0, len(order)
    while start < n:
        size = batch_size
        if batch_tokens is not None:
            longest = max(1, int(lengths[order[start]]))
            size = max(1, min(batch_size, batch_tokens // longest))
        batches.append(order[start:start + size])
        start += size
    return batches


def model_lengths(tokenizer, texts: list[str], max_len: int | None,
                  memo: dict | None = None) -> np.ndarray:
    """Tokens per text (special tokens included) after truncation to ``max_len``.

    ``memo``: text -> ``count_tokens`` count, filled here, so that the encoder's
    ``token_lengths`` (truncation reports) does not tokenize the same texts again.
    """
    if not texts:
        return np.zeros(0, dtype=np.int64)
    counts = count_tokens(tokenizer, texts, max_len)
    if memo is not None:
        memo.update(zip(texts, counts.tolist()))
    return counts if max_len is None else np.minimum(counts, max_len)


def memo_counts(tokenizer, texts: list[str], max_len: int | None, memo: dict) -> np.ndarray:
    """``count_tokens`` of ``texts``, tokenizing only those not yet in ``memo``."""
    texts = list(texts)
    todo = list(dict.fromkeys(t for t in texts if t not in memo))
    if todo:
        memo.update(zip(todo, count_tokens(tokenizer, todo, max_len).tolist()))
    return np.fromiter((memo[t] for t in texts), dtype=np.int64, count=len(texts))
