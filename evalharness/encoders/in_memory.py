"""Encoders handed to the Python API as objects: a ``SentenceTransformer`` instance, any
object with ``encode(texts)``, or a plain callable ``f(texts) -> array``.

The cache key must change whenever the vectors could, so the fingerprint is:
- the object's own ``fingerprint()`` when it has one;
- for a ``SentenceTransformer`` (or any ``torch.nn.Module`` with ``encode``): a hash of
  its weights, plus its class, ``max_seq_length`` and the prompts of the run, so the
  same model object in two notebooks shares the cache and a fine-tuned copy does not;
- otherwise a fresh random id per run: a callable's behaviour cannot be read off it, so
  its vectors are never served from the cache (give the object a ``fingerprint()`` to
  make re-runs free).
"""

from __future__ import annotations

import hashlib
import inspect
import uuid

import numpy as np

from evalharness.encoders.base import BaseOptions, EncoderBase, fingerprint_of
from evalharness.encoders.python import SIGNATURE, as_array, takes_role
from evalharness.errors import UserError

def _weights_digest(module) -> str:
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update(str(t.dtype).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class ObjectEncoder(EncoderBase):
    Options = BaseOptions

    def __init__(self, name: str, obj, options: BaseOptions | None = None):
        options = options or BaseOptions()
        super().__init__(name, None, options, spec_string=f"object:{type(obj).__name__}")
        self.obj = obj
        target = obj.encode if hasattr(obj, "encode") else obj
        if not callable(target):
            raise UserError(f"encoder '{name}': a {type(obj).__name__} is neither a spec "
                            f"string, nor callable, nor has an encode method",
                            field=f"encoders.{name}",
                            hint=f"pass a spec string ('minilm', 'st:NAME'), a "
                                 f"SentenceTransformer, or a function {SIGNATURE}")
        self._fn = target
        self._takes_role = takes_role(target)
        try:  # sentence-transformers' encode: ask for numpy, no progress bar
            self._is_st = "convert_to_numpy" in inspect.signature(target).parameters
        except (TypeError, ValueError):
            self._is_st = False
        self._fp: str | None = None

    def fingerprint(self) -> str:
        if self._fp is None:
            obj, o = self.obj, self.options
            own = getattr(obj, "fingerprint", None)
            if callable(own):
                base = ("own", str(own()))
            elif hasattr(obj, "state_dict") and hasattr(obj, "encode"):
                base = ("torch", type(obj).__qualname__, _weights_digest(obj),
                        getattr(obj, "max_seq_length", None))
            else:
                base = ("volatile", uuid.uuid4().hex)
            self._fp = fingerprint_of("object", 1, base, o.query_prefix, o.document_prefix,
                                      o.text_prefix)
        return self._fp

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        texts = self.with_prefix(texts, role)
        if self._is_st:
            out = self._fn(texts, convert_to_numpy=True, show_progress_bar=False,
                           batch_size=self.options.batch_size)
        elif self._takes_role:
            out = self._fn(texts, role=role)
        else:
            out = self._fn(texts)
        return as_array(out)
