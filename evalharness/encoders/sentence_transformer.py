"""sentence-transformers models (``st:NAME_OR_PATH``) and the embedded ``minilm``."""

from __future__ import annotations

import numpy as np

from evalharness.encoders.base import EncoderBase, TorchOptions, fingerprint_of
from evalharness.encoders.batching import memo_counts, model_lengths, token_batches
from evalharness.encoders.device import TorchDevice, device_name, resolve_device
from evalharness.encoders.weights import offline_env, resolve_model, torch_dtype, weights_fingerprint
from evalharness.errors import UserError
from evalharness.memory import trimmed

VECTOR_FORMAT = 1  # bump when the way vectors are produced changes


class SentenceTransformerEncoder(TorchDevice, EncoderBase):
    Options = TorchOptions
    defer_load = True

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self.path, self.is_local = resolve_model(target)
        self.model = None
        self._counts: dict[str, int] = {}  # text -> token count, filled while encoding
        self.torch_device: str | None = None  # resolved when the model loads
        self._device_name: str | None = None  # e.g. "cuda:0 (NVIDIA H100 80GB HBM3)"

    def load(self) -> None:
        if self.model is not None:
            return
        self.torch_device = resolve_device(self.options.device,
                                           field=f"encoders.{self.name}.device")
        self.options = self.options.for_device(self.torch_device)
        with offline_env(self.is_local):
            from sentence_transformers import SentenceTransformer

            kwargs = {"device": self.torch_device,
                      "trust_remote_code": self.options.trust_remote_code}
            if self.options.revision and not self.is_local:
                kwargs["revision"] = self.options.revision
            try:
                model = SentenceTransformer(self.path, **kwargs)
            except OSError as exc:
                raise UserError(f"cannot load sentence-transformers model '{self.path}': {exc}",
                                field=f"encoders.{self.name}",
                                hint="give a local folder, or a Hub name with network access") from None
        if self.options.max_seq_length:
            model.max_seq_length = self.options.max_seq_length
        if self.options.dtype != "float32":
            model = model.to(torch_dtype(self.options.dtype))
        model.eval()
        self.model = model
        self._dim = (model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension")
                     else model.get_sentence_embedding_dimension())
        self._device_name = device_name(self.torch_device)

    @property
    def effective_max_seq_length(self) -> int | None:
        if self.model is not None:
            return self.model.max_seq_length
        return self.options.max_seq_length

    def fingerprint(self) -> str:
        o = self.options
        return fingerprint_of("st", VECTOR_FORMAT,
                              weights_fingerprint(self.path, self.is_local, o.revision),
                              o.dtype, o.max_seq_length, o.normalize, o.query_prefix,
                              o.document_prefix, o.text_prefix)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        """Batches by padded tokens (encoders/batching.py), each run by the model's own
        ``encode`` so prompts, pooling, normalisation and devices stay its business."""
        self.load()
        import torch

        texts = self.with_prefix(texts, role)
        lengths = model_lengths(self.model.tokenizer, texts, self.model.max_seq_length,
                                self._counts)
        out = None
        batching = self.options.batching(self.torch_device)  # the device's defaults
        with torch.inference_mode():
            for idx in trimmed(token_batches(lengths, batching["batch_size"],
                                              batching["batch_tokens"])):
                emb = self.model.encode([texts[i] for i in idx], batch_size=len(idx),
                                        convert_to_numpy=False, convert_to_tensor=True,
                                        normalize_embeddings=self.options.normalize,
                                        show_progress_bar=False).float().cpu().numpy()
                if out is None:
                    out = np.empty((len(texts), emb.shape[1]), dtype=np.float32)
                out[idx] = emb
        return out if out is not None else np.zeros((0, self.dim or 0), dtype=np.float32)

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Token counts (with special tokens), to report truncation by max_seq_length."""
        self.load()
        return memo_counts(self.model.tokenizer, texts, self.model.max_seq_length,
                           self._counts)


