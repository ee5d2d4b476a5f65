"""Shared fixtures: the real data (skipped when absent), the embedded MiniLM loaded once
per session, and a test embedding cache so every text is encoded at most once per CI run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = (REPO / ".." / "shared" / "datasets").resolve()
TEST_CACHE = Path(os.environ.get("EVALHARNESS_TEST_CACHE", REPO / ".cache" / "test-embeddings"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "stsb" / "test.jsonl").exists():
        pytest.skip("../shared/datasets is not present")
    return SHARED


@pytest.fixture(scope="session")
def minilm():
    """The embedded all-MiniLM-L6-v2 (fp32), loaded once."""
    from evalharness.encoders.pool import build_encoder
    from evalharness.encoders.spec import parse_spec_string

    enc = build_encoder(parse_spec_string("minilm", "minilm"))
    enc.load()
    return enc


@pytest.fixture(scope="session")
def test_cache():
    from evalharness.embeddings.cache import EmbeddingCache

    TEST_CACHE.mkdir(parents=True, exist_ok=True)
    return EmbeddingCache(TEST_CACHE)


@pytest.fixture(scope="session")
def minilm_embed(minilm, test_cache):
    """embed(texts, role="text") -> float32 (n, 384) MiniLM vectors, cached on disk."""
    from evalharness.embeddings.planner import embed

    def _embed(texts, role: str = "text") -> np.ndarray:
        texts = list(texts)
        vectors, _ = embed(minilm, {role: texts}, test_cache)
        return vectors.get(role, texts)

    return _embed


@pytest.fixture
def tmp_cache(tmp_path):
    from evalharness.embeddings.cache import EmbeddingCache

    return EmbeddingCache(tmp_path / "cache")
