"""The corpus-scale benchmark (evalharness/bench/scale.py) on a tiny corpus: the synthetic
BEIR folder is valid and unique, and one measured size yields every figure the report
needs. Timings are recorded, never asserted."""

from __future__ import annotations

import json

from evalharness.bench import scale
from evalharness.data.local import load_retrieval


def test_synthetic_corpus_is_unique_valid_and_reused(tmp_path):
    folder = scale.make_corpus(tmp_path / "c", 2000, 30, seed=3)
    data = load_retrieval(folder, "test", "synth")
    assert len(data.corpus_ids) == 2000 and len(set(data.corpus_texts)) == 2000
    assert len(data.query_ids) == 30 and len(set(data.query_texts)) == 30
    assert all(d in set(data.corpus_ids) for rel in data.qrels.values() for d in rel)
    assert all(g in (1, 2) for rel in data.qrels.values() for g in rel.values())
    words = [len(t.split()) for t in data.corpus_texts]
    assert 21 <= min(words) and max(words) <= 61
    stamp = (folder / "corpus.jsonl").stat().st_mtime_ns
    assert scale.make_corpus(tmp_path / "c", 2000, 30, seed=3) == folder
    assert (folder / "corpus.jsonl").stat().st_mtime_ns == stamp  # built once
    scale.make_corpus(tmp_path / "c", 1000, 30, seed=3)
    assert len(load_retrieval(folder, "test", "synth").corpus_ids) == 1000


def test_one_size_measured_end_to_end(tmp_path):
    row = scale.measure_size(600, 20, tmp_path, log=lambda *_: None)
    for side in ("cold", "warm"):
        assert row[side]["exit_code"] == 0, row[side]["stderr_tail"]
        assert row[side]["seconds"] > 0 and row[side]["peak_rss_bytes"] > 10 * 2**20
    assert row["cold"]["cache"] == {"hits": 0, "misses": 620}
    assert row["warm"]["cache"] == {"hits": 620, "misses": 0}
    assert row["cold"]["ndcg_at_10"] == row["warm"]["ndcg_at_10"]
    assert row["cache_bytes"] >= 620 * scale.DIM * 4
    c = row["cache"]
    assert c["all_found"] and c["vectors"] == 600
    assert c["write_mb_per_s"] > 0 and c["lookup_keys_per_s"] > 0
    assert 1.0 <= c["write_amplification"] < 1.2  # vectors written once, index beside them
    report = {"results": [row], "summary": scale.summarize([row])}
    json.dumps(report)
    assert "lookup_keys_per_s" in report["summary"]["figures"]
    assert "docs" in scale.table(report)
