"""Test encoders for tests/test_faults.py, imported by ``py:fault_encoders:...`` specs in
subprocess runs (tests/ is put on PYTHONPATH).

``slow_encode`` sleeps ``FAULT_SLEEP`` seconds per call (default 0.25) and appends one line
per call to the file ``FAULT_MARKER`` (when set), written before it returns: once the
marker has n lines, the blocks of the first n - 1 calls have been handed back to the
embed stage. Vectors are a fixed function of the text, so every run gives the same numbers.

The embed stage writes encoded vectors to the cache in groups, at least every
``planner.FLUSH_SECONDS`` (10 s): a kill -9 loses at most that much encoding. With
``FAULT_FLUSH_SECONDS`` set, importing this module (which the run does when it loads the
encoder, before encoding) lowers that interval, so a test can kill a run after a few
blocks instead of waiting 10 s.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

DIM = 16

if os.environ.get("FAULT_FLUSH_SECONDS"):
    from evalharness.embeddings import planner

    assert hasattr(planner, "FLUSH_SECONDS")
    planner.FLUSH_SECONDS = float(os.environ["FAULT_FLUSH_SECONDS"])


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def slow_encode(texts: list[str]) -> np.ndarray:
    time.sleep(float(os.environ.get("FAULT_SLEEP", "0.25")))
    out = np.stack([vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)
    marker = os.environ.get("FAULT_MARKER")
    if marker:
        with open(marker, "a", encoding="utf-8") as fh:
            fh.write(f"{len(texts)}\n")
    return out
