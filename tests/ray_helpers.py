"""Encoders for tests/test_ray_engine.py, imported by Ray workers (``py:ray_helpers:...``;
the test session's Ray puts tests/ on the workers' PYTHONPATH)."""

from __future__ import annotations

import hashlib
import os

import numpy as np

MARKER_ENV = "EVALHARNESS_TEST_EXIT_MARKER"  # set on the workers only, never the driver
TRIGGER = "this text kills the worker that encodes it, once"


def hashed_vectors(texts, dim: int = 16) -> np.ndarray:
    out = np.empty((len(texts), dim), dtype=np.float32)
    for i, t in enumerate(texts):
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        out[i] = np.random.default_rng(seed).standard_normal(dim, dtype=np.float32)
    return out


class ExitOnce:
    """Deterministic vectors per text. The first worker that encodes ``TRIGGER`` while
    the marker file exists removes the file and dies at once (``os._exit(1)``, as a
    killed or OOM-killed process would), half-way through its batch; retries find no
    marker and succeed."""

    def encode(self, texts):
        first = hashed_vectors(texts[: len(texts) // 2])
        marker = os.environ.get(MARKER_ENV)
        if marker and TRIGGER in texts:
            try:
                os.unlink(marker)  # atomic: exactly one process wins
            except FileNotFoundError:
                pass
            else:
                os._exit(1)
        return np.vstack([first, hashed_vectors(texts[len(texts) // 2:])])
