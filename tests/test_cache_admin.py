"""``evalharness cache info|verify|prune`` (cache_admin.py)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from evalharness import cache_admin
from evalharness.cli import main
from evalharness.embeddings.cache import GARBAGE_AGE, EmbeddingCache
from evalharness.errors import UserError


def _fill(root, fp, n=20, dim=4, role="any", seed=0):
    keys = np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)
    cache = EmbeddingCache(root)
    for s in range(0, n, 5):
        cache.store(fp, role, keys[s:s + 5], np.full((len(keys[s:s + 5]), dim), s, np.float32))
    return keys


def _age(path, days):
    t = time.time() - days * 86400
    os.utime(path, (t, t))


def test_info_counts_fingerprints_vectors_and_the_v1_folder(tmp_path, capsys):
    _fill(tmp_path, "aaaa1111", 20)
    _fill(tmp_path, "bbbb2222", 10, dim=8, role="query")
    (tmp_path / "v1" / "old").mkdir(parents=True)
    (tmp_path / "v1" / "old" / "x.npz").write_bytes(b"0" * 1000)
    rep = cache_admin.info(tmp_path)
    fps = {f["fingerprint"]: f for f in rep["fingerprints"]}
    assert set(fps) == {"aaaa1111", "bbbb2222"} and rep["vectors"] == 30
    assert fps["aaaa1111"]["roles"]["any"]["vectors"] == 20
    assert fps["bbbb2222"]["roles"]["query"]["dim"] == [8]
    assert rep["data_files"] == 4 + 2 and rep["damaged"] == 0
    assert rep["legacy"]["fingerprints"] == 1 and rep["legacy"]["bytes"] == 1000
    assert rep["bytes"] >= 20 * 4 * 4 + 10 * 8 * 4 + 1000
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "aaaa1111" in out and "2 fingerprint(s)" in out and "legacy v1" in out
    assert main(["cache", "info", "--cache-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["vectors"] == 30
    assert cache_admin.info(tmp_path / "none")["exists"] is False


def test_info_tells_token_ids_from_vectors(tmp_path, capsys):
    _fill(tmp_path, "aaaa1111", 20)
    fp = "tokens-" + "c" * 32  # the token path's fingerprints (encoders/token_path.py)
    _fill(tmp_path, fp, 10, dim=17, role="w16")
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "20 vectors (and the token ids of 10 texts)" in out
    line = next(row for row in out.splitlines() if fp in row)
    assert "token ids of 10 texts: w16(17)" in line
    header = next(row for row in out.splitlines() if "last used" in row)
    assert header.index("last used") == line.index(fp) + len(fp) + 3  # columns line up


def test_verify_finds_and_sets_aside_damage(tmp_path, capsys):
    keys = _fill(tmp_path, "fp", 20)
    assert main(["cache", "verify", "--cache-dir", str(tmp_path)]) == 0
    assert "ok" in capsys.readouterr().out
    # the data file of the second store (keys 5..9, vectors of 5.0)
    shard = next(p for p in (tmp_path / "v2" / "fp" / "any" / "data").glob("*.npy")
                 if np.load(p)[0, 0] == 5)
    raw = bytearray(shard.read_bytes())
    raw[-3] ^= 1
    shard.write_bytes(bytes(raw))
    assert main(["cache", "verify", "--cache-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED" in out and shard.name in out and "block 0 checksum" in out
    assert shard.with_name(shard.name + ".damaged").exists()
    assert cache_admin.verify(tmp_path)["ok"]  # set aside and repaired: sound again
    mask, found = EmbeddingCache(tmp_path).lookup("fp", "any", keys)
    assert mask.sum() == 15 and not mask[5:10].any()  # the damaged shard's 5: misses
    assert cache_admin.info(tmp_path)["damaged"] == 1


def test_prune_by_fingerprint_age_legacy_and_garbage(tmp_path, capsys):
    _fill(tmp_path, "aaaa1111", 10)
    _fill(tmp_path, "aaab2222", 10)
    _fill(tmp_path, "cccc3333", 10)
    (tmp_path / "v1" / "aaaa1111").mkdir(parents=True)
    (tmp_path / "v1" / "aaaa1111" / "meta.json").write_text("{}")
    with pytest.raises(UserError, match="matches 2"):
        cache_admin.prune(tmp_path, fingerprint="aaa")
    with pytest.raises(UserError, match="no fingerprint"):
        cache_admin.prune(tmp_path, fingerprint="zzz")
    assert main(["cache", "prune", "--cache-dir", str(tmp_path), "--fingerprint", "zzz"]) == 2
    capsys.readouterr()
    # dry run: nothing goes
    rep = cache_admin.prune(tmp_path, fingerprint="aaaa", dry_run=True)
    assert rep["removed"] == ["aaaa1111"] and (tmp_path / "v2" / "aaaa1111").exists()
    rep = cache_admin.prune(tmp_path, fingerprint="aaaa")
    assert rep["removed"] == ["aaaa1111"] and rep["bytes_freed"] > 0
    assert not (tmp_path / "v2" / "aaaa1111").exists()
    assert not (tmp_path / "v1" / "aaaa1111").exists()  # its v1 folder too
    # by age of last use
    _age(tmp_path / "v2" / "cccc3333" / "used", 40)
    assert main(["cache", "prune", "--cache-dir", str(tmp_path), "--older-than", "30"]) == 0
    assert "removed 1 fingerprint" in capsys.readouterr().out
    assert [f["fingerprint"] for f in cache_admin.info(tmp_path)["fingerprints"]] == ["aaab2222"]
    # a run using it makes it recent again
    _age(tmp_path / "v2" / "aaab2222" / "used", 40)
    EmbeddingCache(tmp_path).lookup("aaab2222", "any", [bytes(32)])
    assert cache_admin.prune(tmp_path, older_than_days=30)["removed"] == []
    # garbage: a killed writer's temporary file and an unreferenced data file, old enough
    role = tmp_path / "v2" / "aaab2222" / "any"
    tmp = role / "data" / ".x.npy.1234.tmp"
    orphan = role / "data" / "0123456789abcdef.npy"
    young = role / "data" / "fedcba9876543210.npy"
    for p in (tmp, orphan, young):
        p.write_bytes(b"x" * 100)
    _age(tmp, 1)
    _age(orphan, 1)
    assert cache_admin.info(tmp_path)["garbage_bytes"] == 200
    cache_admin.prune(tmp_path)
    assert not tmp.exists() and not orphan.exists()
    assert young.exists()  # may belong to a writer that has not written its index yet
    assert GARBAGE_AGE >= 600
    mask, _ = EmbeddingCache(tmp_path).lookup("aaab2222", "any",
                                              _fill(tmp_path / "x", "fp", 10, seed=0))
    assert mask.all()  # the live data was kept
    # --legacy
    (tmp_path / "v1" / "zz").mkdir(parents=True)
    assert cache_admin.prune(tmp_path, legacy=True)["legacy_removed"]
    assert not (tmp_path / "v1").exists()
    with pytest.raises(UserError):
        cache_admin.prune(tmp_path, older_than_days=-1)
