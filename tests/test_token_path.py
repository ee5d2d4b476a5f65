"""The token path of the torch encoders (encoders/token_path.py): token ids exactly the
tokenizer's, vectors equal to sentence-transformers' ``encode`` and to a hand-run
transformers forward, the token cache beside the vectors (shared by encoders with one
tokenizer, a damaged shard is a miss), the safety net's fallback, the out-of-memory split,
and the GPU bench on the CPU."""

from __future__ import annotations

import copy
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from evalharness.embeddings.cache import EmbeddingCache
from evalharness.embeddings.planner import embed
from evalharness.encoders.base import count_tokens
from evalharness.encoders.batching import model_lengths, token_batches
from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_encoder_entry, parse_spec_string
from evalharness.encoders.token_path import (PROBES, TextTokenizer, TokenIds, collate,
                                             is_out_of_memory, width_buckets)
from evalharness.encoders.variants import build_variant

REPO = Path(__file__).resolve().parents[1]

BASE_TEXTS = [
    "", " ", "a", "A man is playing a guitar.", "  leading and trailing spaces  ",
    "\ttabs\tand\nnew lines\n", "UPPER CASE and lower case", "Café naïve façade jalapeño",
    "東京は日本の首都です。", "Привет, как дела?", "emoji 😀🚀 and symbols ½ ™ ﬁ",
    "مرحبا بالعالم", "x" * 300, "supercalifragilisticexpialidocious " * 3,
    "word " * 300,                              # past max_seq_length (256 tokens)
    "a b " * 25_000,                            # 100k chars: the prefix rule, kept ids
    "y" * 100_000,                              # 100k chars, one word: the whole text
    "Numbers 3.14159 and 2,718 and 1e-5; URLs http://example.com/path?q=1",
    "[CLS] special [SEP] tokens [MASK] in text",
]


def _texts(n: int = 60) -> list[str]:
    rng = np.random.default_rng(0)
    words = ("the quick brown fox jumps over lazy dog stocks fell sharply today while "
             "markets rallied on news of vaccine trials in europe and asia").split()
    out = list(BASE_TEXTS)
    while len(out) < n:
        k = int(rng.integers(1, 80))
        out.append(" ".join(rng.choice(words, size=k)).capitalize() + ".")
    return out


def _fresh(encoder):
    """A copy of a loaded encoder with its own token path (the session's MiniLM stays
    as it was)."""
    from evalharness.encoders.token_path import TokenPath

    out = copy.copy(encoder)
    out._tokens = TokenPath(encoder.name)
    out._counts = {}
    return out


def record_calls(monkeypatch, tokenizer) -> list:
    """The texts of every call of ``tokenizer`` (this object only) that is not a padded
    call (the safety net's reference): what it tokenised for ids."""
    seen = []
    cls = type(tokenizer)
    real = cls.__call__

    def call(self, *args, **kwargs):
        if self is tokenizer and not kwargs.get("padding"):
            seen.extend(args[0] if isinstance(args[0], list) else [args[0]])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", call)
    return seen


# -- token ids ----------------------------------------------------------------------------
def test_token_ids_equal_the_tokenizers_truncation_included(minilm):
    tok = minilm.model.tokenizer
    texts = _texts()
    ids = TextTokenizer(tok, 256).tokenize(texts)
    want = tok(texts, truncation=True, max_length=256)["input_ids"]
    assert [ids.ids(i).tolist() for i in range(len(texts))] == want
    assert ids.flat.dtype == np.int32 and len(ids.offsets) == len(texts) + 1
    # the untruncated counts are count_tokens' (truncation reports), from the same call
    np.testing.assert_array_equal(ids.counts, count_tokens(tok, texts, 256))
    # so batches are the ones the previous path cut (same lengths, same order, budget)
    lengths = model_lengths(tok, texts, 256)
    np.testing.assert_array_equal(ids.lengths, lengths)
    for a, b in zip(token_batches(ids.lengths, 64, 2048), token_batches(lengths, 64, 2048)):
        np.testing.assert_array_equal(a, b)


