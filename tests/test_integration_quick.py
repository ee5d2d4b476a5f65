"""The README's main job on real data: suites/quick.yaml with the embedded MiniLM and the
TF-IDF/LSA baseline, reproducing MTEB's numbers, and a warm re-run that encodes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evalharness.cli import main

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]


def test_quick_suite_end_to_end(shared_data, tmp_path, test_cache, capsys):
    args = ["run", str(REPO / "suites" / "quick.yaml"), "--data-dir", str(shared_data),
            "--cache-dir", str(test_cache.root)]
    assert main(args + ["-o", str(tmp_path / "run1")]) == 0
    res = json.loads((tmp_path / "run1" / "results.json").read_text())
    mini = res["results"]["minilm"]
    # MTEB's published STS-B test value for all-MiniLM-L6-v2 is 0.82032; SICK-R on this
    # 4,927-pair test split with mteb's evaluator is 0.7715
    assert mini["stsb"]["metrics"]["cosine_spearman"]["value"] == pytest.approx(0.8203, abs=5e-4)
    assert mini["sick"]["metrics"]["cosine_spearman"]["value"] == pytest.approx(0.7715, abs=5e-4)
    lo, hi = mini["stsb"]["metrics"]["cosine_spearman"]["ci"]
    assert lo < 0.8203 < hi
    lsa = res["results"]["lsa"]["stsb"]["metrics"]["cosine_spearman"]["value"]
    assert 0.3 < lsa < mini["stsb"]["metrics"]["cosine_spearman"]["value"]
    assert res["datasets"]["stsb"]["rows"] == 1379 and res["datasets"]["sick"]["rows"] == 4927
    assert res["passed"] is True

    # warm re-run: nothing is encoded again, every metric identical
    assert main(args + ["-o", str(tmp_path / "run2")]) == 0
    res2 = json.loads((tmp_path / "run2" / "results.json").read_text())
    for enc in ("minilm", "lsa"):
        assert res2["encoders"][enc]["cache"]["misses"] == 0
        assert res2["encoders"][enc]["cache"]["hits"] == 7559
        assert res2["encoders"][enc]["fingerprint"] == res["encoders"][enc]["fingerprint"]
    assert res2["results"]["minilm"]["stsb"]["metrics"] == mini["stsb"]["metrics"]
    out = capsys.readouterr().out
    assert "cosine_spearman" in out and "verdict: PASSED" in out
