"""Encoder variants: one loaded base model, several deployment settings.

A suite declares a variant as a mapping with ``base`` (the id of another encoder of the
suite) instead of ``type``::

    encoders:
      minilm: minilm
      minilm_bf16:  {base: minilm, dtype: bfloat16}
      minilm_int8:  {base: minilm, quantize: dynamic-int8}
      minilm_i8emb: {base: minilm, embedding: int8}
      minilm_bin:   {base: minilm, embedding: binary}
      minilm_128:   {base: minilm, truncate_dim: 128}

The runner loads the base model once and derives every variant from that object.

Two kinds of settings:

- model settings (torch encoders: ``st``, ``minilm``, ``hf``, ``mteb``) change how the
  vectors are computed, on a deep copy of the base's torch module:
  ``dtype: bfloat16|float16`` casts the weights; ``quantize: dynamic-int8`` applies
  ``torch.ao.quantization.quantize_dynamic`` to every ``nn.Linear`` (int8 weights,
  activations quantised on the fly). Such a variant has its own vectors and cache entries.
- output settings post-process the (base or model-variant) vectors, after the embed stage,
  in this order:
  ``truncate_dim: N`` keeps the first N dimensions (Matryoshka-style) and renormalises each
  row to unit length;
  ``embedding: int8`` is sentence-transformers' ``quantize_embeddings(..., "int8")``:
  per-dimension ranges [min, max] split into 256 buckets, codes in [-128, 127]. The
  calibration set is the run's own embeddings: all vectors of the run for this encoder,
  all roles together (the same ranges for queries and documents, as sentence-transformers
  uses one set of ranges for both), which is what sentence-transformers does when it is
  given no ``calibration_embeddings``. Scores are computed on the int8 codes (cosine of the
  codes, as an int8 index such as usearch's does); the codes are stored as float32.
  ``embedding: binary`` keeps the sign (``x > 0`` -> +1, else -1, the threshold of
  sentence-transformers' ``binary``/``ubinary``) as +/-1 floats. For +/-1 vectors of
  dimension d, cosine = 1 - 2 * hamming / d, a decreasing affine function of the Hamming
  distance, so every cosine-based metric (ranking, Spearman, kNN) equals the one computed
  with Hamming similarity.
  Output settings are a function of the base vectors, so they are applied in memory to
  the base's (cached) vectors and never written to the cache: int8 codes depend on the
  calibration set, i.e. on which texts the run holds. (With ``--no-cache`` an
  output-only variant encodes its base's texts again.)

Every variant's fingerprint is derived from its base's fingerprint and its settings.
"""

from __future__ import annotations

import numpy as np

from evalharness.encoders.base import fingerprint_of
from evalharness.encoders.spec import OUTPUT_SETTINGS, VariantOptions
from evalharness.encoders.transforms import apply_output, derive_model_encoder

VARIANT_FORMAT = 1


