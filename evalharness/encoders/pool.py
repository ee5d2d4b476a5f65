"""The run's encoders, built one at a time from their specs.

A base with variants is built and loaded once; the same object serves the base's own
evaluation and every variant, and is dropped after the last of them.
"""

from __future__ import annotations

from collections import Counter

from evalharness import registry
from evalharness.encoders.spec import EncoderSpec
from evalharness.encoders.variants import build_variant


def build_encoder(spec: EncoderSpec):
    """A fresh encoder object for a (non-variant) spec."""
    if spec.type == "object":  # handed to the Python API as an object or a callable
        from evalharness.encoders.in_memory import ObjectEncoder

        return ObjectEncoder(spec.id, spec.raw)
    cls = registry.resolve("encoder", spec.type)
    opts = cls.Options.model_validate(spec.options)
    return cls(spec.id, spec.target, opts, spec_string=spec.spec_string())


class EncoderPool:
    """Builds the run's encoders one at a time; a base with variants is built and loaded
    once and the same object is shared by the base's own evaluation and every variant,
    then dropped after the last of them."""

    def __init__(self, specs: dict):
        self.specs = specs
        self.pending = Counter(s.target for s in specs.values() if s.type == "variant")
        self.shared: dict[str, object] = {}
        self.done: set[str] = set()

    def _base(self, base_id: str):
        if base_id not in self.shared:
            self.shared[base_id] = build_encoder(self.specs[base_id])
        return self.shared[base_id]

    def build(self, eid: str):
        spec = self.specs[eid]
        if spec.type == "variant":
            return build_variant(spec, self._base(spec.target))
        if eid in self.shared or self.pending.get(eid):
            return self._base(eid)
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
