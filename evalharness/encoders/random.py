"""Random baseline: a fixed Gaussian vector per distinct text (``random?dim=384&seed=0``)."""

from __future__ import annotations

import hashlib
from typing import Annotated

import numpy as np
from pydantic import BeforeValidator, Field

from evalharness.encoders.base import BaseOptions, EncoderBase, fingerprint_of


# Beyond this a "dimension" is a typo (dim=1e11 would need 400 GB per 1000 texts).
MAX_DIM = 65_536


def check_dim(value):
    """Pydantic before-validator of a ``dim`` option: reject sizes above ``MAX_DIM``
    (also when written as text, e.g. ``1e11`` from YAML) with one clear message."""
    try:
        number = float(value) if isinstance(value, (int, float, str)) \
            and not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is not None and number > MAX_DIM:
        raise ValueError(f"must be at most {MAX_DIM:,} dimensions")
    return value


class RandomOptions(BaseOptions):
    dim: Annotated[int, BeforeValidator(check_dim)] = Field(384, ge=1)
    seed: int = 0


class RandomEncoder(EncoderBase):
    """Same text -> same vector (seeded by seed and the text's hash), so it is a real
    chance-level floor for every metric rather than noise that changes per call."""

    Options = RandomOptions

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self._dim = options.dim

    def fingerprint(self) -> str:
        o = self.options
        return fingerprint_of("random", 1, o.dim, o.seed, o.query_prefix, o.document_prefix,
                              o.text_prefix)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        out = np.empty((len(texts), self.options.dim), dtype=np.float32)
        for i, t in enumerate(self.with_prefix(texts, role)):
            digest = hashlib.sha256(f"{self.options.seed}\0{t}".encode("utf-8")).digest()
            rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
            out[i] = rng.standard_normal(self.options.dim, dtype=np.float32)
        return out