class VariantEncoder:
    """A deployment variant of a loaded base encoder (see the module docstring).

    ``source`` is the encoder that computes vectors (the base itself for output-only
    variants, a transformed copy for model settings); the embed stage encodes with
    ``embedding_source(variant)`` (cache keyed by the source's fingerprint) and applies
    ``output_transform(variant)`` to the vectors (``postprocess`` does both steps' second
    half on a ``Vectors``).
    """

    Options = VariantOptions

    def __init__(self, name: str, base, options: VariantOptions, *, base_id: str,
                 spec_string: str = ""):
        self.name = name
        self.base = base
        self.base_id = base_id
        self.options = options
        self.spec_string = spec_string
        self.source = None

    @property
    def settings(self) -> dict:
        return self.options.settings()

    def load(self) -> None:
        if self.source is not None:
            return
        self.base.load()
        o = self.options
        if o.model_level:
            self.source = derive_model_encoder(self.base, dtype=o.dtype, quantize=o.quantize)
        else:
            self.source = self.base

    @property
    def defer_load(self) -> bool:
        return getattr(self.base, "defer_load", False)

    def prepare(self, texts: list[str]) -> None:
        # always: a variant may run before its base, and a fitted base (tfidf-lsa) must
        # be fitted on the run's texts either way (prepare is idempotent for a text set);
        # a model-level source is a copy of the base, made after this, so it inherits it
        if not self.defer_load:
            self.load()
        (self.source or self.base).prepare(texts)

    @property
    def dim(self) -> int | None:
        if self.options.truncate_dim:
            return self.options.truncate_dim
        src = self.source or self.base
        return src.dim

    def role_key(self, role: str) -> str:
        return (self.source or self.base).role_key(role)

    def fingerprint(self) -> str:
        return fingerprint_of("variant", VARIANT_FORMAT, self.base.fingerprint(),
                              sorted(self.settings.items()))

    def source_fingerprint(self) -> str:
        """The fingerprint of the vectors before output settings (the cache key)."""
        if not self.options.model_level:
            return self.base.fingerprint()
        return fingerprint_of("variant-model", VARIANT_FORMAT, self.base.fingerprint(),
                              self.options.dtype, self.options.quantize)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Output settings on one matrix (int8 calibrated on that matrix)."""
        return apply_output([x], self.options)[0]

    def postprocess(self, vectors):
        """The run's vectors with the output settings applied (int8: calibrated on all
        of them). ``vectors`` is the planner's ``Vectors`` of ``source``."""
        fn = output_transform(self)
        return vectors if fn is None else vectors.transform(fn)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        """The Encoder protocol; int8 ranges are calibrated on ``texts`` themselves."""
        self.load()
        return self.transform(self.source.encode(texts, role=role))

    def describe(self) -> dict:
        return {"spec": self.spec_string, "fingerprint": self.fingerprint(), "dim": self.dim,
                "base": self.base_id, "settings": self.settings}


class _SourceView:
    """``source`` with the fingerprint of the model variant (so a bf16 copy of MiniLM does
    not share cache entries with fp32 MiniLM)."""

    def __init__(self, variant: VariantEncoder):
        self._variant = variant

    @property
    def _src(self):
        self._variant.load()  # deferred until something is encoded
        return self._variant.source

    def __getattr__(self, item):
        if item.startswith("_"):  # private state (e.g. the planner's probe of _dim)
            raise AttributeError(item)
        return getattr(self._src, item)

    def load(self) -> None:
        self._variant.load()

    def fingerprint(self) -> str:
        return self._variant.source_fingerprint()

    def observe_dim(self, dim: int) -> None:
        """Passed on only to a loaded source: observing must never load a model."""
        src = self._variant.source
        if src is not None and hasattr(src, "observe_dim"):
            src.observe_dim(dim)

    def encode(self, texts, *, role):
        return self._src.encode(texts, role=role)

    def role_key(self, role):
        return self._variant.role_key(role)

    @property
    def name(self):
        return self._variant.name

    @property
    def dim(self):
        v = self._variant
        return (v.source or v.base).dim


def embedding_source(encoder):
    """What the embed stage should call for ``encoder``: itself, or for a variant its
    source under the variant's source fingerprint."""
    if isinstance(encoder, VariantEncoder):
        return _SourceView(encoder)
    return encoder


def variant_of(encoder) -> VariantEncoder | None:
    """The variant behind ``encoder`` (a variant, or the view ``embedding_source`` gives
    the embed stage), else None."""
    if isinstance(encoder, _SourceView):
        return encoder._variant
    return encoder if isinstance(encoder, VariantEncoder) else None


def output_transform(encoder):
    """``fn(list of matrices) -> list of matrices`` applying a variant's output settings
    to the embedded vectors of a run (int8 calibrated over all of them), or None."""
    if isinstance(encoder, VariantEncoder) and \
            any(k in encoder.settings for k in OUTPUT_SETTINGS):
        return lambda mats: apply_output(mats, encoder.options)
    return None


def build_variant(spec, base) -> VariantEncoder:
    return VariantEncoder(spec.id, base, VariantOptions.model_validate(spec.options),
                          base_id=spec.target, spec_string=spec.spec_string())


def timing_target(encoder):
    """(encoder whose ``encode`` to time, output transform or None) for the latency hook."""
    if isinstance(encoder, VariantEncoder):
        encoder.load()
        has_output = any(k in encoder.settings for k in OUTPUT_SETTINGS)
        return encoder.source, (encoder.transform if has_output else None)
    return encoder, None


__all__ = ["VariantEncoder", "build_variant", "embedding_source", "output_transform",
           "timing_target", "variant_of"]
