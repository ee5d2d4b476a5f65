"""Plan and embed: collect every (role, text) the components need, de-duplicate,
serve cache hits, encode only misses in length-sorted blocks, validate, write back.

The embed stage streams (docs/cache.md): per role key it allocates one float32 matrix
(n_texts, dim), the cache fills the rows it holds straight from its memory-mapped files,
the engine's blocks fill the rest and go to the cache as they finish (grouped into data
files of about ``FLUSH_BYTES``, at least every ``FLUSH_SECONDS``). A task receives rows of
that matrix: ``Vectors.get`` returns a read-only view, not a copy, when the texts asked
for are consecutive rows (a retrieval corpus is). A matrix larger than
``spill_threshold()`` bytes is a memory-mapped temporary file, so a corpus larger than RAM
still runs (the search reads it block by block). Texts are held once: the run's lists
and one ``{text: row}`` dict per role key; digests are one (n, 32) uint8 array.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from evalharness.embeddings.cache import EmbeddingCache, text_digests
from evalharness.embeddings.engines import (Engine, LocalEngine, block_size_for,
                                            encodes_remotely)
from evalharness.encoders.base import check_output
from evalharness.encoders.token_path import token_cache_scope
from evalharness.memory import populated_matrix
from evalharness.progress import progress, role_label

FLUSH_BYTES = 32 << 20   # encoded vectors written to the cache in data files of ~this
FLUSH_SECONDS = 10.0     # ... or at least this often (a killed run loses no more)


# A task's prompt (``prompt`` / ``query_prompt`` / ``document_prompt``) replaces the
# encoder's own prefix for that task's texts. The planner keys such texts by
# ``role + PROMPT_SEP + prompt``; the cache keeps them under a role key derived from the
# prompt (so a vector encoded with one prompt is never served for another), and the
# encoder receives the prompted texts with ``role=PROMPTED``, for which it adds no prefix.
PROMPT_SEP = "\x1f"
PROMPTED = "prompted"


@dataclass(frozen=True)
class TextNeed:
    role: str  # "query" | "document" | "text"
    texts: tuple[str, ...]
    prompt: str | None = None  # the task's prompt for these texts (None: the encoder's)


def need_key(role: str, prompt: str | None) -> str:
    """The planner's key for texts of ``role`` embedded with ``prompt``."""
    return f"{role}{PROMPT_SEP}{prompt}" if prompt else role


def split_need_key(key: str) -> tuple[str, str | None]:
    role, sep, prompt = key.partition(PROMPT_SEP)
    return role, (prompt if sep else None)


def prompt_role_key(prompt: str) -> str:
    """Cache role key of texts embedded with a task prompt (any role: same vectors)."""
    import hashlib

    return "prompt-" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:20]


def role_keys(encoder):
    """``fn(planner key) -> cache role key`` for ``encoder``, prompts included."""
    def key(role: str) -> str:
        base, prompt = split_need_key(role)
        return prompt_role_key(prompt) if prompt else encoder.role_key(base)

    return key


def collect(needs: Iterable[TextNeed]) -> dict[str, list[str]]:
    """planner key (role, or role + prompt) -> unique texts, in first-seen order."""
    out: dict[str, dict[str, None]] = {}
    for need in needs:
        bucket = out.setdefault(need_key(need.role, need.prompt), {})
        for t in need.texts:
            bucket[t] = None
    return {role: list(d) for role, d in out.items()}


