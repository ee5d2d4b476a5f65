"""The token path of the torch encoders (``st:``, ``minilm``, ``hf:``): tokenise once, batch
by token budget, run the model's modules directly, keep the vectors on the device.

Per ``encode(texts)`` call:

1. **Tokenise once.** One fast-tokenizer call per chunk of texts, without special tokens
   and without truncation; the ids are then truncated to ``max_len`` minus the special
   tokens (on the tokenizer's truncation side) and framed by the special tokens, which
   is what the tokenizer's ``truncation=True`` (``longest_first``) gives a single
   sequence. The ids are kept as one flat int32 array plus offsets (``TokenIds``), and
   the untruncated count (special tokens included; ``token_lengths``, truncation reports)
   comes from the same call. A text longer than ``32 * (max_len + 2)`` characters is
   tokenised on that prefix only (``count_tokens``' rule): its kept ids are taken from
   the prefix when they all come from words before the one the cut splits, else the whole
   text is tokenised.
2. **Token ids cached beside the vectors.** With an embedding cache (the embed stage
   calls ``use_token_cache``), the ids of every tokenised text are stored in it under a
   fingerprint of the tokenizer (``"tokens-" + ...``: its serialised pipeline, class,
   max length, truncation side, special tokens), so every encoder with the same
   tokenizer (a bf16 or int8 variant, another checkpoint with the same tokenizer files)
   reads them instead of tokenising. Rows are float32 (ids < 2**24 are exact), one table
   per width bucket (role ``w16``, ``w32``, ... ``w<max_len>``): ``[count, ids..., -1
   padding]``, so short texts do not pay ``max_len`` columns. A damaged token shard is a
   miss (the cache sets it aside), and the texts are tokenised again.
3. **Batches** from the exact lengths (``batching.token_batches``), collated straight from
   the flat ids into padded int64 tensors (the tokenizer's pad id and padding side;
   ``token_type_ids`` zeros when the model takes them), in pinned memory and copied with
   ``non_blocking=True`` on CUDA. The encoder's forward runs the model's modules (a
   SentenceTransformer's ``forward`` -> ``sentence_embedding``, or the transformers model
   plus ``pool``); normalisation happens on the device and the vectors stay there until
   the call ends (or ``HOST_FLUSH_BYTES`` have gathered): one device-to-host copy instead
   of one per batch, so the host collates batch k+1 while the device runs batch k.
   **Tokenising ahead** (on an accelerator): the local engine hands the encoder its next
   block (``prefetch``) before encoding the current one, and a background thread
   tokenises it (the fast tokenizer releases the GIL) while the device runs the current
   block, so the device does not wait for the host between blocks.
4. **Out of memory** on the device: the batch is split in halves and retried, and the
   smaller token budget is kept for the rest of the encoder's life.
5. **Safety net.** Before the first batch of an encoder, the collated tensors of that
   batch and of a few probe texts (empty, spaces at both ends, mixed case and accents,
   CJK and emoji, a text past ``max_len``) are compared with what the model's own
   preprocessing gives (``SentenceTransformer.preprocess``, or the tokenizer with
   ``padding=True, truncation=True``). Any difference, or a model that is not a plain
   text Transformer (a Router, chat messages, query expansion, a default prompt,
   flattened flash-attention inputs, a slow tokenizer), turns the token path off for
   that encoder, with one log line saying why, and the encoder uses its previous path
   (the model's own ``encode``/tokenizer per batch). Either way the vectors are the same
   to float rounding.

torch is imported only inside the functions that run a model.
"""

from __future__ import annotations

import json
import hashlib
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np

from evalharness.encoders.base import (CHARS_PER_TOKEN, fingerprint_of,
                                       quiet_tokenizer_warnings)
from evalharness.encoders.batching import token_batches
from evalharness.memory import trimmed

log = logging.getLogger(__name__)

