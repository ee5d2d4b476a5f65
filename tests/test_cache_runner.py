"""The embed-once cache and the runner: hits/misses, atomic shards, failed encoders,
results.json contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalharness.cli import main
from evalharness.embeddings.cache import EmbeddingCache, text_digest
from evalharness.embeddings.planner import TextNeed, collect, embed
from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_spec_string
from evalharness.errors import EncoderError

from helpers import TINY_SUITE, make_sts, write_suite


def test_cache_roundtrip_and_compaction(tmp_path):
    cache = EmbeddingCache(tmp_path)
    texts = [f"t{i}" for i in range(20)]
    digests = [text_digest(t) for t in texts]
    vecs = np.arange(40, dtype=np.float32).reshape(20, 2)
    for i in range(10):  # many small writes -> compacted into one shard
        cache.store("fp", "any", digests[2 * i:2 * i + 2], vecs[2 * i:2 * i + 2])
    folder = tmp_path / "v2" / "fp" / "any"
    assert len(list((folder / "index").glob("*.json"))) <= 8  # index segments
    assert not list(folder.rglob("*.tmp"))
    mask, found = cache.lookup("fp", "any", digests[::-1] + [text_digest("new")])
    assert mask.tolist() == [True] * 20 + [False]
    np.testing.assert_array_equal(found, vecs[::-1])
    assert not cache.lookup("other-fp", "any", digests)[0].any()


def test_damaged_shard_is_a_miss(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.store("fp", "any", [text_digest("a")], np.ones((1, 2), np.float32))
    shard = next((tmp_path / "v2" / "fp" / "any" / "data").glob("*.npy"))
    shard.write_bytes(b"garbage")
    assert not cache.lookup("fp", "any", [text_digest("a")])[0].any()


def test_collect_dedupes_across_tasks():
    wanted = collect([TextNeed("text", ("a", "b")), TextNeed("text", ("b", "c")),
                      TextNeed("query", ("a",))])
    assert wanted == {"text": ["a", "b", "c"], "query": ["a"]}


def test_embed_shares_roles_without_prefixes(tmp_path):
    e = build_encoder(parse_spec_string("r", "random?dim=4"))
    cache = EmbeddingCache(tmp_path)
    vecs, stats = embed(e, {"query": ["a", "b"], "document": ["b", "c"]}, cache)
    assert stats.misses == 3 and stats.hits == 0  # "b" encoded once for both roles
    np.testing.assert_array_equal(vecs.get("query", ["b"]), vecs.get("document", ["b"]))
    _, stats2 = embed(e, {"document": ["a", "c"]}, cache)
    assert (stats2.hits, stats2.misses) == (2, 0)


def test_embed_keeps_roles_apart_with_prefixes(tmp_path):
    e = build_encoder(parse_spec_string("r", "random?dim=4&query_prefix=q:"))
    vecs, stats = embed(e, {"query": ["b"], "document": ["b"]}, EmbeddingCache(tmp_path))
    assert stats.misses == 2
    assert not np.allclose(vecs.get("query", ["b"]), vecs.get("document", ["b"]))


def test_partial_progress_is_cached_when_encoder_fails(tmp_path):
    e = build_encoder(parse_spec_string("bad", "py:helpers:NanOnFour?batch_size=1"))
    cache = EmbeddingCache(tmp_path)
    texts = [f"text number {i}" for i in range(5)]
    with pytest.raises(EncoderError, match="encoder 'bad'.*NaN"):
        embed(e, {"text": texts}, cache, chunk_size=2)
    # chunks [0,1] and [2,3] were written before the chunk with the bad text
    mask, _ = cache.lookup(e.fingerprint(), "any", [text_digest(t) for t in texts])
    assert mask.tolist() == [True, True, True, True, False]


def _run(tmp_path, suite_text, *extra):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", suite_text)
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "data"),
                 "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *extra])
    return code, json.loads((tmp_path / "out" / "results.json").read_text())


def test_results_contract_and_warm_rerun(tmp_path):
    code, res = _run(tmp_path, TINY_SUITE)
    assert code == 0
    assert res["schema_version"] == 1 and res["suite"] == "tiny" and res["passed"] is True
    assert set(res) >= {"created", "environment", "encoders", "datasets", "results",
                        "verdicts", "passed"}
    assert res["environment"]["evalharness"] == "0.1.0"
    rec = res["encoders"]["rnd"]
    assert rec["cache"] == {"hits": 0, "misses": 20} and rec["dim"] == 16
    assert set(rec["seconds"]) >= {"load", "plan", "encode", "evaluate"}
    assert set(res["seconds"]) >= {"plan", "write", "total"}
    m = res["results"]["rnd"]["sts"]["metrics"]["cosine_spearman"]
    assert set(m) >= {"value", "ci", "n", "higher_is_better"} and m["n"] == 10
    code, res2 = _run(tmp_path, TINY_SUITE)
    assert res2["encoders"]["rnd"]["cache"] == {"hits": 20, "misses": 0}
    assert res2["results"]["rnd"]["sts"]["metrics"] == res["results"]["rnd"]["sts"]["metrics"]


def test_gate_failure_exit_1(tmp_path):
    code, res = _run(tmp_path, TINY_SUITE + "thresholds:\n  - {metric: sts.cosine_spearman, min: 0.99}\n")
    assert code == 1 and res["passed"] is False
    v = res["verdicts"][0]
    assert v == {**v, "encoder": "rnd", "metric": "sts.cosine_spearman", "op": ">=",
                 "threshold": 0.99, "severity": "error", "passed": False}


def test_warn_severity_does_not_fail(tmp_path):
    code, res = _run(tmp_path, TINY_SUITE +
                     "thresholds:\n  - {metric: sts.cosine_spearman, min: 0.99, severity: warn}\n")
    assert code == 0 and res["passed"] is True and res["verdicts"][0]["passed"] is False


def test_failed_encoder_exit_3_others_still_written(tmp_path, capsys):
    suite = TINY_SUITE.replace("  rnd: random?dim=16&seed=0",
                               "  bad: py:helpers:BadEncoder\n  rnd: random?dim=16&seed=0")
    code, res = _run(tmp_path, suite)
    assert code == 3
    assert "encoder 'bad'" in res["encoders"]["bad"]["error"]
    assert "first bad row" in res["encoders"]["bad"]["error"]
    assert res["results"]["rnd"]["sts"]["metrics"]["cosine_spearman"]["value"] is not None
    assert "encoder 'bad'" in capsys.readouterr().err


def test_wrong_row_count_encoder(tmp_path):
    suite = TINY_SUITE.replace("random?dim=16&seed=0", "py:helpers:wrong_rows")
    code, res = _run(tmp_path, suite)
    assert code == 3 and "returned 21 vectors for 20 texts" in res["encoders"]["rnd"]["error"]


def test_encoder_override_and_only(tmp_path):
    code, res = _run(tmp_path, TINY_SUITE, "--encoder", "extra=random?dim=8&seed=5",
                     "--only", "sts")
    assert code == 0 and set(res["encoders"]) == {"rnd", "extra"}
    assert res["encoders"]["extra"]["dim"] == 8


def test_bad_encoder_override_exit_2(tmp_path, capsys):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", TINY_SUITE)
    assert main(["run", str(suite), "--encoder", "nospec"]) == 2
    assert "ID=SPEC" in capsys.readouterr().err


def test_no_cache_flag(tmp_path):
    _run(tmp_path, TINY_SUITE)
    code, res = _run(tmp_path, TINY_SUITE, "--no-cache")
    assert res["encoders"]["rnd"]["cache"]["misses"] == 20


def test_digest_ending_in_nul_bytes_is_found(tmp_path):
    """Keys are raw bytes: a sha256 ending in 0x00 (1 text in 256) must still hit."""
    cache = EmbeddingCache(tmp_path)
    keys = [bytes(31) + b"\x00", b"\x01" * 30 + b"\x00\x00", b"\x02" * 32]
    vecs = np.arange(6, dtype=np.float32).reshape(3, 2)
    cache.store("fp", "any", keys, vecs)
    for _ in range(9):  # force a compaction too
        cache.store("fp", "any", [b"\x03" * 32], np.zeros((1, 2), np.float32))
    mask, found = cache.lookup("fp", "any", keys)
    assert mask.all()
    np.testing.assert_array_equal(found, vecs)