class Vectors:
    """Vectors of the run for one encoder: ``get(role, texts) -> (n, dim) float32``.

    ``tables``: role key -> (``{text: row}``, matrix). ``get`` returns a read-only view of
    the matrix when the rows asked for are consecutive, else a copy of those rows.
    """

    def __init__(self, role_key, tables: dict[str, tuple[dict[str, int], np.ndarray]]):
        self._role_key = role_key
        self._tables = tables

    def get(self, role: str, texts) -> np.ndarray:
        index, matrix = self._tables[self._role_key(role)]
        n = len(texts)
        rows = np.fromiter((index[t] for t in texts), dtype=np.int64, count=n)
        if n and rows[-1] - rows[0] == n - 1 and (n == 1 or bool((np.diff(rows) == 1).all())):
            view = matrix[rows[0]:rows[0] + n].view(np.ndarray)
            view.flags.writeable = False  # the run's matrix, shared by every task
            return view
        return np.asarray(matrix[rows])

    @property
    def dim(self) -> int | None:
        for _, m in self._tables.values():
            return m.shape[1]
        return None

    def with_prompts(self, prompts: dict[str, str] | None) -> "Vectors":
        """The view a task with prompts sees: ``get(role, texts)`` returns the vectors of
        the texts embedded with ``prompts[role]`` (roles without one: unchanged)."""
        if not prompts:
            return self
        base = self._role_key
        return Vectors(lambda role: base(need_key(role, prompts.get(role))), self._tables)

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
    damaged: int = 0               # damaged cache shards met (their texts were re-encoded)
    lookup_seconds: float = 0.0    # cache lookups, reading the hit vectors included
    write_seconds: float = 0.0     # cache writes (compaction included)
    spilled: bool = False          # a matrix was memory-mapped from a temporary file


def spill_threshold() -> int:
    """Bytes above which a role's matrix is a memory-mapped temporary file:
    ``EVALHARNESS_SPILL_BYTES``, else half the physical memory."""
    env = os.environ.get("EVALHARNESS_SPILL_BYTES")
    if env:
        return int(float(env))
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


def allocate(n: int, dim: int, cache: EmbeddingCache | None) -> tuple[np.ndarray, bool]:
    """An (n, dim) float32 matrix: in memory, or memory-mapped from an unlinked temporary
    file beside the cache when it is larger than ``spill_threshold()``."""
    if n * dim * 4 <= spill_threshold():
        return populated_matrix(n, dim), False
    folder = cache.root / "tmp" if cache is not None else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    fd, path = tempfile.mkstemp(dir=folder, prefix="vectors-", suffix=".f32")
    try:
        os.ftruncate(fd, max(1, n * dim * 4))
        mm = np.memmap(path, dtype=np.float32, mode="r+", shape=(n, dim))
    finally:
        os.close(fd)
        try:
            os.unlink(path)  # the mapping keeps the pages; nothing is left on disk after
        except OSError:  # pragma: no cover - e.g. Windows: removed at exit instead
            pass
    return mm, True


class _Writer:
    """Encoded blocks of one role key, written to the cache in groups."""

    def __init__(self, cache, fingerprint, key, digests):
        self.cache, self.fp, self.key, self.digests = cache, fingerprint, key, digests
        self.pending: list[np.ndarray] = []
        self.rows = 0
        self.since = None

    def add(self, idx: np.ndarray, matrix: np.ndarray) -> None:
        if self.cache is None:
            return
        self.pending.append(idx)
        self.rows += len(idx)
        self.since = self.since or time.monotonic()
        if self.rows * matrix.shape[1] * 4 >= FLUSH_BYTES or \
                time.monotonic() - self.since >= FLUSH_SECONDS:
            self.flush(matrix)

    def flush(self, matrix) -> None:
        if not self.pending or matrix is None:
            return
        idx = np.concatenate(self.pending)
        self.pending, self.rows, self.since = [], 0, None
        self.cache.store(self.fp, self.key, self.digests[idx], matrix[idx])