TOKEN_FORMAT = 1            # bump when the stored rows change meaning
CHUNK = 4096                # texts per tokenizer call
MIN_WIDTH = 16              # the narrowest width bucket of the token cache
MAX_CACHED_WIDTH = 1 << 16  # texts with more tokens are not cached (no max_len)
HOST_FLUSH_BYTES = 64 << 20  # vectors gathered on the device before one copy to the host
TOKEN_FLUSH_BYTES = 32 << 20  # token rows gathered before they are written to the cache
EXACT_FLOAT_IDS = 1 << 24   # float32 holds every integer below this exactly
PROBES = ("", "  leading and trailing spaces  ", "MiXeD Case, ÀÉÎ ñ ß", "東京 😀\ttab\nline",
          "x")


class Unsupported(Exception):
    """The token path cannot reproduce this tokenizer or model (the message says why)."""


# -- token ids ------------------------------------------------------------------------------
def _starts(lengths: np.ndarray) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), vectorised."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    within = np.arange(total, dtype=np.int64) - np.repeat(_starts(lengths)[:-1], lengths)
    return np.repeat(np.asarray(starts, dtype=np.int64), lengths) + within


@dataclass
class TokenIds:
    """Token ids of n texts as the model sees them (special tokens, truncation):
    ``flat[offsets[i]:offsets[i + 1]]`` for text i; ``counts``: the untruncated count
    with special tokens (``count_tokens``' value, a lower bound for clipped texts)."""

    flat: np.ndarray     # int32
    offsets: np.ndarray  # int64, n + 1
    counts: np.ndarray   # int64, n

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.counts)

    def ids(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    @classmethod
    def empty(cls) -> "TokenIds":
        return cls(np.zeros(0, np.int32), np.zeros(1, np.int64), np.zeros(0, np.int64))

    def take(self, idx) -> "TokenIds":
        idx = np.asarray(idx, dtype=np.int64)
        lens = self.lengths[idx]
        return TokenIds(self.flat[_ranges(self.offsets[idx], lens)], _starts(lens),
                        self.counts[idx])

    @staticmethod
    def assemble(n: int, parts: list[tuple[np.ndarray, "TokenIds"]]) -> "TokenIds":
        """One ``TokenIds`` of n texts from parts ``(positions, ids of those texts)``."""
        lens = np.zeros(n, dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
        for pos, part in parts:
            lens[pos] = part.lengths
            counts[pos] = part.counts
        offsets = _starts(lens)
        flat = np.empty(int(offsets[-1]), dtype=np.int32)
        for pos, part in parts:
            flat[_ranges(offsets[pos], part.lengths)] = part.flat
        return TokenIds(flat, offsets, counts)


class TextTokenizer:
    """A fast Hugging Face tokenizer driven as the token path needs it (see the module
    docstring); raises ``Unsupported`` for a tokenizer it cannot reproduce exactly."""

    def __init__(self, tokenizer, max_len: int | None):
        if tokenizer is None:
            raise Unsupported("the model has no tokenizer")
        if not getattr(tokenizer, "is_fast", False) or \
                getattr(tokenizer, "backend_tokenizer", None) is None:
            raise Unsupported(f"{type(tokenizer).__name__} is not a fast tokenizer")
        self.tokenizer = tokenizer
        self.max_len = int(max_len) if max_len and max_len < 10**7 else None
        self.side = getattr(tokenizer, "truncation_side", "right")
        self.padding_left = getattr(tokenizer, "padding_side", "right") == "left"
        if self.side not in ("right", "left"):
            raise Unsupported(f"truncation side {self.side!r}")
        self.pad_id = tokenizer.pad_token_id
        if self.pad_id is None:
            raise Unsupported("the tokenizer has no pad token")
        self.pad_type_id = int(getattr(tokenizer, "pad_token_type_id", 0) or 0)
        self.prefix, self.suffix = self._special_frame()
        self.n_special = len(self.prefix) + len(self.suffix)
        try:
            declared = int(tokenizer.num_special_tokens_to_add(pair=False))
        except Exception:  # noqa: BLE001 - a tokenizer that cannot say
            declared = self.n_special
        if declared != self.n_special:
            raise Unsupported(f"{declared} special tokens declared, {self.n_special} seen")
        if self.max_len is not None and self.max_len <= self.n_special:
            raise Unsupported(f"max length {self.max_len} leaves no room for text")
        self.keep = None if self.max_len is None else self.max_len - self.n_special
        self._fingerprint: str | None = None

    def _call(self, texts: list[str], *, special: bool, offsets: bool = False) -> dict:
        with quiet_tokenizer_warnings():
            return self.tokenizer(list(texts), add_special_tokens=special, truncation=False,
                                  return_attention_mask=False, return_token_type_ids=False,
                                  return_offsets_mapping=offsets)

    def _special_frame(self) -> tuple[list[int], list[int]]:
        """The ids the tokenizer puts before and after a single text (e.g. [CLS] / [SEP]),
        checked on probe texts: the token path frames ids the same way."""
        probe = "hello world"
        with_ = self._call([probe], special=True)["input_ids"][0]
        without = self._call([probe], special=False)["input_ids"][0]
        k = len(without)
        spots = [i for i in range(len(with_) - k + 1) if list(with_[i:i + k]) == list(without)]
        if k == 0 or len(spots) != 1:
            raise Unsupported("special tokens are not a fixed prefix and suffix")
        prefix, suffix = list(with_[:spots[0]]), list(with_[spots[0] + k:])
        checks = list(PROBES) + ["Hello, World!"]
        a = self._call(checks, special=True)["input_ids"]
        b = self._call(checks, special=False)["input_ids"]
        for full, bare in zip(a, b):
            if list(full) != prefix + list(bare) + suffix:
                raise Unsupported("special tokens are not a fixed prefix and suffix")
        return prefix, suffix

    # -- fingerprint ----------------------------------------------------------------------
    def fingerprint(self) -> str:
        """Names the ids this tokenizer gives: its serialised pipeline (normaliser,
        pre-tokeniser, model and vocabulary, post-processor, added tokens) without the
        per-call truncation/padding state, its class, max length, truncation side and
        special-token frame, and the text preprocessing (none: texts go in as given)."""
        if self._fingerprint is None:
            state = json.loads(self.tokenizer.backend_tokenizer.to_str())
            state.pop("truncation", None)
            state.pop("padding", None)
            digest = hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()
            self._fingerprint = "tokens-" + fingerprint_of(
                "tokens", TOKEN_FORMAT, digest, type(self.tokenizer).__name__, self.max_len,
                self.side, self.prefix, self.suffix,
                bool(getattr(self.tokenizer, "split_special_tokens", False)), "text-as-given")
        return self._fingerprint

    # -- tokenising -----------------------------------------------------------------------
    @property
    def char_limit(self) -> int | None:
        if self.max_len is None or self.side != "right":
            return None  # left truncation keeps the end: the whole text is tokenised
        return CHARS_PER_TOKEN * (self.max_len + 2)

    def tokenize(self, texts: list[str]) -> TokenIds:
        """Ids of ``texts`` as the model gets them, in chunks of ``CHUNK`` texts."""
        texts = list(texts)
        if not texts:
            return TokenIds.empty()
        parts = []
        for s in range(0, len(texts), CHUNK):
            parts.append((np.arange(s, min(s + CHUNK, len(texts))),
                          self._tokenize_chunk(texts[s:s + CHUNK])))
        return parts[0][1] if len(parts) == 1 else TokenIds.assemble(len(texts), parts)

    def _tokenize_chunk(self, texts: list[str]) -> TokenIds:
        limit = self.char_limit
        long_idx = [] if limit is None else [i for i, t in enumerate(texts) if len(t) > limit]
        bodies: list = [None] * len(texts)
        counts = np.zeros(len(texts), dtype=np.int64)
        if long_idx:
            is_long = np.zeros(len(texts), dtype=bool)
            is_long[long_idx] = True
            short_idx = np.flatnonzero(~is_long).tolist()
        else:
            short_idx = list(range(len(texts)))
        if short_idx:
            ids = self._call([texts[i] for i in short_idx], special=False)["input_ids"]
            for i, x in zip(short_idx, ids):
                bodies[i] = x
                counts[i] = len(x) + self.n_special
        if long_idx:
            self._tokenize_long(texts, long_idx, bodies, counts, limit)
        body_len = np.fromiter((len(b) for b in bodies), dtype=np.int64, count=len(bodies))
        body = np.fromiter((t for b in bodies for t in b), dtype=np.int64,
                           count=int(body_len.sum()))
        return self._frame(body, body_len, counts)

    def _tokenize_long(self, texts, long_idx, bodies, counts, limit) -> None:
        """Texts past the character limit: tokenise the prefix; keep its ids when it alone
        is truncated and the kept ids end before the word the cut splits, else tokenise
        the whole text. The count is the prefix's when the prefix is truncated (a lower
        bound, as ``count_tokens`` reports it)."""
        clipped = [texts[i][:limit] for i in long_idx]
        enc = self._call(clipped, special=False, offsets=True)
        redo = []
        pre = self.tokenizer.backend_tokenizer.pre_tokenizer
        for j, i in enumerate(long_idx):
            ids = enc["input_ids"][j]
            if len(ids) + self.n_special <= self.max_len:
                redo.append(i)  # the prefix is not truncated: the whole text decides
                continue
            counts[i] = len(ids) + self.n_special
            cut_word = 0
            if pre is not None:
                words = pre.pre_tokenize_str(clipped[j])
                cut_word = words[-1][1][0] if words else 0
            if self.keep == 0 or enc["offset_mapping"][j][self.keep - 1][1] <= cut_word:
                bodies[i] = ids[:self.keep]
            else:  # the kept ids reach into the word the cut splits: the whole text
                whole = self._call([texts[i]], special=False)["input_ids"][0]
                bodies[i] = whole[:self.keep]
        if redo:
            ids = self._call([texts[i] for i in redo], special=False)["input_ids"]
            for i, x in zip(redo, ids):
                bodies[i] = x
                counts[i] = len(x) + self.n_special

    def _frame(self, body: np.ndarray, body_len: np.ndarray, counts: np.ndarray) -> TokenIds:
        """Truncate each text's ids to ``keep`` and put the special tokens around them."""
        kept = body_len if self.keep is None else np.minimum(body_len, self.keep)
        src = _starts(body_len)[:-1]
        if self.side == "left":
            src = src + (body_len - kept)
        p, s = len(self.prefix), len(self.suffix)
        offsets = _starts(kept + p + s)
        flat = np.empty(int(offsets[-1]), dtype=np.int32)
        flat[_ranges(offsets[:-1] + p, kept)] = body[_ranges(src, kept)]
        for j, tok in enumerate(self.prefix):
            flat[offsets[:-1] + j] = tok
        for j, tok in enumerate(self.suffix):
            flat[offsets[:-1] + p + kept + j] = tok
        return TokenIds(flat, offsets, counts)


# -- the token cache ---------------------------------------------------------------------------
def width_buckets(max_len: int | None) -> list[int]:
    """Widths of the token cache's tables: 16, 32, 64, ... and ``max_len`` itself."""
    top = max_len or MAX_CACHED_WIDTH
    out, w = [], MIN_WIDTH
    while w < top:
        out.append(w)
        w *= 2
    out.append(top)
    return out


class TokenCache:
    """Token ids in an ``EmbeddingCache`` (unchanged): fingerprint ``tokens-...``, one role
    per width bucket, rows ``[count, ids..., -1 ...]`` as float32."""

    def __init__(self, cache, tokenizer: TextTokenizer):
        self.cache = cache
        self.tok = tokenizer
        self.fp = tokenizer.fingerprint()
        self.widths = width_buckets(tokenizer.max_len)
        self.hits = 0
        self.misses = 0
        self._pending: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}  # width -> parts
        self._pending_bytes = 0

    def ids_for(self, texts: list[str]) -> TokenIds:
        n = len(texts)
        if not n:
            return TokenIds.empty()
        digests = self.cache.text_digests(texts)  # the cache's own keys (sha256 of the text)
        parts = []
        todo = np.arange(n)
        for w in self.widths:
            if not len(todo):
                break
            got, hit = self._read(w, digests[todo])
            if got is not None:
                parts.append((todo[hit], got))
                todo = todo[~hit]
        self.hits += n - len(todo)
        self.misses += len(todo)
        if len(todo):
            fresh = self.tok.tokenize([texts[i] for i in todo])
            parts.append((todo, fresh))
            self._store(digests[todo], fresh)
        # one part holds every text in order (all hits of one table, or all tokenised)
        return parts[0][1] if len(parts) == 1 else TokenIds.assemble(n, parts)

    def _read(self, width: int, digests: np.ndarray):
        found = self.cache.find(self.fp, f"w{width}", digests)
        if found.dim != width + 1:  # nothing there (or rows of another shape: a miss)
            return None, np.zeros(len(digests), dtype=bool)
        rows = np.empty((len(digests), width + 1), dtype=np.float32)
        hit = found.read_into(rows)
        rows = rows[hit]
        ids = rows[:, 1:]
        lens = (ids >= 0).sum(axis=1)
        with np.errstate(invalid="ignore"):
            sane = ((ids >= 0) == (np.arange(width) < lens[:, None])).all(axis=1) & \
                (ids < EXACT_FLOAT_IDS).all(axis=1) & (ids == np.floor(ids)).all(axis=1) & \
                (rows[:, 0] >= lens) & (rows[:, 0] < EXACT_FLOAT_IDS) & (lens > 0)
        if not sane.all():  # rows no tokenizer wrote (checked shards never give them): misses
            where = np.flatnonzero(hit)
            hit[where[~sane]] = False
            rows, lens = rows[sane], lens[sane]
            ids = rows[:, 1:]
        flat = ids[np.arange(width) < lens[:, None]].astype(np.int32)
        return TokenIds(flat, _starts(lens), rows[:, 0].astype(np.int64)), hit

    def _store(self, digests: np.ndarray, ids: TokenIds) -> None:
        lens = ids.lengths
        buckets = np.searchsorted(np.asarray(self.widths), lens, side="left")
        for b in np.unique(buckets):
            if b >= len(self.widths):
                continue  # longer than any table (no max_len): not cached
            w = self.widths[b]
            sel = np.flatnonzero(buckets == b)
            rows = np.full((len(sel), w + 1), -1.0, dtype=np.float32)
            rows[:, 0] = np.minimum(ids.counts[sel], EXACT_FLOAT_IDS - 1)
            mask = np.arange(w) < lens[sel][:, None]
            rows[:, 1:][mask] = ids.flat[_ranges(ids.offsets[sel], lens[sel])]
            self._pending.setdefault(w, []).append((digests[sel], rows))
            self._pending_bytes += rows.nbytes
        if self._pending_bytes >= TOKEN_FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the pending rows, one store per width bucket: the ids of many ``encode``
        calls share data files (as the embed stage groups vectors), instead of a few
        small files per call and bucket. Rows not flushed (a killed run) are only
        tokenised again next time."""
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        try:
            for w, parts in pending.items():
                self.cache.store(self.fp, f"w{w}", np.concatenate([d for d, _ in parts]),
                                 np.concatenate([r for _, r in parts]))
        except OSError as exc:  # the token cache is an optimisation: never fail a run
            log.debug("token cache not written: %s", exc)


# -- collating and running -----------------------------------------------------------------------
def collate(ids: TokenIds, idx: np.ndarray, *, pad_id: int, left: bool, type_ids: bool,
            pad_type_id: int = 0, pin: bool = False) -> dict:
    """Padded int64 tensors (``input_ids``, ``attention_mask``, and ``token_type_ids`` if
    asked) of texts ``idx``, straight from the flat ids (pinned memory if ``pin``)."""
    import torch

    lens = ids.lengths[idx]
    b, width = len(idx), int(lens.max()) if len(idx) else 0

    def new():
        t = torch.empty((b, width), dtype=torch.int64, pin_memory=pin)
        return t, t.numpy()

    input_ids, a = new()
    mask, m = new()
    a.fill(pad_id)
    m.fill(0)
    rows = np.repeat(np.arange(b), lens)
    within = _ranges(np.zeros(b, dtype=np.int64), lens)
    cols = within + np.repeat(width - lens, lens) if left else within
    a[rows, cols] = ids.flat[_ranges(ids.offsets[idx], lens)]
    m[rows, cols] = 1
    out = {"input_ids": input_ids, "attention_mask": mask}
    if type_ids:
        tt, t = new()
        t.fill(pad_type_id)
        t[rows, cols] = 0
        out["token_type_ids"] = tt
    return out


def is_out_of_memory(exc: BaseException) -> bool:
    """A device out-of-memory error (CUDA's ``OutOfMemoryError``, MPS's RuntimeError)."""
    try:
        import torch

        oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
        if isinstance(exc, oom):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_device_memory(device: str) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
    elif str(device).startswith("mps") and hasattr(torch, "mps"):
        torch.mps.empty_cache()


class TokenPath:
    """The token path of one encoder (shared with the variants derived from it, which
    hold the same object: same tokenizer, same decision, same token cache).

    ``state`` is None until the first encode builds it: the encoder passes its tokenizer,
    max length and a ``why_not()`` for its model; ``off`` then holds the reason the path
    is off (the encoder uses its previous path), or None.
    """

    def __init__(self, name: str):
        self.name = name
        self.tok: TextTokenizer | None = None
        self.off: str | None = None
        self.checked = False
        self.type_ids = False
        self.cache = None
        self._token_cache: TokenCache | None = None
        self.token_cap: int | None = None  # padded tokens per batch after an OOM
        self.splits = 0                    # OOM splits so far
        self._pool = None                  # one background thread tokenising ahead
        self._next: list[str] | None = None  # the engine's next block (prefetch)
        self._ahead: tuple[list[str], object] | None = None  # (texts, future of their ids)

    # -- setup -------------------------------------------------------------------------------
    def ready(self, tokenizer, max_len, why_not: Callable[[], str | None]) -> bool:
        """True when the token path runs; builds it on first use."""
        if self.off is not None:
            return False
        if self.tok is None:
            reason = why_not()
            if reason is None:
                try:
                    self.tok = TextTokenizer(tokenizer, max_len)
                except Unsupported as exc:
                    reason = str(exc)
            if reason is not None:
                self.turn_off(reason)
                return False
        return True

    def turn_off(self, reason: str) -> None:
        self.off = reason
        log.warning("encoder '%s': token path off (%s); encoding through the model's own "
                    "preprocessing per batch", self.name, reason)

    def use_cache(self, cache) -> None:
        """Token ids go to (and come from) ``cache`` from now on; None: no token cache
        (and the tokenising ahead stops: the embed stage is done with this role)."""
        if cache is None:
            self.stop_prefetch()
        if self._token_cache is not None:
            self._token_cache.flush()
        self.cache = cache
        self._token_cache = None

    # -- tokenising ahead ------------------------------------------------------------------
    prefetch_on_cpu = False  # on a CPU the forward already uses every core

    def prefetch(self, texts: list[str], *, device: str) -> None:
        """The engine's next block: once the current block's ids are ready (``encode``),
        a background thread tokenises ``texts`` while the device runs the current block
        (the fast tokenizer releases the GIL; the forwards are queued on the device), so
        the device does not wait for the host between blocks. On an accelerator only
        (``prefetch_on_cpu``: on a CPU the forward already uses every core)."""
        if texts and (not str(device).startswith("cpu") or self.prefetch_on_cpu):
            self._next = list(texts)

    def _start_next(self) -> None:
        """Start tokenising the block announced by ``prefetch`` (after the safety net)."""
        texts, self._next = self._next, None
        if texts is None or self.tok is None or self.off is not None or not self.checked:
            return
        self._drop_ahead()
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1,
                                            thread_name_prefix=f"tokens-{self.name}")
        self._ahead = (texts, self._pool.submit(self._ids_now, texts))

    def _drop_ahead(self) -> None:
        """Forget a prefetch nobody asked for (waiting for it: one tokenizer user at once)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and not ahead[1].cancel():
            try:
                ahead[1].result()
            except Exception:  # noqa: BLE001 - its texts are tokenised again if needed
                pass

    def stop_prefetch(self) -> None:
        self._next = None
        self._drop_ahead()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- token ids ----------------------------------------------------------------------------
    def ids_for(self, texts: list[str]) -> TokenIds:
        ahead = self._ahead
        if ahead is not None and ahead[0] == texts:
            self._ahead = None
            return ahead[1].result()  # an error of the background call is raised here
        self._drop_ahead()
        return self._ids_now(texts)

    def _ids_now(self, texts: list[str]) -> TokenIds:
        if self.cache is None:
            return self.tok.tokenize(texts)
        if self._token_cache is None or self._token_cache.cache is not self.cache:
            if self._token_cache is not None:
                self._token_cache.flush()
            self._token_cache = TokenCache(self.cache, self.tok)
        return self._token_cache.ids_for(texts)

    # -- the safety net -----------------------------------------------------------------------
    def check(self, texts: list[str], ids: TokenIds, reference: Callable[[list[str]], dict]) -> bool:
        """Compare our tensors of ``texts`` (and the probes) with ``reference(texts)``, the
        model's own preprocessing; on any difference the path is turned off."""
        import torch

        # past max_len, and past the character limit (the prefix rule)
        probe_texts = list(PROBES) + ["word " * (2 * (self.tok.max_len or 64)),
                                      "word " * (7 * ((self.tok.max_len or 64) + 2))]
        for group, group_ids in ((list(texts), ids),
                                 (probe_texts, self.tok.tokenize(probe_texts))):
            try:
                ref = dict(reference(group))
            except Exception as exc:  # noqa: BLE001 - any failure: use the model's path
                self.turn_off(f"its preprocessing failed on the check ({exc})")
                return False
            modality = ref.pop("modality", "text")
            if modality != "text":
                self.turn_off(f"its preprocessing gives modality {modality!r}")
                return False
            extra = sorted(set(ref) - {"input_ids", "attention_mask", "token_type_ids"})
            if extra:
                self.turn_off(f"its preprocessing gives more inputs ({', '.join(extra)})")
                return False
            self.type_ids = "token_type_ids" in ref
            ours = collate(group_ids, np.arange(len(group)), pad_id=self.tok.pad_id,
                           left=self.tok.padding_left, type_ids=self.type_ids,
                           pad_type_id=self.tok.pad_type_id)
            for key, want in ref.items():
                want = torch.as_tensor(want).cpu()
                if want.shape != ours[key].shape or not torch.equal(want.long(), ours[key]):
                    self.turn_off(f"its {key} differ from the token path's")
                    return False
        self.checked = True
        return True

    # -- encoding -----------------------------------------------------------------------------
    def encode(self, texts: list[str], *, forward: Callable, reference: Callable,
               device: str, batch_size: int, batch_tokens: int | None,
               counts_memo: dict | None = None) -> np.ndarray | None:
        """Vectors of ``texts`` (float32, input order; at least one text), or None when the
        safety net turned the path off (the caller then uses its previous path).

        ``forward(features) -> (b, dim) tensor on the device`` (normalised as the encoder
        wants); ``reference(texts) -> dict`` the model's own preprocessing.
        """
        import torch

        ids = self.ids_for(texts)
        if counts_memo is not None:
            counts_memo.update(zip(texts, ids.counts.tolist()))
        lengths = ids.lengths
        tokens = batch_tokens
        if self.token_cap is not None:
            tokens = self.token_cap if tokens is None else min(tokens, self.token_cap)
        batches = token_batches(lengths, batch_size, tokens)
        if not self.checked:
            first = batches[0]
            if not self.check([texts[i] for i in first], ids.take(first), reference):
                return None
        self._start_next()  # the next block tokenises while this one runs
        cuda = str(device).startswith("cuda")
        out = None
        pending: list[tuple[np.ndarray, object]] = []
        pending_bytes = 0

        def flush():
            nonlocal out, pending, pending_bytes
            if not pending:
                return
            rows = np.concatenate([i for i, _ in pending])
            host = torch.cat([e for _, e in pending]).cpu().numpy()
            if out is None:
                out = np.empty((len(texts), host.shape[1]), dtype=np.float32)
            out[rows] = host
            pending, pending_bytes = [], 0

        with torch.inference_mode():
            for idx in trimmed(batches):
                emb = self._run(ids, idx, forward, device, cuda)
                pending.append((idx, emb))
                pending_bytes += emb.numel() * 4
                if pending_bytes >= HOST_FLUSH_BYTES:
                    flush()
            flush()
        return out

    def _run(self, ids: TokenIds, idx: np.ndarray, forward, device: str, cuda: bool):
        """Vectors (float32, on the device) of batch ``idx``; on out-of-memory the batch is
        split in halves (recursively) and the smaller budget is remembered."""
        longest = int(ids.lengths[idx].max())
        if self.token_cap is not None and len(idx) > 1 and len(idx) * longest > self.token_cap:
            half = len(idx) // 2
            return self._cat(self._run(ids, idx[:half], forward, device, cuda),
                             self._run(ids, idx[half:], forward, device, cuda))
        try:
            return self._forward(ids, idx, forward, device, cuda)
        except Exception as exc:  # noqa: BLE001 - re-raised unless out of memory
            if not is_out_of_memory(exc) or len(idx) == 1:
                raise
        # outside the except block: the error's frames (and their tensors) are gone
        free_device_memory(device)
        half = len(idx) // 2
        self.splits += 1
        self.token_cap = max(longest, half * longest)
        log.info("encoder '%s': out of memory on %d texts x %d tokens; batches of at most "
                 "%d padded tokens from now on", self.name, len(idx), longest, self.token_cap)
        return self._cat(self._run(ids, idx[:half], forward, device, cuda),
                         self._run(ids, idx[half:], forward, device, cuda))

    @staticmethod
    def _cat(a, b):
        import torch

        return torch.cat([a, b])

    def _forward(self, ids: TokenIds, idx: np.ndarray, forward, device: str, cuda: bool):
        features = collate(ids, idx, pad_id=self.tok.pad_id, left=self.tok.padding_left,
                           type_ids=self.type_ids, pad_type_id=self.tok.pad_type_id, pin=cuda)
        if str(device) != "cpu":
            features = {k: v.to(device, non_blocking=cuda) for k, v in features.items()}
        return forward(features).float()


class UsesTokenPath:
    """The token path's hooks of an encoder (``st:``/``minilm``, ``hf:``), which holds its
    ``TokenPath`` as ``_tokens`` and its device as ``torch_device``."""

    _tokens: TokenPath
    torch_device: str | None = None

    def use_token_cache(self, cache) -> None:
        """Token ids are kept in (and read from) ``cache``; None: tokenise every call."""
        self._tokens.use_cache(cache)

    def prefetch(self, texts: list[str], *, role: str) -> None:
        """The engine's next block: tokenise it in the background while this one encodes."""
        if self.torch_device is not None:
            self._tokens.prefetch(self.with_prefix(texts, role), device=self.torch_device)


def token_cache_scope(encoder, cache):
    """The embed stage's hook: token ids of ``encoder`` go to ``cache`` while it encodes a
    role's misses (``close()`` afterwards: a later direct ``encode``, e.g. the latency
    check's, tokenises again). Nothing for an encoder without ``use_token_cache`` or
    without a cache (the embed stage passes none when an engine encodes remotely: the
    Ray engine's workers tokenise on their own)."""
    hook = None
    if cache is not None:
        hook = getattr(encoder, "use_token_cache", None)
        if hook is not None:
            hook(cache)
    return _Scope(hook)


class _Scope:
    def __init__(self, hook):
        self.hook = hook

    def close(self) -> None:
        if self.hook is not None:
            self.hook(None)
            self.hook = None


__all__ = ["TextTokenizer", "TokenCache", "TokenIds", "TokenPath", "Unsupported", "UsesTokenPath", "collate",
           "is_out_of_memory", "token_cache_scope", "width_buckets"]
