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

import copy
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from evalharness.encoders.base import fingerprint_of
from evalharness.errors import UserError

VARIANT_FORMAT = 1
TORCH_TYPES = ("st", "minilm", "hf", "mteb")
MODEL_SETTINGS = ("dtype", "quantize")
OUTPUT_SETTINGS = ("truncate_dim", "embedding")


class VariantOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    quantize: Literal["dynamic-int8"] | None = None
    embedding: Literal["float32", "int8", "binary"] | None = None
    truncate_dim: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _valid(self):
        if not self.settings():
            raise ValueError("a variant needs at least one of dtype, quantize, embedding, "
                             "truncate_dim")
        if self.quantize and self.dtype not in (None, "float32"):
            raise ValueError("quantize: dynamic-int8 works on float32 weights; do not combine "
                             "it with dtype")
        return self

    def settings(self) -> dict:
        return {k: v for k, v in self.model_dump().items()
                if v is not None and not (k == "embedding" and v == "float32")
                and not (k == "dtype" and v == "float32")}

    @property
    def model_level(self) -> bool:
        return any(k in self.settings() for k in MODEL_SETTINGS)


def parse_variant(eid: str, data: dict, *, source=None, line=None):
    """``{base: ID, ...}`` -> an EncoderSpec of type ``variant`` (target: the base id)."""
    from evalharness.encoders.spec import EncoderSpec

    data = dict(data)
    if "type" in data:
        raise UserError("a variant takes its type from its base: give either 'type' or "
                        "'base', not both", source=source, line=line, field=f"encoders.{eid}")
    base = data.pop("base")
    if not isinstance(base, str) or not base:
        raise UserError("'base' must be the id of another encoder of the suite",
                        source=source, line=line, field=f"encoders.{eid}.base")
    try:
        VariantOptions.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            from evalharness import registry

            known = sorted(VariantOptions.model_fields)
            raise UserError(f"unknown option '{key}' for an encoder variant", source=source,
                            line=line, field=f"encoders.{eid}",
                            hint=registry.suggest(key, known) or
                            f"variant options: base, {', '.join(known)}") from None
        msg = err["msg"].removeprefix("Value error, ")
        where = f"option '{key}': " if key else ""
        raise UserError(f"{where}{msg} (got {err.get('input')!r})" if key else msg,
                        source=source, line=line, field=f"encoders.{eid}") from None
    return EncoderSpec(eid, "variant", base, data, raw={"base": base, **data})


def check_bases(specs: dict, *, source=None) -> None:
    """Every variant names an existing, non-variant encoder; model settings need torch."""
    for eid, spec in specs.items():
        if spec.type != "variant":
            continue
        base = specs.get(spec.target)
        if base is None:
            from evalharness import registry

            others = [e for e in specs if e != eid]
            raise UserError(f"variant '{eid}' names base '{spec.target}', which is not an "
                            f"encoder of the suite", source=source, field=f"encoders.{eid}.base",
                            hint=registry.suggest(spec.target, others) or
                            f"encoders: {', '.join(others)}")
        if base.type == "variant":
            raise UserError(f"variant '{eid}' names another variant ('{spec.target}') as its "
                            "base", source=source, field=f"encoders.{eid}.base",
                            hint="give the settings of both in one variant of the base model")
        opts = VariantOptions.model_validate(spec.options)
        if opts.model_level and base.type not in TORCH_TYPES:
            raise UserError(f"variant '{eid}': dtype/quantize need a torch encoder "
                            f"({', '.join(TORCH_TYPES)}), but base '{spec.target}' is "
                            f"'{base.type}'", source=source, field=f"encoders.{eid}",
                            hint="output settings (embedding, truncate_dim) work on any base")


# -- model settings -------------------------------------------------------------------
def _module_holder(encoder):
    """(object, attribute) holding the base's torch module: ``encoder.model`` for st/hf,
    ``encoder.model.model`` for an mteb wrapper around a SentenceTransformer."""
    import torch

    model = getattr(encoder, "model", None)
    if isinstance(model, torch.nn.Module):
        return encoder, "model"
    inner = getattr(model, "model", None)
    if isinstance(inner, torch.nn.Module):
        return model, "model"
    raise UserError(f"encoder '{encoder.name}' exposes no torch module, so dtype/quantize "
                    "variants cannot be derived from it")


def transform_module(module, *, dtype: str | None = None, quantize: str | None = None):
    """A deep copy of ``module`` with the model settings applied (the base is untouched)."""
    import torch

    from evalharness.encoders.weights import torch_dtype

    m = copy.deepcopy(module)
    if dtype and dtype != "float32":
        m = m.to(torch_dtype(dtype))
    if quantize == "dynamic-int8":
        from torch.ao.quantization import quantize_dynamic

        m = quantize_dynamic(m.float(), {torch.nn.Linear}, dtype=torch.qint8)
    return m.eval()


