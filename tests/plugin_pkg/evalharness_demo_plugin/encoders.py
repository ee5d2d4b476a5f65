"""An encoder: counts of the letters a-z in each text (26 dimensions)."""

from __future__ import annotations

import numpy as np

from evalharness.encoders.base import BaseOptions, EncoderBase, fingerprint_of

LETTERS = "abcdefghijklmnopqrstuvwxyz"


class LetterCountOptions(BaseOptions):
    lowercase: bool = True


class LetterCountEncoder(EncoderBase):
    Options = LetterCountOptions

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self._dim = len(LETTERS)

    def fingerprint(self) -> str:
        o = self.options
        return fingerprint_of("demo-letters", 1, o.lowercase, o.query_prefix,
                              o.document_prefix, o.text_prefix)

    def encode(self, texts, *, role):
        out = np.zeros((len(texts), len(LETTERS)), dtype=np.float32)
        for i, t in enumerate(self.with_prefix(list(texts), role)):
            t = t.lower() if self.options.lowercase else t
            for j, ch in enumerate(LETTERS):
                out[i, j] = t.count(ch)
        return out
