"""Token-budget batching of the torch encoders: the batch rule by hand, the option
defaults, and vectors equal to sentence-transformers' own batching."""

from __future__ import annotations

import numpy as np
import pytest

from evalharness.encoders.base import (CPU_BATCH_SIZE, CPU_BATCH_TOKENS, GPU_BATCH_SIZE,
                                       GPU_BATCH_TOKENS, TorchOptions)
from evalharness.encoders.batching import token_batches


def test_token_batches_by_hand():
    lengths = [3, 10, 10, 2, 7, 1, 1, 1]
    got = [b.tolist() for b in token_batches(lengths, batch_size=3, batch_tokens=20)]
    # longest first, ties in input order; 20 // 10 = 2 texts, then 20 // 7 = 2, 20 // 2 -> 3 (cap)
    assert got == [[1, 2], [4, 0], [3, 5, 6], [7]]


def test_token_batches_properties():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500)
    batches = token_batches(lengths, batch_size=64, batch_tokens=2048)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))  # every text exactly once
    assert (np.diff(lengths[flat]) <= 0).all()  # longest first
    for b in batches:
        assert len(b) <= 64
        assert len(b) * lengths[b].max() <= 2048


def test_token_batches_without_budget_and_oversized_text():
    assert [len(b) for b in token_batches([5] * 10, batch_size=4, batch_tokens=None)] == [4, 4, 2]
    # a text longer than the budget still gets a batch of its own
    assert [b.tolist() for b in token_batches([50, 3], batch_size=8, batch_tokens=16)] == [[0], [1]]
    assert token_batches([], batch_size=8, batch_tokens=16) == []
    with pytest.raises(ValueError, match="'batch_tokens' parameter must be >= 1"):
        token_batches([1], batch_size=8, batch_tokens=0)


def test_torch_option_defaults():
    cpu = TorchOptions()
    assert (cpu.batch_size, cpu.batch_tokens) == (CPU_BATCH_SIZE, CPU_BATCH_TOKENS)
    gpu = TorchOptions(device="cuda")
    assert (gpu.batch_size, gpu.batch_tokens) == (GPU_BATCH_SIZE, GPU_BATCH_TOKENS)
    assert TorchOptions(batch_tokens=None).batch_tokens is None  # explicit null: no budget
    assert TorchOptions(batch_size=16).batch_tokens == CPU_BATCH_TOKENS


def test_latency_timer_lifts_the_token_budget():
    from evalharness.checks.latency import make_timer

    class Enc:
        options = TorchOptions()
        seen = []

        def encode(self, texts, *, role):
            self.seen.append((self.options.batch_size, self.options.batch_tokens))
            return np.ones((len(texts), 2), dtype=np.float32)

    e = Enc()
    make_timer(e)(["a"] * 100)
    assert e.seen == [(100, None)]
    assert e.options.batch_tokens == CPU_BATCH_TOKENS


def test_minilm_token_batches_equal_sentence_transformers(minilm):
    """Mixed lengths (empty, one word, truncated at 256 tokens): the budgeted batches give
    sentence-transformers' vectors to float rounding."""
    texts = ["", "a", "A much longer sentence " * 80, "The cat sat on the mat."] + \
        [f"sentence number {i} " + "word " * (i % 37) for i in range(60)]
    ours = minilm.encode(texts, role="text")
    ref = minilm.model.encode(texts, batch_size=1, convert_to_numpy=True,
                              show_progress_bar=False)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    small = minilm.options.model_copy(update={"batch_tokens": 64, "batch_size": 3})
    orig, minilm.options = minilm.options, small
    try:
        np.testing.assert_allclose(minilm.encode(texts, role="text"), ref, atol=1e-5)
    finally:
        minilm.options = orig
    assert minilm.encode([], role="text").shape == (0, 384)