def derive_model_encoder(base, *, dtype=None, quantize=None):
    """A shallow copy of the loaded ``base`` encoder whose torch module is transformed."""
    holder, attr = _module_holder(base)
    new_module = transform_module(getattr(holder, attr), dtype=dtype, quantize=quantize)
    derived = copy.copy(base)
    if holder is base:
        setattr(derived, attr, new_module)
    else:
        new_holder = copy.copy(holder)
        setattr(new_holder, attr, new_module)
        derived.model = new_holder
    opts = getattr(base, "options", None)
    if dtype and opts is not None and "dtype" in type(opts).model_fields:
        derived.options = opts.model_copy(update={"dtype": dtype})
    return derived


# -- output settings ------------------------------------------------------------------
def truncate(x: np.ndarray, dim: int) -> np.ndarray:
    """First ``dim`` dimensions, each row renormalised to unit length (zero rows stay 0)."""
    x = np.asarray(x, dtype=np.float32)[:, :dim]
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


def int8_ranges(calibration: np.ndarray) -> np.ndarray:
    """(2, dim) per-dimension [min; max], as sentence-transformers computes them."""
    return np.vstack((calibration.min(axis=0), calibration.max(axis=0)))


def quantize_int8(x: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """sentence-transformers' int8 scalar quantisation with the given ranges, as float32."""
    from sentence_transformers.quantization import quantize_embeddings

    if len(x) == 0:
        return np.zeros_like(x, dtype=np.float32)
    return quantize_embeddings(np.asarray(x, dtype=np.float32), "int8",
                               ranges=ranges).astype(np.float32)


def binarize(x: np.ndarray) -> np.ndarray:
    """Sign bits as +/-1 floats: ``x > 0`` -> 1, else -1."""
    return np.where(np.asarray(x) > 0, 1.0, -1.0).astype(np.float32)


def apply_output(matrices: list[np.ndarray], opts: VariantOptions) -> list[np.ndarray]:
    """Apply truncate_dim then the embedding quantisation to every matrix of a run; int8
    ranges are calibrated on all of them together."""
    out = [np.asarray(m, dtype=np.float32) for m in matrices]
    if opts.truncate_dim:
        out = [truncate(m, opts.truncate_dim) for m in out]
    if opts.embedding == "int8":
        nonempty = [m for m in out if len(m)]
        if nonempty:
            ranges = int8_ranges(np.concatenate(nonempty))
            out = [quantize_int8(m, ranges) for m in out]
    elif opts.embedding == "binary":
        out = [binarize(m) for m in out]
    return out


class VariantEncoder:
    """A deployment variant of a loaded base encoder (see the module docstring).

    ``source`` is the encoder that computes vectors (the base itself for output-only
    variants, a transformed copy for model settings); the runner embeds with ``source``
    (cache keyed by ``source.fingerprint()``) and then calls ``postprocess``.
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
        if not any(k in self.settings for k in OUTPUT_SETTINGS):
            return vectors
        return vectors.transform(lambda mats: apply_output(mats, self.options))

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


class EncoderPool:
    """Builds the run's encoders one at a time; a base with variants is built and loaded
    once and the same object is shared by the base's own evaluation and every variant,
    then dropped after the last of them."""

    def __init__(self, specs: dict):
        from collections import Counter

        self.specs = specs
        self.pending = Counter(s.target for s in specs.values() if s.type == "variant")
        self.shared: dict[str, object] = {}
        self.done: set[str] = set()

    def _base(self, base_id: str):
        if base_id not in self.shared:
            from evalharness.encoders.spec import build_encoder

            self.shared[base_id] = build_encoder(self.specs[base_id])
        return self.shared[base_id]

    def build(self, eid: str):
        spec = self.specs[eid]
        if spec.type == "variant":
            return build_variant(spec, self._base(spec.target))
        if eid in self.shared or self.pending.get(eid):
            return self._base(eid)
        from evalharness.encoders.spec import build_encoder

        return build_encoder(spec)

    def release(self, eid: str) -> None:
        """``eid`` is finished: drop shared bases that no pending variant needs."""
        self.done.add(eid)
        spec = self.specs[eid]
        if spec.type == "variant":
            self.pending[spec.target] -= 1
        for base_id in list(self.shared):
            if self.pending.get(base_id, 0) <= 0 and base_id in self.done:
                del self.shared[base_id]


__all__ = ["EncoderPool", "VariantEncoder", "VariantOptions", "apply_output", "binarize", "build_variant",
           "check_bases", "derive_model_encoder", "embedding_source", "int8_ranges",
           "parse_variant", "quantize_int8", "timing_target", "transform_module", "truncate"]
