"""Faults around the embedding cache: kill -9 while writing (and while encoding), two
processes writing one cache at once, two runs of one suite at once, a damaged shard under
a real run. Processes are real subprocesses; nothing here depends on timing to pass."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from evalharness.cache_admin import verify
from evalharness.embeddings.cache import EmbeddingCache, collect_garbage, segment_paths

from helpers import TINY_SUITE, make_sts, write_suite

REPO = Path(__file__).resolve().parents[1]
UNIVERSE = 4000
DIM = 48

WRITER = textwrap.dedent(f"""
    import sys
    import numpy as np
    from evalharness.embeddings.cache import EmbeddingCache

    root, seed, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    keys = np.random.default_rng(123).integers(0, 256, ({UNIVERSE}, 32), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    cache = EmbeddingCache(root)
    done = []
    for r in range(rounds):
        idx = rng.choice({UNIVERSE}, size=int(rng.integers(1, 400)), replace=False)
        vecs = np.repeat(keys[idx, :1].astype(np.float32), {DIM}, axis=1) + \\
            keys[idx, 1:2].astype(np.float32) / 256
        cache.store("fp", "any", keys[idx], vecs)
        done.extend(idx.tolist())
        print(r, flush=True)
    print("DONE " + " ".join(map(str, sorted(set(done)))), flush=True)
""")


def _universe():
    keys = np.random.default_rng(123).integers(0, 256, (UNIVERSE, 32), dtype=np.uint8)
    vecs = np.repeat(keys[:, :1].astype(np.float32), DIM, axis=1) + \
        keys[:, 1:2].astype(np.float32) / 256
    return keys, vecs


def _env():
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "HF_HUB_OFFLINE": "1"}


def _writer(tmp_path, root, seed, rounds):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    return subprocess.Popen([sys.executable, str(script), str(root), str(seed), str(rounds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


def _check_consistent(root):
    """Every vector the cache serves is the right one; verify finds nothing damaged."""
    keys, vecs = _universe()
    mask, found = EmbeddingCache(root).lookup("fp", "any", keys)
    np.testing.assert_array_equal(found, vecs[mask])
    rep = verify(root)
    assert rep["ok"], rep["damaged"]
    return mask


def test_kill_9_during_writes_leaves_a_consistent_cache(tmp_path):
    root = tmp_path / "cache"
    rng = np.random.default_rng(0)
    for trial in range(6):
        proc = _writer(tmp_path, root, trial, 10**6)
        first = proc.stdout.readline()  # it has stored at least once
        assert first.strip() == "0", proc.stderr.read()
        time.sleep(float(rng.uniform(0.0, 0.6)))  # then anywhere: a store, a compaction
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        mask = _check_consistent(root)
        assert mask.any()
    # no half-written file is a shard: the manifests name only complete files
    role = root / "v2" / "fp" / "any"
    for m in segment_paths(role):
        info = json.loads(m.read_text())
        for f in info["files"]:
            assert (role / "data" / f"{f['id']}.npy").stat().st_size >= 128 + f["rows"] * 4 * DIM
    # what the kills left (temporary files, unreferenced files) is garbage, and only that
    collect_garbage(role, age=0)
    assert not list(role.rglob("*.tmp"))
    after = _check_consistent(root)
    np.testing.assert_array_equal(after, mask)
    # and the cache goes on working
    proc = _writer(tmp_path, root, 99, 5)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _check_consistent(root)


def test_two_processes_store_into_one_cache(tmp_path):
    root = tmp_path / "cache"
    procs = [_writer(tmp_path, root, seed, 60) for seed in (1, 2)]
    stored = set()
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        stored |= {int(x) for x in out.strip().splitlines()[-1].split()[1:]}
    mask = _check_consistent(root)
    assert set(np.flatnonzero(mask).tolist()) == stored  # no shard lost
    assert len(segment_paths(root / "v2" / "fp" / "any")) < 40  # compaction went on


RESUME = textwrap.dedent("""
    import sys, time
    import numpy as np
    from evalharness.embeddings import planner
    from evalharness.embeddings.cache import EmbeddingCache
    from evalharness.encoders.pool import build_encoder
    from evalharness.encoders.spec import parse_spec_string

    planner.FLUSH_SECONDS = 0.0   # every block is written as it finishes

    class Slow:
        name = "slow"
        def encode_blocks(self, encoder, texts, *, role, block_size):
            for s in range(0, len(texts), 50):
                yield s, min(s + 50, len(texts)), encoder.encode(texts[s:s + 50], role=role)
                print(s, flush=True)
                time.sleep(0.05)
        def describe(self):
            return {}

    enc = build_encoder(parse_spec_string("r", "random?dim=16&seed=7"))
    texts = [f"document {i}" for i in range(int(sys.argv[2]))]
    planner.embed(enc, {"document": texts}, EmbeddingCache(sys.argv[1]), engine=Slow())
    print("DONE", flush=True)
""")


def _resume_after_blocks(tmp_path, root, blocks: int) -> subprocess.Popen:
    """The RESUME script embedding 5,000 texts into ``root``, once it has encoded
    ``blocks`` blocks (it prints a line per block)."""
    script = tmp_path / "resume.py"
    script.write_text(RESUME)
    proc = subprocess.Popen([sys.executable, str(script), str(root), "5000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    for _ in range(blocks):
        assert proc.stdout.readline(), proc.stderr.read()
    return proc


def test_kill_9_while_encoding_then_rerun_resumes_with_identical_vectors(tmp_path):
    from evalharness.embeddings.planner import embed
    from evalharness.encoders.pool import build_encoder
    from evalharness.encoders.spec import parse_spec_string

    root = tmp_path / "cache"
    proc = _resume_after_blocks(tmp_path, root, 5)  # five blocks encoded
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    enc = build_encoder(parse_spec_string("r", "random?dim=16&seed=7"))
    texts = [f"document {i}" for i in range(5000)]
    vectors, stats = embed(enc, {"document": texts}, EmbeddingCache(root))
    assert stats.hits >= 250 and stats.hits + stats.misses == 5000 and stats.damaged == 0
    np.testing.assert_array_equal(vectors.get("document", texts),
                                  enc.encode(texts, role="document"))


def _cli(tmp_path, suite, out, cache):
    return subprocess.Popen([sys.executable, "-m", "evalharness.cli", "run", str(suite),
                             "--data-dir", str(tmp_path / "data"), "-o", str(out),
                             "--cache-dir", str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), cwd=tmp_path)


def _metrics(out):
    """The numbers of a run (every metric of every task), and its encoder records."""
    res = json.loads((out / "results.json").read_text())
    numbers = {eid: {cid: r["metrics"] for cid, r in comps.items()}
               for eid, comps in res["results"].items()}
    assert all(m for comps in numbers.values() for m in comps.values())
    return numbers, res["encoders"]


def _retrieval_suite(tmp_path, n_docs=3000):
    from evalharness.bench.scale import make_corpus

    make_corpus(tmp_path / "data" / "synth", n_docs, 40, seed=1)
    return write_suite(tmp_path / "r.yaml", TINY_SUITE.replace("tasks:\n", (
        "tasks:\n  ret: {type: retrieval, dataset: synth}\n")))


def test_two_runs_at_once_on_one_cache_complete_with_identical_numbers(tmp_path):
    make_sts(tmp_path / "data")
    suite = _retrieval_suite(tmp_path)
    cache = tmp_path / "cache"
    procs = [_cli(tmp_path, suite, tmp_path / f"out{i}", cache) for i in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    (r0, e0), (r1, e1) = _metrics(tmp_path / "out0"), _metrics(tmp_path / "out1")
    assert r0 == r1
    assert e0["rnd"]["cache"]["hits"] + e0["rnd"]["cache"]["misses"] == 3060
    p = _cli(tmp_path, suite, tmp_path / "out2", cache)  # warm: all from the cache
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    r2, e2 = _metrics(tmp_path / "out2")
    assert r2 == r0 and e2["rnd"]["cache"] == {"hits": 3060, "misses": 0}
    assert verify(cache)["ok"]


def test_damaged_shard_under_a_real_run_is_reencoded_with_identical_numbers(tmp_path):
    """Issue 20: bytes changed in a cache shard made the run die (BadZipFile, exit 3)."""
    from evalharness.cli import main

    make_sts(tmp_path / "data")
    suite = _retrieval_suite(tmp_path, 500)
    args = ["run", str(suite), "--data-dir", str(tmp_path / "data"), "--cache-dir",
            str(tmp_path / "cache")]
    assert main(args + ["-o", str(tmp_path / "a")]) == 0
    first, _ = _metrics(tmp_path / "a")
    shards = sorted((tmp_path / "cache" / "v2").rglob("data/*.npy"))
    assert shards
    for shard in shards:
        data = bytearray(shard.read_bytes())
        data[-5] ^= 0x55
        shard.write_bytes(bytes(data))
    assert main(args + ["-o", str(tmp_path / "b")]) == 0
    second, enc = _metrics(tmp_path / "b")
    assert second == first
    assert enc["rnd"]["cache"]["misses"] > 0  # re-encoded, not served
    assert main(args + ["-o", str(tmp_path / "c")]) == 0
    third, enc = _metrics(tmp_path / "c")
    assert third == first and enc["rnd"]["cache"]["misses"] == 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigint_while_encoding_keeps_the_cache_consistent(tmp_path):
    root = tmp_path / "cache"
    proc = _resume_after_blocks(tmp_path, root, 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert verify(root)["ok"]
    from evalharness.embeddings.cache import text_digest

    fp = next((root / "v2").iterdir()).name
    mask, _ = EmbeddingCache(root).lookup(fp, "any", [text_digest(f"document {i}")
                                                      for i in range(5000)])
    assert mask.sum() >= 150  # the blocks finished before Ctrl-C were written
