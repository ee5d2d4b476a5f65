"""Embedding cache v2 (embeddings/cache.py): lookups equal a dict, bounded compaction,
damaged / missing shards are misses that get re-encoded, v1 folders are read."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from evalharness.embeddings import cache as cache_mod
from evalharness.embeddings.cache import (FANOUT, EmbeddingCache, as_keys, segment_paths,
                                          text_digest, text_digests, tier_of)
from evalharness.embeddings.planner import Vectors, embed
from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_spec_string


def _keys(rng, n):
    keys = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    keys[: n // 10, 24:] = 0                  # digests ending in NUL bytes
    keys[n // 10: n // 5, :8] = keys[0, :8]   # many keys sharing their first 8 bytes
    return np.unique(keys, axis=0)[rng.permutation(len(np.unique(keys, axis=0)))]


def _vecs_for(keys: np.ndarray, dim: int = 6) -> np.ndarray:
    """A vector that is a function of its key (so any mix-up shows)."""
    return keys[:, :dim].astype(np.float32) + keys[:, -1:].astype(np.float32) / 256


def test_lookup_equals_a_dict_on_random_keys(tmp_path):
    rng = np.random.default_rng(0)
    keys = _keys(rng, 3000)
    stored = keys[:2000]
    cache = EmbeddingCache(tmp_path)
    start = 0
    for size in rng.integers(1, 200, 40):  # stores of varied sizes -> several tiers
        part = stored[start:start + size]
        if len(part):
            # as a list of bytes half of the time, as an array the other half
            digests = [bytes(k) for k in part] if start % 2 else part
            cache.store("fp", "any", digests, _vecs_for(part))
        start += size
    cache.store("fp", "any", stored[start:], _vecs_for(stored[start:]))
    truth = {bytes(k): v for k, v in zip(stored, _vecs_for(stored))}
    query = keys[rng.permutation(len(keys))]
    mask, found = EmbeddingCache(tmp_path).lookup("fp", "any", [bytes(k) for k in query])
    expect = np.array([bytes(k) in truth for k in query])
    np.testing.assert_array_equal(mask, expect)
    np.testing.assert_array_equal(found, np.array([truth[bytes(k)] for k in query[mask]]))
    # the two-phase API fills a caller's matrix in place
    f = EmbeddingCache(tmp_path).find("fp", "any", query)
    out = np.full((len(query), 6), -1.0, np.float32)
    read = f.read_into(out)
    np.testing.assert_array_equal(read, expect)
    np.testing.assert_array_equal(out[read], found)
    assert (out[~read] == -1).all()
    assert len(segment_paths(tmp_path / "v2" / "fp" / "any")) < 2 * FANOUT


def test_duplicate_keys_and_other_roles(tmp_path):
    cache = EmbeddingCache(tmp_path)
    k = [text_digest("a"), text_digest("b"), text_digest("a")]
    cache.store("fp", "any", k, np.array([[1, 1], [2, 2], [3, 3]], np.float32))
    mask, found = cache.lookup("fp", "any", [text_digest("a"), text_digest("b")])
    assert mask.all() and found[0].tolist() == [1, 1] and found[1].tolist() == [2, 2]
    assert not cache.lookup("fp", "query", k)[0].any()
    assert cache.lookup("fp", "query", k)[1] is None
    assert cache.lookup("fp", "any", [])[0].shape == (0,)
    with pytest.raises(ValueError):
        as_keys([b"short"])
    np.testing.assert_array_equal(text_digests(["x", "y"]),
                                  as_keys([text_digest("x"), text_digest("y")]))


def test_compaction_is_bounded_and_linear(tmp_path, monkeypatch):
    """1-row stores: each entry is rewritten at most once per tier, and no compaction
    rewrites more than FANOUT times the entries of the tier it merges."""
    written, merged = [], []
    real_write = cache_mod.write_segment

    def counting(index_dir, entries, files, **kw):
        written.append(len(entries))
        return real_write(index_dir, entries, files, **kw)

    real_merge = EmbeddingCache._merge

    def merge(self, role_dir, group, **kw):
        merged.append(len(group))
        return real_merge(self, role_dir, group, **kw)

    monkeypatch.setattr(cache_mod, "write_segment", counting)
    monkeypatch.setattr(EmbeddingCache, "_merge", merge)
    cache = EmbeddingCache(tmp_path)
    n = 700
    keys = np.random.default_rng(1).integers(0, 256, (n, 32), dtype=np.uint8)
    for i in range(n):
        cache.store("fp", "any", keys[i:i + 1], np.full((1, 2), i, np.float32))
        segs = segment_paths(tmp_path / "v2" / "fp" / "any")
        tiers = [cache_mod.manifest_tier(m) for m in segs]
        assert all(tiers.count(t) < FANOUT for t in set(tiers))  # merged right away
    total = sum(written)
    assert total <= n * (1 + tier_of(n) + 1)  # linear: 1 write + one per tier crossed
    assert max(written) < n  # never everything at once (700 = 1 + 8 + ... not a power)
    assert set(merged) == {FANOUT}
    mask, found = cache.lookup("fp", "any", keys)
    assert mask.all() and found[:, 0].tolist() == list(range(n))
    # the data files are never rewritten: one per store
    assert len(list((tmp_path / "v2" / "fp" / "any" / "data").glob("*.npy"))) == n


def _flip_byte(path, offset_from_end=100):
    data = bytearray(path.read_bytes())
    data[len(data) - offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def _texts(n):
    return [f"text number {i} " + "word " * (i % 13) for i in range(n)]


def _enc(spec="random?dim=8&seed=3"):
    return build_encoder(parse_spec_string("r", spec))


@pytest.mark.parametrize("damage", ["data-bytes", "data-truncated", "data-missing",
                                    "index-bytes", "manifest-garbage"])
def test_damaged_shard_is_counted_reencoded_and_identical(tmp_path, monkeypatch, damage):
    monkeypatch.setattr("evalharness.embeddings.planner.FLUSH_BYTES", 64 * 8 * 4)
    enc = _enc()
    texts = _texts(300)
    first, stats = embed(enc, {"text": texts}, EmbeddingCache(tmp_path), chunk_size=64)
    ref = np.array(first.get("text", texts))
    role = tmp_path / "v2" / enc.fingerprint() / "any"
    manifests = segment_paths(role)
    assert stats.misses == 300 and len(manifests) == 5  # 4 blocks of 64, one of 44
    info = json.loads(manifests[2].read_text())  # one segment and its one data file
    data = role / "data" / f"{info['files'][0]['id']}.npy"
    rows = info["rows"]
    if damage == "data-bytes":
        _flip_byte(data)
    elif damage == "data-truncated":
        data.write_bytes(data.read_bytes()[:300])
    elif damage == "data-missing":
        data.unlink()
    elif damage == "index-bytes":
        _flip_byte(role / "index" / f"{manifests[2].stem.split('-', 1)[1]}.npy", 10)
    else:
        manifests[2].write_text("{not json")
    cache = EmbeddingCache(tmp_path)
    again, stats = embed(enc, {"text": texts}, cache, chunk_size=64)
    assert stats.damaged == 1 and cache.damaged == 1
    assert stats.misses == rows and stats.hits == 300 - rows  # exactly that shard's texts
    np.testing.assert_array_equal(again.get("text", texts), ref)  # identical numbers
    # set aside, the index repaired: the next run finds everything, nothing damaged
    assert list(role.rglob("*.damaged")) or damage == "data-missing"
    third, stats = embed(enc, {"text": texts}, EmbeddingCache(tmp_path))
    assert (stats.hits, stats.misses, stats.damaged) == (300, 0, 0)
    np.testing.assert_array_equal(third.get("text", texts), ref)


def test_block_checksums_catch_one_changed_float(tmp_path):
    cache = EmbeddingCache(tmp_path)
    keys = np.random.default_rng(2).integers(0, 256, (50, 32), dtype=np.uint8)
    vecs = np.arange(50 * 4, dtype=np.float32).reshape(50, 4)
    cache.store("fp", "any", keys, vecs)
    path = next((tmp_path / "v2" / "fp" / "any" / "data").glob("*.npy"))
    arr = np.load(path, mmap_mode="r+")
    arr[17, 2] = np.nextafter(arr[17, 2], np.float32(1e9))  # one ulp: still a valid float
    arr.flush()
    del arr
    mask, found = EmbeddingCache(tmp_path).lookup("fp", "any", keys)
    assert not mask.any() and len(found) == 0
    assert list((tmp_path / "v2" / "fp" / "any" / "data").glob("*.damaged"))


def _as_sha256_records(root) -> None:
    """Rewrite every manifest of ``root`` as the first v2 release wrote it: block digests
    in sha256 and no "hash" field."""
    for manifest in root.rglob("index/*.json"):
        info = json.loads(manifest.read_text())
        for rec in info["files"]:
            data = np.load(manifest.parent.parent / "data" / f"{rec['id']}.npy")
            br = int(rec["block_rows"])
            rec.pop("hash")
            rec["blocks"] = [cache_mod._sha256(data[b:b + br]) for b in range(0, len(data), br)]
        manifest.write_text(json.dumps(info))


def test_block_checksums_are_xxh3_and_sha256_records_still_read(tmp_path):
    keys = np.random.default_rng(3).integers(0, 256, (300, 32), dtype=np.uint8)
    vecs = _vecs_for(keys, 8)
    EmbeddingCache(tmp_path).store("fp", "any", keys, vecs)
    manifest = next((tmp_path / "v2" / "fp" / "any" / "index").glob("*.json"))
    assert {r["hash"] for r in json.loads(manifest.read_text())["files"]} == {"xxh3_128"}
    _as_sha256_records(tmp_path)
    mask, found = EmbeddingCache(tmp_path).lookup("fp", "any", keys)
    assert mask.all() and np.array_equal(found, vecs)
    from evalharness.cache_admin import verify
    assert verify(tmp_path)["ok"]
    path = next((tmp_path / "v2" / "fp" / "any" / "data").glob("*.npy"))
    arr = np.load(path, mmap_mode="r+")
    arr[5, 1] += 1  # a sha256 record still catches a changed float
    arr.flush()
    del arr
    mask, _ = EmbeddingCache(tmp_path).lookup("fp", "any", keys)
    assert not mask.any()


def _write_v1(root, fp, role, shards, meta=None):
    folder = root / "v1" / fp / role
    folder.mkdir(parents=True)
    for i, (keys, vecs) in enumerate(shards):
        with open(folder / f"shard{i}.npz", "wb") as fh:
            np.savez(fh, keys=keys, vecs=vecs)
    if meta is not None:
        (root / "v1" / fp / "meta.json").write_text(json.dumps(meta))
    return folder


def test_v1_folders_are_read_and_imported_once(tmp_path):
    rng = np.random.default_rng(4)
    keys = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    keys[0, -2:] = 0
    vecs = rng.standard_normal((30, 5)).astype(np.float32)
    folder = _write_v1(tmp_path, "fp", "any", [(keys[:20], vecs[:20]), (keys[20:], vecs[20:])],
                       meta={"max_seq_length": 7})
    (folder / "shard9.npz").write_bytes(b"PK\x03\x04 damaged zip")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    cache = EmbeddingCache(tmp_path)
    assert cache.meta("fp") == {"max_seq_length": 7}  # v1 facts are read too
    mask, found = cache.lookup("fp", "any", keys[::-1])
    assert mask.all()
    np.testing.assert_array_equal(found, vecs[::-1])
    assert cache.damaged == 1  # the damaged v1 shard: counted, its texts are misses
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # v1 left as is
    imported = json.loads((tmp_path / "v2" / "fp" / "any" / "v1-imported.json").read_text())
    assert sorted(imported) == ["shard0.npz", "shard1.npz", "shard9.npz"]
    n_data = len(list((tmp_path / "v2" / "fp" / "any" / "data").glob("*.npy")))
    EmbeddingCache(tmp_path).lookup("fp", "any", keys)  # not imported twice
    assert len(list((tmp_path / "v2" / "fp" / "any" / "data").glob("*.npy"))) == n_data
    cache.update_meta("fp", {"parameters": 3})
    assert cache.meta("fp") == {"max_seq_length": 7, "parameters": 3}


def test_vectors_get_returns_views_of_consecutive_rows():
    m = np.arange(20, dtype=np.float32).reshape(10, 2)
    vec = Vectors(lambda role: "any", {"any": ({f"t{i}": i for i in range(10)}, m)})
    v = vec.get("text", ["t3", "t4", "t5"])
    assert np.shares_memory(v, m) and v.tolist() == m[3:6].tolist()
    with pytest.raises(ValueError):
        v[0, 0] = 1  # read-only: the matrix is shared by every task
    c = vec.get("text", ["t5", "t3"])
    assert not np.shares_memory(c, m) and c.tolist() == [m[5].tolist(), m[3].tolist()]
    assert vec.get("text", []).shape == (0, 2)


def test_embed_spills_a_large_matrix_to_a_memory_map(tmp_path, monkeypatch):
    from evalharness.tasks.search import exact_topk

    monkeypatch.setenv("EVALHARNESS_SPILL_BYTES", "1000")
    enc = _enc("random?dim=16&seed=1")
    docs, queries = _texts(400), [f"q{i}" for i in range(5)]
    vectors, stats = embed(enc, {"query": queries, "document": docs},
                           EmbeddingCache(tmp_path / "c"))
    assert stats.spilled
    assert not list((tmp_path / "c" / "tmp").iterdir())  # unlinked at once
    d = vectors.get("document", docs)
    np.testing.assert_array_equal(d, enc.encode(docs, role="document"))
    q = vectors.get("query", queries)
    _, idx = exact_topk(q, d, 3)
    full = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ \
        (d / np.linalg.norm(d, axis=1, keepdims=True)).T
    np.testing.assert_array_equal(idx[:, 0], np.argmax(full, axis=1))
    warm, stats = embed(enc, {"query": queries, "document": docs}, EmbeddingCache(tmp_path / "c"))
    assert stats.hits == 405 and stats.spilled
    np.testing.assert_array_equal(warm.get("document", docs), d)


def test_interrupted_encode_keeps_every_finished_block(tmp_path):
    """Blocks wait in memory to be written as one data file; an error still writes them."""
    enc = _enc()
    texts = _texts(50)

    class Boom(Exception):
        pass

    class Engine:
        name = "test"

        def encode_blocks(self, encoder, texts, *, role, block_size):
            for s in range(0, 40, 10):
                yield s, s + 10, encoder.encode(texts[s:s + 10], role=role)
            raise Boom

        def describe(self):
            return {}

    cache = EmbeddingCache(tmp_path)
    with pytest.raises(Boom):
        embed(enc, {"text": texts}, cache, engine=Engine())
    _, stats = embed(enc, {"text": texts}, EmbeddingCache(tmp_path))
    assert (stats.hits, stats.misses) == (40, 10)
