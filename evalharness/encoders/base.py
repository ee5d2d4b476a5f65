"""The encoder protocol and the checks applied to every encoder's output."""

from __future__ import annotations

import hashlib
import json
import logging
from contextlib import contextmanager
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from evalharness.errors import EncoderError

ROLES = ("query", "document", "text")


@runtime_checkable
class Encoder(Protocol):
    """What the embed stage uses of an encoder.

    ``encode(texts, role=)``: float32 (n, dim); ``role`` is "query", "document", "text",
    or "prompted" (the texts already carry a task's prompt: add no prefix of your own).
    ``fingerprint()`` changes whenever the vectors could. ``role_key(role)``: roles that
    give identical vectors share one cache table ("any"). Optional, used when present:
    ``load()`` (timed, deferred to the first cache miss when ``defer_load``),
    ``prepare(texts)`` (fitted encoders see every text of the run first),
    ``observe_dim(dim)``, ``options.batch_size`` (the engine's block size).
    """

    name: str

    @property
    def dim(self) -> int | None: ...

    def encode(self, texts: list[str], *, role: str) -> np.ndarray: ...

    def fingerprint(self) -> str: ...

    def role_key(self, role: str) -> str: ...


class BaseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: int = Field(32, ge=1)
    query_prefix: str = ""
    document_prefix: str = ""
    text_prefix: str = ""


# Forward-pass batches on CPU (see encoders/batching.py): at most CPU_BATCH_TOKENS padded
# tokens and CPU_BATCH_SIZE texts. Measured on 2 cores with MiniLM over token-sorted
# texts: budgets of 1024-2048 tokens run 20-50% faster than fixed batches of 8 or 32
# (long texts go 8 to a batch, short sentences up to 64). On an accelerator: at most
# GPU_BATCH_SIZE texts and GPU_BATCH_TOKENS padded tokens per forward pass (the token
# path, encoders/token_path.py, sorts by exact token length, so padding stays small and
# a big card gets big batches; an out-of-memory batch is split and the budget lowered).
# The GPU figures are NOT measured: this project's machines have no GPU. They are chosen
# so that MiniLM-sized models fill a large card (16384 tokens = 64 texts of 256 tokens,
# 512 sentences of 32), while a BERT-large forward of that size should need a few GB of
# activations at most (estimated: 16384 x 4096 FFN floats are 256 MiB per layer in fp32).
CPU_BATCH_SIZE = 64
CPU_BATCH_TOKENS = 2048
GPU_BATCH_SIZE = 512
GPU_BATCH_TOKENS = 16384


class TorchOptions(BaseOptions):
    batch_size: int | None = Field(None, ge=1, description="most texts per forward pass "
                                   "(default: 64 on CPU, 512 on an accelerator)")
    batch_tokens: int | None = Field(None, ge=1, description="most padded tokens per forward "
                                     "pass (default: 2048 on CPU, 16384 on an accelerator)")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    max_seq_length: int | None = Field(None, ge=1)
    normalize: bool = False
    device: str = Field("auto", description="auto (CUDA, then MPS, then CPU; resolved when "
                        "the model loads, encoders/device.py), cpu, cuda, cuda:N or mps")
    revision: str | None = None
    trust_remote_code: bool = False

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, value: str) -> str:
        from evalharness.encoders.device import check_syntax

        return check_syntax(value)

    def model_post_init(self, __context) -> None:
        if self.device == "auto":  # CPU defaults until the model loads (for_device), and
            for k, v in self.batching("cpu").items():  # still "not given" for for_device
                self.__dict__[k] = v
            return
        for k, v in self.batching(self.device).items():
            setattr(self, k, v)

    def batching(self, device: str) -> dict:
        """Batch settings on ``device``: what was given, else that device's defaults."""
        from evalharness.encoders.device import is_accelerator

        accel = is_accelerator(device)
        given = self.model_fields_set
        size = self.batch_size if "batch_size" in given and self.batch_size is not None \
            else (GPU_BATCH_SIZE if accel else CPU_BATCH_SIZE)
        tokens = self.batch_tokens if "batch_tokens" in given \
            else (GPU_BATCH_TOKENS if accel else CPU_BATCH_TOKENS)  # an explicit null stays
        return {"batch_size": size, "batch_tokens": tokens}

    def for_device(self, device: str):
        """These options with the batch defaults of the resolved ``device`` (for ``auto``)."""
        if self.device != "auto":
            return self
        copy = self.model_copy()
        copy.__dict__.update(self.batching(device))
        return copy