def test_left_truncation_and_left_padding(minilm):
    tok = copy.deepcopy(minilm.model.tokenizer)
    tok.truncation_side = "left"
    tok.padding_side = "left"
    texts = ["short", "word " * 40, "", "a b c d e f g"]
    tt = TextTokenizer(tok, 16)
    ids = tt.tokenize(texts)
    want = tok(texts, truncation=True, max_length=16)["input_ids"]
    assert [ids.ids(i).tolist() for i in range(len(texts))] == want
    got = collate(ids, np.arange(len(texts)), pad_id=tt.pad_id, left=tt.padding_left,
                  type_ids=True)
    ref = tok(texts, padding=True, truncation=True, max_length=16, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        assert torch.equal(got[key], ref[key]), key


def test_token_ids_take_and_assemble_round_trip():
    ids = TokenIds(np.arange(10, dtype=np.int32), np.array([0, 3, 3, 7, 10]),
                   np.array([3, 0, 4, 3]))
    part = ids.take([2, 0])
    assert part.ids(0).tolist() == [3, 4, 5, 6] and part.ids(1).tolist() == [0, 1, 2]
    whole = TokenIds.assemble(4, [(np.array([2, 0]), part), (np.array([1, 3]), ids.take([1, 3]))])
    np.testing.assert_array_equal(whole.flat, ids.flat)
    np.testing.assert_array_equal(whole.offsets, ids.offsets)
    assert width_buckets(256) == [16, 32, 64, 128, 256] and width_buckets(384)[-2:] == [256, 384]


# -- vectors ------------------------------------------------------------------------------
def test_minilm_vectors_equal_sentence_transformers_encode(minilm):
    enc = _fresh(minilm)
    texts = _texts()
    ours = enc.encode(texts, role="text")
    assert enc._tokens.off is None and enc._tokens.checked  # the token path ran
    ref = minilm.model.encode(texts, batch_size=32, convert_to_numpy=True,
                              show_progress_bar=False)
    assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # and the previous path (the fallback) gives the same vectors
    old = enc._encode_per_batch(texts, enc.options.batching("cpu"))
    np.testing.assert_allclose(ours, old, atol=1e-6)
    assert enc.encode([], role="text").shape == (0, 384)


def test_token_lengths_come_from_the_same_tokenisation(minilm, monkeypatch):
    from evalharness.encoders import batching

    enc = _fresh(minilm)
    texts = _texts(30)
    enc.encode(texts, role="text")
    monkeypatch.setattr(batching, "count_tokens", _no_second_tokenisation)
    np.testing.assert_array_equal(enc.token_lengths(texts),
                                  count_tokens(minilm.model.tokenizer, texts, 256))


def _no_second_tokenisation(*args, **kwargs):
    raise AssertionError("token_lengths tokenised the texts again")


def test_hf_mean_pooling_equals_a_hand_run_transformers_forward():
    enc = build_encoder(parse_spec_string("h", "hf:minilm?pooling=mean"))
    enc.load()
    texts = _texts(30)
    ours = enc.encode(texts, role="text")
    assert enc._tokens.off is None and enc._tokens.checked
    tok, model = enc.tokenizer, enc.model
    ref = []
    with torch.inference_mode():
        for t in texts:  # one text at a time: no padding at all
            batch = tok([t], truncation=True, max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state[0]
            ref.append(hidden.mean(0).numpy())
    np.testing.assert_allclose(ours, np.stack(ref), atol=1e-5)


def test_bf16_variant_runs_on_the_token_path(minilm):
    base = _fresh(minilm)
    v = build_variant(parse_encoder_entry("b", {"base": "minilm", "dtype": "bfloat16"}), base)
    v.load()
    assert v.source._tokens is base._tokens  # one tokenizer, one token path
    texts = _texts(24)
    got = v.encode(texts, role="text")
    fp32 = base.encode(texts, role="text")
    assert got.dtype == np.float32 and np.isfinite(got).all()
    cos = (got * fp32).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cos.min() > 0.99 and not np.allclose(got, fp32, atol=1e-6)
    assert base._tokens.off is None


# -- the token cache ------------------------------------------------------------------------
def test_token_cache_is_shared_by_encoders_with_one_tokenizer(minilm, tmp_cache, monkeypatch):
    texts = _texts(40)
    first = _fresh(minilm)
    vec1, _ = embed(first, {"text": texts}, tmp_cache)
    assert first._tokens.cache is None  # the embed stage's scope is closed again
    fp = first._tokens.tok.fingerprint()
    assert fp.startswith("tokens-")
    roles = sorted(p.name for p in (tmp_cache.root / "v2" / fp).iterdir() if p.is_dir())
    assert roles and all(r.startswith("w") for r in roles)

    # another encoder (hf:, its own tokenizer object) with the same tokenizer files
    other = build_encoder(parse_spec_string("h", "hf:minilm?pooling=mean&normalize=true"))
    other.load()
    assert other.tokenizer is not first.model.tokenizer
    seen = record_calls(monkeypatch, other.tokenizer)
    vec2, _ = embed(other, {"text": texts}, tmp_cache)
    assert other._tokens.tok.fingerprint() == fp
    probes = set(PROBES) | {"hello world", "Hello, World!"}  # the tokenizer's own checks
    assert not (set(seen) & set(texts)) - probes  # the ids came from the cache
    assert "a b " * 25_000 not in seen
    np.testing.assert_allclose(vec2.get("text", texts), vec1.get("text", texts), atol=1e-5)

    # a damaged token shard is a miss: tokenised again, identical vectors, counted
    data = sorted((tmp_cache.root / "v2" / fp).glob("w*/data/*.npy"))
    assert data
    for f in data:
        raw = bytearray(f.read_bytes())
        raw[-8:] = b"\x7f" * 8
        f.write_bytes(bytes(raw))
    third = _fresh(minilm)
    third.options = third.options.model_copy(update={"normalize": True})  # new vectors
    seen3 = record_calls(monkeypatch, minilm.model.tokenizer)
    next_run = EmbeddingCache(tmp_cache.root)  # checksums are verified once per instance
    vec3, _ = embed(third, {"text": texts}, next_run)
    assert next_run.damaged >= 1 and third._tokens.off is None
    assert "a b " * 25_000 in seen3 or "A man is playing a guitar." in seen3
    np.testing.assert_allclose(vec3.get("text", texts), vec1.get("text", texts), atol=1e-5)


def test_token_cache_counts_its_hits(minilm, tmp_cache):
    enc = _fresh(minilm)
    path = enc._tokens
    enc.use_token_cache(tmp_cache)
    texts = _texts(20)
    a = enc.encode(texts, role="text")
    tc = path._token_cache
    assert (tc.hits, tc.misses) == (0, len(texts))
    tc.flush()  # rows are written in groups (at the latest when the embed stage's scope ends)
    b = enc.encode(texts[::-1], role="text")
    assert (tc.hits, tc.misses) == (len(texts), len(texts))
    np.testing.assert_allclose(b[::-1], a, atol=1e-6)
    ids = path.ids_for(texts)
    want = minilm.model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    assert [ids.ids(i).tolist() for i in range(len(texts))] == want
    np.testing.assert_array_equal(ids.counts, count_tokens(minilm.model.tokenizer, texts, 256))
    enc.use_token_cache(None)


# -- the safety net ---------------------------------------------------------------------------
def test_fallback_when_the_models_preprocessing_differs(minilm, caplog):
    enc = _fresh(minilm)

    def differs(texts):
        ref = minilm.model.preprocess(texts)
        ref["input_ids"] = ref["input_ids"].clone()
        ref["input_ids"][:, 1] += 1  # e.g. a model that rewrites its texts
        return ref

    enc._reference = differs
    texts = _texts(30)
    with caplog.at_level(logging.WARNING, logger="evalharness.encoders.token_path"):
        got = enc.encode(texts, role="text")
    assert enc._tokens.off == "its input_ids differ from the token path's"
    assert any("token path off" in r.getMessage() for r in caplog.records)
    ref = minilm.model.encode(texts, batch_size=32, convert_to_numpy=True,
                              show_progress_bar=False)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # once off, it stays off, silently
    caplog.clear()
    enc.encode(texts[:3], role="text")
    assert not caplog.records


def test_fallback_for_a_model_that_is_not_plain_text(minilm):
    enc = _fresh(minilm)
    model = copy.copy(minilm.model)
    model.default_prompt_name = "query"  # a prompt the token path would not add
    enc.model = model
    assert "default prompt" in enc._why_not_token_path()
    enc.model = minilm.model
    assert enc._why_not_token_path() is None
    enc._why_not_token_path = lambda: "it routes its inputs (a Router module)"
    texts = _texts(12)
    got = enc.encode(texts, role="text")
    assert enc._tokens.off.startswith("it routes")
    np.testing.assert_allclose(got, minilm.model.encode(texts, convert_to_numpy=True,
                                                        show_progress_bar=False), atol=1e-5)
    with pytest.raises(Exception, match="not a fast tokenizer"):
        TextTokenizer(type("Slow", (), {"is_fast": False})(), 16)


# -- out of memory ------------------------------------------------------------------------------
def test_out_of_memory_splits_the_batch_and_keeps_the_smaller_budget(minilm):
    enc = _fresh(minilm)
    real = enc._forward
    seen = []
    limit = 200  # padded tokens this fake device holds

    def forward(features):
        rows, width = features["input_ids"].shape
        seen.append(rows * width)
        if rows * width > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(features)

    enc._forward = forward
    enc.options = enc.options.model_copy(update={"batch_size": 16, "batch_tokens": None})
    texts = _texts(40)[len(BASE_TEXTS):]  # sentences of 1-80 words
    got = enc.encode(texts, role="text")
    path = enc._tokens
    assert path.splits >= 2 and path.token_cap is not None and path.token_cap <= limit
    assert max(seen) > limit  # it did fail, and recovered
    ref = minilm.model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    # the smaller budget is kept: the next call never tries a batch that fails
    seen.clear()
    splits = path.splits
    np.testing.assert_allclose(enc.encode(texts, role="text"), ref, atol=1e-5)
    assert max(seen) <= limit and path.splits == splits
    # other errors are not retried; one text out of memory is an error too
    enc._forward = lambda f: (_ for _ in ()).throw(ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        enc.encode(texts, role="text")
    enc._forward = lambda f: (_ for _ in ()).throw(torch.OutOfMemoryError("out of memory"))
    with pytest.raises(torch.OutOfMemoryError):
        enc.encode(texts[:1], role="text")


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


# -- the GPU bench, run on the CPU ---------------------------------------------------------------
@pytest.mark.integration
def test_gpu_bench_runs_on_the_cpu(shared_data, tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, "-m", "evalharness.bench.gpu", "--device", "cpu",
                           "--limit", "40", "--datasets", "stsb,agnews", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res["device"] == "cpu" and res["measured_on_gpu"] is False
    assert set(res["datasets"]) == {"stsb", "agnews"}
    for row in res["datasets"].values():
        assert row["texts"] == 40
        for key in ("st_encode_bs32", "st_encode_bs256", "evalharness_fp32",
                    "evalharness_bf16"):
            assert row[key]["texts_per_second"] > 0
    eq = res["stsb_equality"]
    assert eq["max_abs_diff"] <= 1e-5 and eq["ok"] is True
    assert -1 <= eq["spearman_st"] <= 1 and abs(eq["spearman_st"] - eq["spearman_evalharness"]) < 1e-4
    assert res["token_path"] == "on"


def test_gpu_bench_skips_without_a_gpu(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    from evalharness.bench import gpu

    out = tmp_path / "gpu.json"
    assert gpu.main(["--out", str(out)]) == 0
    assert not out.exists()


def test_token_rows_no_tokenizer_wrote_are_misses(minilm, tmp_cache):
    """Rows with a valid checksum but impossible content (a gap, a huge or fractional id)
    are misses, tokenised again."""
    from evalharness.embeddings.cache import text_digests

    enc = _fresh(minilm)
    assert enc._tokens.ready(minilm.model.tokenizer, 256, lambda: None)
    enc.use_token_cache(tmp_cache)
    texts = ["one short text", "another one", "a third"]
    bad = np.full((3, 17), -1.0, dtype=np.float32)
    bad[:, 0] = 5
    bad[0, 1:4] = [101, -1, 102]        # a gap
    bad[1, 1:3] = [101, 3.0e38]         # not an id
    bad[2, 1:3] = [101, 7.5]            # not an integer
    tmp_cache.store(enc._tokens.tok.fingerprint(), "w16", text_digests(texts), bad)
    ids = enc._tokens.ids_for(texts)
    assert enc._tokens._token_cache.misses == 3
    want = minilm.model.tokenizer(texts, truncation=True, max_length=256)["input_ids"]
    assert [ids.ids(i).tolist() for i in range(len(texts))] == want
    enc.use_token_cache(None)


def test_local_engine_hands_the_next_block_before_encoding_the_current_one():
    from evalharness.embeddings.engines import LocalEngine

    calls = []

    class Enc:
        def prefetch(self, texts, *, role):
            calls.append(("prefetch", list(texts), role))

        def encode(self, texts, *, role):
            calls.append(("encode", list(texts), role))
            return np.zeros((len(texts), 2), np.float32)

    texts = [f"t{i}" for i in range(7)]
    blocks = list(LocalEngine().encode_blocks(Enc(), texts, role="query", block_size=3))
    assert [(a, b) for a, b, _ in blocks] == [(0, 3), (3, 6), (6, 7)]
    assert calls == [("prefetch", texts[3:6], "query"), ("encode", texts[0:3], "query"),
                     ("prefetch", texts[6:7], "query"), ("encode", texts[3:6], "query"),
                     ("encode", texts[6:7], "query")]  # nothing after the last block


def test_tokenising_ahead_runs_in_a_background_thread_with_identical_vectors(
        minilm, tmp_path, monkeypatch):
    import threading

    texts = _texts(90)
    plain = _fresh(minilm)
    ref, _ = embed(plain, {"text": texts}, None, chunk_size=20)
    assert plain._tokens._pool is None  # on a CPU nobody tokenises ahead

    ahead = _fresh(minilm)
    ahead._tokens.prefetch_on_cpu = True
    threads = []
    real = TextTokenizer.tokenize

    def tokenize(self, batch):
        threads.append(threading.current_thread().name)
        return real(self, batch)

    monkeypatch.setattr(TextTokenizer, "tokenize", tokenize)
    got, _ = embed(ahead, {"text": texts}, EmbeddingCache(tmp_path), chunk_size=20)
    # the first block is tokenised in the foreground (the safety net checks it), the
    # four others ahead, in the background thread (the probes: foreground)
    assert sum(t.startswith("tokens-") for t in threads) == 4
    assert ahead._tokens._pool is None and ahead._tokens._ahead is None  # closed with the role
    np.testing.assert_allclose(got.get("text", texts), ref.get("text", texts), atol=1e-6)


def test_a_prefetch_of_other_texts_is_dropped_and_the_asked_texts_tokenised(minilm):
    enc = _fresh(minilm)
    enc._tokens.prefetch_on_cpu = True
    texts = _texts(30)
    first = enc.encode(texts[:10], role="text")  # the safety net passes
    enc.prefetch(texts[10:20], role="text")
    other = enc.encode(texts[20:30], role="text")  # then starts tokenising 10:20 ahead
    assert enc._tokens._ahead[0] == texts[10:20]
    mid = enc.encode(texts[10:20], role="text")  # served by the background thread
    assert enc._tokens._ahead is None
    enc.prefetch(texts[:5], role="text")
    enc.encode(texts[20:25], role="text")
    assert enc._tokens._ahead[0] == texts[:5]
    again = enc.encode(texts[25:30], role="text")  # not those: dropped, tokenised now
    assert enc._tokens._ahead is None
    enc._tokens.stop_prefetch()
    assert enc._tokens._pool is None
    ref = minilm.model.encode(texts, batch_size=32, convert_to_numpy=True,
                              show_progress_bar=False)
    np.testing.assert_allclose(np.vstack([first, mid, other]), ref, atol=1e-5)
    np.testing.assert_allclose(again, ref[25:30], atol=1e-5)


def test_token_rows_of_many_encode_calls_share_data_files(minilm, tmp_path):
    enc = _fresh(minilm)
    cache = EmbeddingCache(tmp_path)
    texts = [f"sentence number {i} of the test" for i in range(60)]
    embed(enc, {"text": texts}, cache, chunk_size=10)  # six encode() calls, one scope
    fp = enc._tokens.tok.fingerprint()
    files = sorted((tmp_path / "v2" / fp).glob("w*/data/*.npy"))
    assert [f.parent.parent.name for f in files] == ["w16"]  # one file, not one per call
    again = _fresh(minilm)
    again.use_token_cache(EmbeddingCache(tmp_path))
    again.encode(texts, role="text")
    assert again._tokens._token_cache.hits == len(texts)
    again.use_token_cache(None)
