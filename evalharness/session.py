"""One encoder of a run, from build to release.

The runner asks an :class:`EncoderSession` for vectors, for an evaluation context and
for its record, without knowing what kind of encoder it holds. The session owns:

- the lifecycle: built from the run's :class:`EncoderPool` (a base with variants is
  loaded once), loaded lazily (a torch model loads on the first cache miss, so a warm
  run loads none), released with its memory after evaluation;
- what is special about variants: the embed stage encodes the variant's *source* under
  the source's fingerprint, output settings (int8, binary, truncation) are applied to
  the embedded vectors, and the latency check times the source plus the transform;
- the timing bookkeeping: seconds of load, plan, encode and evaluate, where a load that
  a later stage triggered is counted as load, not as that stage.
"""

from __future__ import annotations

import gc
import time

from evalharness.checks.latency import make_timer
from evalharness.embeddings.cache import EmbeddingCache
from evalharness.embeddings.engines import Engine, encodes_remotely
from evalharness.embeddings.facts import EncoderFacts, LazyLoad
from evalharness.embeddings.planner import EmbedStats, Vectors, embed
from evalharness.encoders.pool import EncoderPool
from evalharness.encoders.spec import EncoderSpec
from evalharness.encoders.variants import embedding_source, output_transform, timing_target
from evalharness.memory import release_free_memory
from evalharness.results import EncoderRecord
from evalharness.components import EncoderContext


class EncoderSession:
    def __init__(self, eid: str, spec: EncoderSpec, pool: EncoderPool,
                 cache: EmbeddingCache | None, engine: Engine):
        self.eid = eid
        self.spec = spec
        self.pool = pool
        self.cache = cache
        self.engine = engine
        self.record = EncoderRecord(spec=spec.spec_string(),
                                    base=spec.target if spec.type == "variant" else None)
        self.encoder = None
        self.loader: LazyLoad | None = None
        self.vectors: Vectors | None = None
        self._context: EncoderContext | None = None

    # -- lifecycle --------------------------------------------------------------------
    def open(self) -> None:
        """Build the encoder; load it now unless it loads on the first cache miss."""
        self.encoder = self.pool.build(self.eid)
        self.loader = LazyLoad(self.encoder)
        if not getattr(self.encoder, "defer_load", False):
            self.loader()
        self.record.seconds["load"] = self._load_seconds()

    def close(self) -> None:
        """Drop the encoder and its vectors (a shared base stays while variants need it)."""
        self.encoder = self.loader = self.vectors = self._context = None
        self.pool.release(self.eid)
        gc.collect()
        release_free_memory()

    def _load_seconds(self) -> float:
        return round((self.loader.seconds if self.loader else None) or 0.0, 4)

    # -- embed ------------------------------------------------------------------------
    def embed(self, wanted: dict[str, list[str]], all_texts: list[str], *,
              plan_seconds: float = 0.0) -> tuple[Vectors, EmbedStats]:
        enc = self.encoder
        loaded_before = self.loader.seconds or 0.0
        t0 = time.perf_counter()
        enc.prepare(all_texts)
        src = embedding_source(enc)
        # an engine that encodes on remote workers needs no model on the driver
        before = None if encodes_remotely(self.engine, src) else self.loader
        vectors, stats = embed(src, wanted, self.cache, before_encode=before,
                               engine=self.engine)
        transform = output_transform(enc)
        if transform is not None:
            vectors = vectors.transform(transform)
        total = time.perf_counter() - t0 - ((self.loader.seconds or 0.0) - loaded_before)
        rec = self.record
        rec.seconds["load"] = self._load_seconds()
        rec.seconds["plan"] = round(plan_seconds + total - stats.encode_seconds, 4)
        rec.seconds["encode"] = round(stats.encode_seconds, 4)
        rec.cache = {"hits": stats.hits, "misses": stats.misses}
        if stats.damaged:  # damaged cache shards met; their texts were encoded again
            rec.cache["damaged_shards"] = stats.damaged
        if stats.texts_per_second:
            rec.texts_per_second = round(stats.texts_per_second, 2)
        rec.fingerprint = enc.fingerprint()
        rec.dim = vectors.dim or enc.dim
        if stats.misses:
            rec.engine = self.engine.describe()
            release_free_memory()  # the encode pass's freed activations, before evaluate
        self.vectors = vectors
        return vectors, stats

    # -- evaluate ---------------------------------------------------------------------
    def context(self) -> EncoderContext:
        """What components may ask of the encoder besides vectors; answered from the
        cache where it can be, else by loading the model (counted as load). Built once
        per session: the evaluate stage and the model facts share its answers."""
        if self._context is None:
            self._context = self._new_context()
        return self._context

    def _new_context(self) -> EncoderContext:
        facts = EncoderFacts(self.encoder, self.record.fingerprint, self.cache, self.loader)
        return EncoderContext(self.eid, self.record.dim,
                              facts.token_lengths if facts.has_token_lengths else None,
                              facts.max_seq_length, timer=self._lazy_timer(),
                              load_seconds=facts.load_seconds)

    def _lazy_timer(self):
        """The latency check's ``timer(texts) -> seconds``; loads the model on first use."""
        built = []

        def timer(texts) -> float:
            if not built:
                self.loader()
                built.append(make_timer(*timing_target(self.encoder)))
            return built[0](texts)

        return timer

    def model_facts(self, texts: list[str]) -> dict:
        """Name, revision, parameters, dim, max tokens, device, dtype and how many of the
        run's unique ``texts`` the model truncates. Answered from the model when it is
        loaded (and kept in the cache's meta), else from the cache: a warm run loads no
        model for its facts, and a fact nobody can answer is left out."""
        enc, spec = self.encoder, self.spec
        src = getattr(enc, "source", None) or getattr(enc, "base", None) or enc
        opts = getattr(src, "options", None)
        facts = {"name": spec.target or spec.type, "dim": self.record.dim}
        if spec.type == "variant":
            facts["name"] = f"{spec.target} ({', '.join(f'{k}={v}' for k, v in spec.options.items())})"
        for key in ("revision", "dtype", "device"):
            value = getattr(src, key, None) if key == "device" else None
            value = value or (getattr(opts, key, None) if opts is not None else None)
            if value is not None:
                facts[key] = str(value)
        meta = self.cache.meta(self.record.fingerprint) if self.cache and \
            self.record.fingerprint else {}
        module = getattr(src, "model", None)
        if hasattr(module, "parameters"):
            facts["parameters"] = int(sum(p.numel() for p in module.parameters()))
            if self.cache and meta.get("parameters") != facts["parameters"]:
                self.cache.update_meta(self.record.fingerprint,
                                       {"parameters": facts["parameters"]})
        elif "parameters" in meta:
            facts["parameters"] = meta["parameters"]
        ctx = self.context()
        max_tokens = ctx.max_seq_length
        if max_tokens:
            facts["max_tokens"] = int(max_tokens)
            if ctx.token_lengths is not None and texts:
                lengths = ctx.token_lengths(texts)
                facts["truncated"] = int((lengths > max_tokens).sum())
                facts["texts"] = len(texts)
        return facts

    def finish_evaluate(self, evaluate_seconds: float) -> None:
        """Record evaluate seconds, less any model load that evaluation caused."""
        load_now = self._load_seconds()
        self.record.seconds["evaluate"] = round(
            evaluate_seconds - (load_now - self.record.seconds.get("load", 0.0)), 4)
        self.record.seconds["load"] = load_now