def fingerprint_of(*parts) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


class EncoderBase:
    """Shared behaviour: prefixes per role, role collapsing for the cache, output checks."""

    Options = BaseOptions
    needs_target = False
    # True: the runner loads the model only when a text misses the cache (or a component
    # needs what only the model knows); False: loaded before the embed stage
    defer_load = False

    def __init__(self, name: str, target: str | None, options, *, spec_string: str = ""):
        self.name = name
        self.target = target
        self.options = options
        self.spec_string = spec_string
        self._dim: int | None = None

    # -- roles ---------------------------------------------------------------
    def prefix(self, role: str) -> str:
        return {"query": self.options.query_prefix, "document": self.options.document_prefix,
                "text": self.options.text_prefix}.get(role, "")

    def role_key(self, role: str) -> str:
        """Roles that give identical vectors share cache entries and encode work."""
        if self.options.query_prefix == self.options.document_prefix == self.options.text_prefix:
            return "any"
        return role

    def with_prefix(self, texts: list[str], role: str) -> list[str]:
        p = self.prefix(role)
        return [p + t for t in texts] if p else list(texts)

    @property
    def dim(self) -> int | None:
        return self._dim

    def observe_dim(self, dim: int) -> None:
        """The embed stage saw vectors of ``dim`` (e.g. served from the cache before the
        model was loaded)."""
        if self._dim is None:
            self._dim = int(dim)

    def load(self) -> None:
        """Load weights (timed as the 'load' stage). Default: nothing to load."""

    def prepare(self, texts: list[str]) -> None:
        """Called with every unique text of the run before encoding (for fitted encoders)."""

    def describe(self) -> dict:
        return {"spec": self.spec_string, "fingerprint": self.fingerprint(), "dim": self.dim}

    def fingerprint(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


def check_output(name: str, out, n_expected: int, dim: int | None, *, offset: int = 0) -> np.ndarray:
    """Validate an encoder's output; return it as float32 (n, dim)."""
    try:
        arr = np.asarray(out, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise EncoderError(name, f"output is not a numeric array ({exc})") from None
    if arr.ndim != 2:
        raise EncoderError(name, f"output must be 2-D (n_texts, dim), got shape {arr.shape}")
    if arr.shape[0] != n_expected:
        raise EncoderError(name, f"returned {arr.shape[0]} vectors for {n_expected} texts",
                           row=offset + min(arr.shape[0], n_expected))
    if arr.shape[1] == 0:
        raise EncoderError(name, "returned vectors of dimension 0", row=offset)
    if dim is not None and arr.shape[1] != dim:
        raise EncoderError(name, f"vector dimension changed from {dim} to {arr.shape[1]}",
                           row=offset)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise EncoderError(name, "output contains NaN or inf", row=offset + bad)
    return arr


# a text longer than CHARS_PER_TOKEN * (max_len + 2) characters is first tokenised on
# that prefix (count_tokens, and the token path's TextTokenizer)
CHARS_PER_TOKEN = 32


@contextmanager
def quiet_tokenizer_warnings():
    """transformers' "sequence length is longer than ..." is what is measured here."""
    log = logging.getLogger("transformers.tokenization_utils_base")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def count_tokens(tokenizer, texts: list[str], max_len: int | None,
                 chars_per_token: int = CHARS_PER_TOKEN) -> "np.ndarray":
    """Token counts (with special tokens), exact wherever they decide truncation.

    A text longer than ``chars_per_token * (max_len + 2)`` characters is first counted on
    that prefix: if the prefix alone exceeds ``max_len`` the text is truncated and the
    prefix count (a lower bound) is returned; only otherwise is the whole text tokenized.
    This avoids tokenizing megabytes of text that the model never sees.
    """
    with quiet_tokenizer_warnings():
        limit = None if max_len is None else chars_per_token * (max_len + 2)
        clipped = [t if limit is None or len(t) <= limit else t[:limit] for t in texts]
        only_ids = {"return_attention_mask": False, "return_token_type_ids": False}
        ids = tokenizer(clipped, add_special_tokens=True, truncation=False, **only_ids)["input_ids"]
        out = np.array([len(x) for x in ids], dtype=np.int64)
        if limit is not None:
            redo = [i for i, t in enumerate(texts) if len(t) > limit and out[i] <= max_len]
            if redo:
                full = tokenizer([texts[i] for i in redo], add_special_tokens=True,
                                 truncation=False, **only_ids)["input_ids"]
                out[redo] = [len(x) for x in full]
        return out
