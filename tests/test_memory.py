"""evalharness.memory: heap trimming between encode batches (glibc malloc_trim)."""

import sys

import numpy as np
import pytest

from evalharness import memory


def test_trimmed_yields_every_batch_and_trims_every_n(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "release_free_memory", lambda: calls.append(1) or True)
    got = []
    for b in memory.trimmed(iter(range(10)), every=4):
        got.append((b, len(calls)))  # the trim runs after the caller is done with a batch
    assert got == [(0, 0), (1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 1), (7, 1), (8, 2),
                   (9, 2)]
    assert len(calls) == 2
    assert list(memory.trimmed([], every=4)) == []


def _rss_kib() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_release_free_memory_returns_freed_heap_pages():
    if not memory.release_free_memory():
        pytest.skip("this C library has no malloc_trim")
    # ~256 MiB of blocks below glibc's mmap threshold (so in the heap), then one block
    # above them that stays: the freed blocks cannot be trimmed from the heap's top, so
    # they stay resident until malloc_trim gives their pages back
    blocks = [np.ones(64 * 1024, dtype=np.uint8) for _ in range(4000)]
    pin = np.ones(64 * 1024, dtype=np.uint8)
    del blocks
    before = _rss_kib()
    assert memory.release_free_memory() is True
    assert _rss_kib() < before - 128 * 1024
    assert int(pin.sum()) == 64 * 1024


def test_populated_matrix_is_a_writable_float32_matrix_of_the_asked_shape(monkeypatch):
    import mmap

    small = memory.populated_matrix(10, 4)  # below the threshold: plain numpy
    assert small.shape == (10, 4) and small.dtype == np.float32 and small.base is None
    monkeypatch.setattr(memory, "POPULATE_MIN_BYTES", 1)
    big = memory.populated_matrix(1000, 384)
    assert big.shape == (1000, 384) and big.dtype == np.float32 and big.flags.writeable
    if hasattr(mmap, "MAP_POPULATE"):
        assert isinstance(big.base.base, memoryview)  # frombuffer's view of the mapping
        assert isinstance(big.base.base.obj, mmap.mmap)
        assert not big.any()  # anonymous pages are zero
    big[:] = np.arange(384, dtype=np.float32)
    view = big[10:20]
    del big  # a view keeps the mapping alive
    assert view[3, 383] == 383.0


def test_embed_fills_a_populated_matrix_like_a_plain_one(tmp_path, monkeypatch):
    from evalharness.embeddings.cache import EmbeddingCache
    from evalharness.embeddings.planner import embed
    from evalharness.encoders.pool import build_encoder
    from evalharness.encoders.spec import parse_spec_string

    texts = [f"text {i}" for i in range(300)]
    enc = build_encoder(parse_spec_string("r", "random?dim=16&seed=1"))
    plain, _ = embed(enc, {"text": texts}, EmbeddingCache(tmp_path / "a"))
    monkeypatch.setattr(memory, "POPULATE_MIN_BYTES", 1)
    cold, _ = embed(enc, {"text": texts}, EmbeddingCache(tmp_path / "b"))
    warm, stats = embed(enc, {"text": texts}, EmbeddingCache(tmp_path / "b"))
    assert stats.hits == 300
    assert np.array_equal(cold.get("text", texts), plain.get("text", texts))
    assert np.array_equal(warm.get("text", texts), plain.get("text", texts))
