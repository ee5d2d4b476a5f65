"""Loading an encoder only when something must be computed.

A run whose vectors all come from the cache needs no model: the runner hands the embed
stage a ``LazyLoad`` that it calls only before encoding a cache miss, and gives the
evaluate stage an ``EncoderFacts`` whose answers come from the cache where it can:

- token counts (clustering's ``truncated_fraction``) are stored in the embedding cache
  next to the vectors, under the pseudo-role ``tokens`` of the encoder's fingerprint (the
  fingerprint covers the tokenizer files and ``max_seq_length``), one float per text;
- ``max_seq_length`` is kept in that fingerprint's ``meta.json``.

Anything the cache cannot answer loads the model (timed as the ``load`` stage).
"""

from __future__ import annotations

import time

import numpy as np

from evalharness.embeddings.cache import EmbeddingCache, text_digest

TOKENS_ROLE = "tokens"


class LazyLoad:
    """``encoder.load()`` at most once, on first call; ``seconds`` is None until then."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.seconds: float | None = None

    def __call__(self):
        if self.seconds is None:
            t0 = time.perf_counter()
            self.encoder.load()
            self.seconds = time.perf_counter() - t0
        return self.encoder

    @property
    def loaded(self) -> bool:
        return self.seconds is not None


class EncoderFacts:
    """Token counts and max_seq_length of ``encoder``, from the cache or the model."""

    def __init__(self, encoder, fingerprint: str, cache: EmbeddingCache | None,
                 loader: LazyLoad):
        self.encoder = encoder
        self.fingerprint = fingerprint
        self.cache = cache
        self.loader = loader

    @property
    def has_token_lengths(self) -> bool:
        return callable(getattr(self.encoder, "token_lengths", None))

    def token_lengths(self, texts) -> np.ndarray:
        texts = list(texts)
        if self.cache is None:
            return np.asarray(self.loader().token_lengths(texts), dtype=np.int64)
        digests = [text_digest(t) for t in texts]
        mask, found = self.cache.lookup(self.fingerprint, TOKENS_ROLE, digests)
        out = np.zeros(len(texts), dtype=np.int64)
        if found is not None and len(found):
            out[mask] = found[:, 0].astype(np.int64)
        miss = np.flatnonzero(~mask)
        if len(miss):
            first: dict[bytes, int] = {}
            for i in miss:
                first.setdefault(digests[i], int(i))
            uniq = list(first.values())
            counts = np.asarray(self.loader().token_lengths([texts[i] for i in uniq]),
                                dtype=np.int64)
            by_digest = dict(zip(first, counts))
            out[miss] = [by_digest[digests[i]] for i in miss]
            self.cache.store(self.fingerprint, TOKENS_ROLE, list(first),
                             counts.astype(np.float32)[:, None])
        return out

    def max_seq_length(self) -> int | None:
        enc = self.encoder
        if not hasattr(enc, "effective_max_seq_length"):
            return None
        if not self.loader.loaded and self.cache is not None:
            meta = self.cache.meta(self.fingerprint)
            if "max_seq_length" in meta:
                return meta["max_seq_length"]
        value = self.loader().effective_max_seq_length
        if self.cache is not None:
            self.cache.update_meta(self.fingerprint, {"max_seq_length": value})
        return value

    def load_seconds(self) -> float | None:
        """Seconds the model took to load (loading it now if the run had not needed it)."""
        self.loader()
        return round(self.loader.seconds, 4)
