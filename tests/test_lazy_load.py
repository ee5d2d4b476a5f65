"""A run served from the cache loads no model: token counts and max_seq_length come from
the cache, the model is loaded only for misses (or the latency check's timer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalharness.cli import main
from evalharness.embeddings.cache import EmbeddingCache
from evalharness.embeddings.facts import EncoderFacts, LazyLoad
from evalharness.encoders.base import count_tokens
from evalharness.encoders.batching import memo_counts, model_lengths
from evalharness.encoders.sentence_transformer import SentenceTransformerEncoder

from helpers import STS_ROWS, make_sts, write_jsonl, write_suite

TOPICS = {0: ["The match ended in a draw after extra time and penalties were not needed.",
              "The striker scored twice.", "Fans cheered as the home team won the cup final.",
              "Coach praised defence."],
          1: ["Shares of the chip maker rose after quarterly earnings beat every forecast.",
              "Markets fell.", "The central bank held interest rates steady again.",
              "Oil prices climbed sharply on supply fears in the region today."]}

SUITE = """\
suite: lazy
seed: 3
bootstrap: 20
encoders:
  minilm: minilm?max_seq_length=12
  small: {base: minilm, truncate_dim: 64}
tasks:
  sts: {type: sts, dataset: tinysts}
  clus: {type: clustering, dataset: topics, n_seeds: 2}
"""


def _run(tmp_path, name):
    data = tmp_path / "data"
    make_sts(data)
    write_jsonl(data / "topics" / "test.jsonl",
                [{"text": t, "label": lab} for lab, ts in TOPICS.items() for t in ts])
    suite = write_suite(tmp_path / "s.yaml", SUITE)
    code = main(["run", str(suite), "--data-dir", str(data), "-o", str(tmp_path / name),
                 "--cache-dir", str(tmp_path / "cache")])
    return code, json.loads((tmp_path / name / "results.json").read_text())


def test_warm_run_loads_no_model_and_gives_the_same_results(tmp_path, monkeypatch):
    code, cold = _run(tmp_path, "cold")
    assert code == 0
    assert cold["encoders"]["minilm"]["seconds"]["load"] > 0
    frac = cold["results"]["minilm"]["clus"]["metrics"]["truncated_fraction"]["value"]
    texts = [t for ts in TOPICS.values() for t in ts]
    enc = SentenceTransformerEncoder("m", "minilm", SentenceTransformerEncoder.Options())
    enc.load()
    expected = np.mean(count_tokens(enc.model.tokenizer, texts, 12) > 12)
    assert 0 < frac < 1 and frac == pytest.approx(expected)

    def no_load(self):
        raise AssertionError("a warm run must not load the model")

    monkeypatch.setattr(SentenceTransformerEncoder, "load", no_load)
    code, warm = _run(tmp_path, "warm")
    assert code == 0
    for eid in ("minilm", "small"):
        assert warm["encoders"][eid]["cache"]["misses"] == 0
        assert warm["encoders"][eid]["seconds"]["load"] == 0
        assert warm["encoders"][eid]["fingerprint"] == cold["encoders"][eid]["fingerprint"]
        assert warm["encoders"][eid]["dim"] == cold["encoders"][eid]["dim"]
        for cid in ("sts", "clus"):
            assert warm["results"][eid][cid]["metrics"] == cold["results"][eid][cid]["metrics"]
    assert warm["results"]["minilm"]["clus"]["details"]["max_seq_length"] == 12
    # model facts: from the model on the cold run, from the cache on the warm one
    facts = cold["encoders"]["minilm"]["model"]
    assert facts["parameters"] == sum(p.numel() for p in enc.model.parameters())
    assert facts["max_tokens"] == 12 and facts["dim"] == 384 and facts["dtype"] == "float32"
    n_long = int((count_tokens(enc.model.tokenizer, sorted(set(
        texts + [t for r in STS_ROWS for t in r[:2]])), 12) > 12).sum())
    assert facts["truncated"] == n_long
    assert warm["encoders"]["minilm"]["model"] == facts


class _FakeTokenized:
    """An encoder with token counts = words + 2 and a load counter."""

    effective_max_seq_length = 5

    def __init__(self):
        self.loads = 0
        self.calls = []

    def load(self):
        self.loads += 1

    def token_lengths(self, texts):
        self.calls.append(list(texts))
        return np.array([len(t.split()) + 2 for t in texts])


def test_facts_answer_from_the_cache_after_one_computation(tmp_path):
    cache = EmbeddingCache(tmp_path)
    enc = _FakeTokenized()
    facts = EncoderFacts(enc, "fp", cache, LazyLoad(enc))
    texts = ["a b c", "a", "a b c", "x y z w"]
    np.testing.assert_array_equal(facts.token_lengths(texts), [5, 3, 5, 6])
    assert enc.calls == [["a b c", "a", "x y z w"]]  # duplicates counted once
    assert facts.max_seq_length() == 5 and cache.meta("fp") == {"max_seq_length": 5}

    enc2 = _FakeTokenized()
    facts2 = EncoderFacts(enc2, "fp", cache, LazyLoad(enc2))
    np.testing.assert_array_equal(facts2.token_lengths(["x y z w", "a"]), [6, 3])
    assert facts2.max_seq_length() == 5
    assert enc2.loads == 0 and enc2.calls == []
    np.testing.assert_array_equal(facts2.token_lengths(["new text", "a"]), [4, 3])
    assert enc2.loads == 1 and enc2.calls == [["new text"]]


def test_facts_without_a_cache_ask_the_encoder():
    enc = _FakeTokenized()
    facts = EncoderFacts(enc, "fp", None, LazyLoad(enc))
    np.testing.assert_array_equal(facts.token_lengths(["a b"]), [4])
    assert facts.max_seq_length() == 5 and enc.loads == 1


def test_memo_counts_equal_count_tokens(minilm):
    tok = minilm.model.tokenizer
    texts = ["short", "a somewhat longer sentence with more words in it", "short", "x " * 400]
    memo: dict = {}
    lengths = model_lengths(tok, texts[:2], 256, memo)
    np.testing.assert_array_equal(lengths, np.minimum(count_tokens(tok, texts[:2], 256), 256))
    assert set(memo) == set(texts[:2])
    np.testing.assert_array_equal(memo_counts(tok, texts, 256, memo),
                                  count_tokens(tok, texts, 256))
