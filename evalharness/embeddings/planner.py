"""Plan and embed: collect every (role, text) the components need, de-duplicate,
serve cache hits, encode only misses in length-sorted chunks, validate, write back."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from evalharness.embeddings.cache import EmbeddingCache, text_digest
from evalharness.embeddings.engines import Engine, LocalEngine, block_size_for
from evalharness.encoders.base import check_output


@dataclass(frozen=True)
class TextNeed:
    role: str  # "query" | "document" | "text"
    texts: tuple[str, ...]


def collect(needs: Iterable[TextNeed]) -> dict[str, list[str]]:
    """role -> unique texts, in first-seen order."""
    out: dict[str, dict[str, None]] = {}
    for need in needs:
        bucket = out.setdefault(need.role, {})
        for t in need.texts:
            bucket[t] = None
    return {role: list(d) for role, d in out.items()}


class Vectors:
    """Vectors of the run for one encoder: ``get(role, texts) -> (n, dim) float32``."""

    def __init__(self, role_key, tables: dict[str, tuple[dict[str, int], np.ndarray]]):
        self._role_key = role_key
        self._tables = tables

    def get(self, role: str, texts) -> np.ndarray:
        index, matrix = self._tables[self._role_key(role)]
        rows = np.fromiter((index[t] for t in texts), dtype=np.int64, count=len(texts))
        return matrix[rows]

    @property
    def dim(self) -> int | None:
        for _, m in self._tables.values():
            return m.shape[1]
        return None

    def transform(self, fn) -> "Vectors":
        """New ``Vectors`` whose matrices are ``fn(list of matrices)``, one per role key,
        computed together (e.g. int8 codes calibrated over every vector of the run)."""
        keys = list(self._tables)
        mats = fn([self._tables[k][1] for k in keys])
        return Vectors(self._role_key, {k: (self._tables[k][0], m) for k, m in zip(keys, mats)})


@dataclass
class EmbedStats:
    hits: int = 0
    misses: int = 0
    encode_seconds: float = 0.0
    texts_per_second: float | None = None
    by_role: dict = field(default_factory=dict)


def _progress(total: int, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, unit="text", disable=not sys.stderr.isatty(),
                leave=False)


def embed(encoder, wanted: dict[str, list[str]], cache: EmbeddingCache | None,
          *, chunk_size: int | None = None, before_encode=None,
          engine: Engine | None = None) -> tuple[Vectors, EmbedStats]:
    """Vectors for every wanted (role, text); encodes only cache misses.

    ``before_encode``: called before the first miss is encoded (the runner loads the
    model there, so a run served entirely from the cache loads none).

    Roles that the encoder treats identically (``role_key``) share one table, so a text
    needed as a query and as a document is encoded once. Encoded chunks are written to the
    cache as they finish, so an encoder that fails half-way keeps what it computed.
    """
    engine = engine or LocalEngine()
    stats = EmbedStats()
    by_key: dict[str, dict[str, None]] = {}  # role_key -> unique texts
    for role, texts in wanted.items():
        bucket = by_key.setdefault(encoder.role_key(role), {})
        for t in texts:
            bucket[t] = None

    fingerprint = encoder.fingerprint()
    tables: dict[str, tuple[dict[str, int], np.ndarray]] = {}
    dim = None
    for key, unique in by_key.items():
        texts = list(unique)
        role = "text" if key == "any" else key
        digests = [text_digest(t) for t in texts]
        matrix = None
        if cache is not None:
            mask, found = cache.lookup(fingerprint, key, digests)
        else:
            mask, found = np.zeros(len(texts), dtype=bool), None
        if found is not None and len(found):
            dim = dim or found.shape[1]
            matrix = np.empty((len(texts), found.shape[1]), dtype=np.float32)
            matrix[mask] = found
        miss_idx = np.flatnonzero(~mask)
        stats.hits += int(mask.sum())
        stats.misses += len(miss_idx)
        stats.by_role[key] = {"hits": int(mask.sum()), "misses": int(len(miss_idx))}
        if len(miss_idx):
            if before_encode is not None:
                before_encode()
            # longest first: batches of similar length waste little padding
            order = miss_idx[np.argsort([-len(texts[i]) for i in miss_idx], kind="stable")]
            size = chunk_size or block_size_for(encoder)
            bar = _progress(len(order), f"{encoder.name} [{key}]")
            ordered = [texts[i] for i in order]
            t0 = time.perf_counter()
            try:
                for start, stop, raw in engine.encode_blocks(encoder, ordered, role=role,
                                                             block_size=size):
                    idx = order[start:stop]
                    out = check_output(encoder.name, raw, len(idx), dim, offset=start)
                    dim = out.shape[1]
                    if matrix is None:
                        matrix = np.empty((len(texts), dim), dtype=np.float32)
                    matrix[idx] = out
                    if cache is not None:
                        cache.store(fingerprint, key, [digests[i] for i in idx], out)
                    if bar is not None:
                        bar.update(len(idx))
            finally:
                if bar is not None:
                    bar.close()
                stats.encode_seconds += time.perf_counter() - t0
        if matrix is None:
            matrix = np.zeros((0, dim or 1), dtype=np.float32)
        tables[key] = ({t: i for i, t in enumerate(texts)}, matrix)
    if stats.misses and stats.encode_seconds > 0:
        stats.texts_per_second = stats.misses / stats.encode_seconds
    if dim is not None and hasattr(encoder, "observe_dim"):
        encoder.observe_dim(dim)
    return Vectors(encoder.role_key, tables), stats
