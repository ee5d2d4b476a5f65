"""Small builders for tests: tiny dataset folders and suite files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

STS_ROWS = [
    ("A man is playing a guitar.", "A man plays the guitar.", 4.8),
    ("A woman is slicing an onion.", "A woman cuts an onion.", 4.2),
    ("A dog runs in the park.", "A cat sleeps on the sofa.", 0.6),
    ("Kids are playing football.", "Children play soccer outside.", 3.9),
    ("The stock market fell today.", "Shares dropped sharply.", 3.1),
    ("A plane is taking off.", "An airplane departs.", 4.5),
    ("He is reading a book.", "The weather is sunny.", 0.2),
    ("Two men are fighting.", "Two men are boxing.", 3.3),
    ("A bird is flying.", "A bird soars in the sky.", 4.0),
    ("The car is red.", "The apple is green.", 0.4),
]


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(r if isinstance(r, str) else json.dumps(r))
            fh.write("\n")
    return path


def make_sts(root: Path, name: str = "tinysts", rows=STS_ROWS) -> Path:
    write_jsonl(root / name / "test.jsonl",
                [{"sentence1": a, "sentence2": b, "score": s} for a, b, s in rows])
    return root / name


def write_suite(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


TINY_SUITE = """\
suite: tiny
seed: 1
bootstrap: 50
encoders:
  rnd: random?dim=16&seed=0
tasks:
  sts: {type: sts, dataset: tinysts}
"""


class BadEncoder:
    """py: encoder that returns NaN on the third text."""

    def encode(self, texts):
        out = np.ones((len(texts), 4), dtype=np.float32)
        out[:, 0] = np.arange(len(texts))
        if len(texts) > 2:
            out[2, 1] = np.nan
        return out


def wrong_rows(texts):
    return np.ones((len(texts) + 1, 4), dtype=np.float32)


def good_fn(texts, role="text"):
    rng = np.random.default_rng(0)
    return rng.standard_normal((len(texts), 8)).astype(np.float32) + \
        np.array([len(t) for t in texts], dtype=np.float32)[:, None]


class NanOnFour:
    """py: encoder that returns NaN for any text containing the digit 4."""

    def encode(self, texts):
        out = np.ones((len(texts), 4), dtype=np.float32)
        for i, t in enumerate(texts):
            if "4" in t:
                out[i, 0] = np.nan
        return out