def embed(encoder, wanted: dict[str, list[str]], cache: EmbeddingCache | None,
          *, chunk_size: int | None = None, before_encode=None,
          engine: Engine | None = None) -> tuple[Vectors, EmbedStats]:
    """Vectors for every wanted (role, text); encodes only cache misses.

    ``before_encode``: called before the first miss is encoded (the runner loads the
    model there, so a run served entirely from the cache loads none).

    Roles that the encoder treats identically (``role_key``) share one table, so a text
    needed as a query and as a document is encoded once. Encoded blocks are written to the
    cache as they finish (grouped, see the module docstring), and whatever was encoded
    before an encoder fails or the run is interrupted is written before the error goes on.
    """
    engine = engine or LocalEngine()
    stats = EmbedStats()
    key_of = role_keys(encoder)
    by_key: dict[str, dict[str, int]] = {}  # role_key -> {text: row}
    prompts: dict[str, str] = {}  # role key -> the task prompt its texts are embedded with
    for role, texts in wanted.items():
        prompt = split_need_key(role)[1]
        if prompt:
            prompts[key_of(role)] = prompt
        index = by_key.setdefault(key_of(role), {})
        for t in texts:
            if t not in index:
                index[t] = len(index)

    fingerprint = encoder.fingerprint()
    tables: dict[str, tuple[dict[str, int], np.ndarray]] = {}
    dim = None
    damaged0 = cache.damaged if cache is not None else 0
    written0 = cache.write_seconds if cache is not None else 0.0
    for key, index in by_key.items():
        n = len(index)
        prompt = prompts.get(key)
        role = PROMPTED if prompt else "text" if key == "any" else key
        digests = text_digests(list(index)) if cache is not None else None
        matrix = None
        mask = np.zeros(n, dtype=bool)
        if cache is not None:
            t0 = time.perf_counter()
            found = cache.find(fingerprint, key, digests)
            if found.dim is not None:
                dim = dim or found.dim
                if found.dim == dim:  # else: stale vectors of another dim, re-encoded
                    matrix, spilled = allocate(n, dim, cache)
                    stats.spilled |= spilled
                    mask = found.read_into(matrix)
            stats.lookup_seconds += time.perf_counter() - t0
        miss_idx = np.flatnonzero(~mask)
        stats.hits += int(mask.sum())
        stats.misses += len(miss_idx)
        stats.by_role[key] = {"hits": int(mask.sum()), "misses": int(len(miss_idx))}
        if len(miss_idx):
            if before_encode is not None:
                before_encode()
            # token ids beside the vectors (not for an engine's remote workers)
            tokens = token_cache_scope(
                encoder, None if encodes_remotely(engine, encoder) else cache)
            texts = list(index)
            # longest first: batches of similar length waste little padding
            lengths = np.fromiter((len(texts[i]) for i in miss_idx), dtype=np.int64,
                                  count=len(miss_idx))
            order = miss_idx[np.argsort(-lengths, kind="stable")]
            del lengths
            size = chunk_size or block_size_for(encoder)
            bar = progress(len(order), f"{encoder.name} {role_label(role)}")
            ordered = [prompt + texts[i] if prompt else texts[i] for i in order]
            del texts
            writer = _Writer(cache, fingerprint, key, digests)
            t0 = time.perf_counter()
            failed = True
            try:
                for start, stop, raw in engine.encode_blocks(encoder, ordered, role=role,
                                                             block_size=size):
                    idx = order[start:stop]
                    out = check_output(encoder.name, raw, len(idx), dim, offset=start)
                    dim = out.shape[1]
                    if matrix is None:
                        matrix, spilled = allocate(n, dim, cache)
                        stats.spilled |= spilled
                    matrix[idx] = out
                    del out, raw
                    writer.add(idx, matrix)
                    if bar is not None:
                        bar.update(len(idx))
                failed = False
            finally:
                tokens.close()
                if bar is not None:
                    bar.close()
                stats.encode_seconds += time.perf_counter() - t0
                try:
                    writer.flush(matrix)  # what was encoded is kept, even on failure
                except Exception:
                    if not failed:
                        raise  # else the encoder's error is the one to report
            del ordered
        if matrix is None:
            matrix = np.zeros((0, dim or 1), dtype=np.float32)
        tables[key] = (index, matrix)
    if stats.misses and stats.encode_seconds > 0:
        stats.texts_per_second = stats.misses / stats.encode_seconds
    if cache is not None:
        stats.damaged = cache.damaged - damaged0
        stats.write_seconds = cache.write_seconds - written0
    if dim is not None and hasattr(encoder, "observe_dim"):
        encoder.observe_dim(dim)
    return Vectors(key_of, tables), stats
