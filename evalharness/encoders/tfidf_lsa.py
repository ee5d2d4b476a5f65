"""Lexical baseline: TF-IDF + truncated SVD (LSA), fitted on the texts of the run."""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated

import numpy as np
from pydantic import BeforeValidator, Field

from evalharness.encoders.base import BaseOptions, EncoderBase, fingerprint_of
from evalharness.encoders.random import check_dim

log = logging.getLogger(__name__)


class TfidfLsaOptions(BaseOptions):
    dim: Annotated[int, BeforeValidator(check_dim)] = Field(
        256, ge=1, description="requested dimension; at most (unique texts - 1) and (terms - 1) "
                               "are possible, and the encoder's dim is what was fitted")
    seed: int = 0
    min_df: int = Field(1, ge=1)
    sublinear_tf: bool = True
    ngram_max: int = Field(1, ge=1, le=3)


class TfidfLsaEncoder(EncoderBase):
    """Fitted once per run on the unique texts the suite needs (every role), seeded.

    The fingerprint includes a digest of that fitting corpus, so a run on other texts
    never reuses vectors from a differently fitted model.
    """

    Options = TfidfLsaOptions

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self._corpus: list[str] | None = None
        self._corpus_digest = "unfitted"
        self._pipeline = None
        self.dim_limited: dict | None = None  # set when the texts allow fewer than dim

    def prepare(self, texts: list[str]) -> None:
        corpus = sorted(set(texts))
        h = hashlib.sha256()
        for t in corpus:
            h.update(hashlib.sha256(t.encode("utf-8")).digest())
        self._corpus = corpus
        self._corpus_digest = h.hexdigest()
        self._pipeline = None

    def _fit(self) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        if not self._corpus:
            raise RuntimeError("tfidf-lsa must be prepared with the run's texts before encoding")
        o = self.options
        vec = TfidfVectorizer(min_df=o.min_df, sublinear_tf=o.sublinear_tf,
                              ngram_range=(1, o.ngram_max), dtype=np.float32)
        x = vec.fit_transform(self._corpus)
        n_comp = max(1, min(o.dim, x.shape[1] - 1, x.shape[0] - 1))
        if n_comp < o.dim:
            self.dim_limited = {"requested": o.dim, "effective": n_comp,
                                "texts": x.shape[0], "terms": x.shape[1]}
            log.warning(f"warning: encoder '{self.name}': tfidf-lsa dim={o.dim} is more than "
                        f"{x.shape[0]} texts with {x.shape[1]} distinct terms allow; its "
                        f"vectors have {n_comp} dimensions (results.json records dim "
                        f"{n_comp})")
        svd = TruncatedSVD(n_components=n_comp, random_state=o.seed, algorithm="randomized",
                           n_iter=5)
        svd.fit(x)
        self._pipeline = (vec, svd)
        self._dim = n_comp

    def describe(self) -> dict:
        out = super().describe()
        if self.dim_limited:
            out["dim_requested"] = self.dim_limited["requested"]
        return out

    @property
    def dim(self):
        return self._dim or self.options.dim

    def fingerprint(self) -> str:
        o = self.options
        return fingerprint_of("tfidf-lsa", 1, o.dim, o.seed, o.min_df, o.sublinear_tf,
                              o.ngram_max, self._corpus_digest, o.query_prefix,
                              o.document_prefix, o.text_prefix)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        if self._pipeline is None:
            self._fit()
        vec, svd = self._pipeline
        return svd.transform(vec.transform(self.with_prefix(texts, role))).astype(np.float32)
