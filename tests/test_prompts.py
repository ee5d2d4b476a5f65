"""Task prompts replace the encoder's prefixes for that task, are part of the cache key
and are recorded in results.json."""

from __future__ import annotations

import json

from evalharness.cli import main
from helpers import STS_ROWS, make_sts, write_suite

SUITE = """
suite: prompts
bootstrap: 20
encoders:
  r: random?dim=16&seed=2&text_prefix=passage:%20
  q: random?dim=16&seed=2&text_prefix=query:%20
tasks:
  plain: {type: sts, dataset: tinysts}
  asked: {type: sts, dataset: tinysts, prompt: "query: "}
  other: {type: sts, dataset: tinysts, prompt: "search: "}
"""


def _run(tmp_path, name):
    make_sts(tmp_path / "data")
    write_suite(tmp_path / "s.yaml", SUITE)
    code = main(["run", str(tmp_path / "s.yaml"), "--data-dir", str(tmp_path / "data"),
                 "-o", str(tmp_path / name), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0
    return json.loads((tmp_path / name / "results.json").read_text())


def _value(res, enc, task):
    return res["results"][enc][task]["metrics"]["cosine_spearman"]["value"]


def test_task_prompt_replaces_the_encoder_prefix(tmp_path):
    res = _run(tmp_path, "cold")
    # r with prompt "query: " embeds exactly what q embeds with its own prefix
    assert _value(res, "r", "asked") == _value(res, "q", "plain")
    assert _value(res, "q", "asked") == _value(res, "q", "plain")
    assert _value(res, "r", "plain") != _value(res, "r", "asked")
    assert _value(res, "r", "other") not in (_value(res, "r", "asked"), _value(res, "r", "plain"))
    assert res["results"]["r"]["asked"]["details"]["prompts"] == {
        "text": "query: ", "query": "query: ", "document": "query: "}
    assert res["suite_config"]["components"]["asked"]["prompt"] == "query: "
    assert "prompts" not in res["results"]["r"]["plain"]["details"]


def test_prompted_vectors_are_cached_apart_and_served_warm(tmp_path):
    cold = _run(tmp_path, "cold")
    warm = _run(tmp_path, "warm")
    unique = len({t for row in STS_ROWS for t in row[:2]})
    for enc in ("r", "q"):
        assert warm["encoders"][enc]["cache"]["misses"] == 0
        # the plain texts and two prompted copies: three cache tables of the same texts
        assert cold["encoders"][enc]["cache"]["misses"] == 3 * unique
        for task in ("plain", "asked", "other"):
            assert _value(warm, enc, task) == _value(cold, enc, task)
