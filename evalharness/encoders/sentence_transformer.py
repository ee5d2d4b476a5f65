"""sentence-transformers models (``st:NAME_OR_PATH``) and the embedded ``minilm``."""

from __future__ import annotations

import numpy as np

from evalharness.encoders.base import EncoderBase, TorchOptions, fingerprint_of
from evalharness.encoders.batching import memo_counts, model_lengths, token_batches
from evalharness.encoders.device import TorchDevice, device_name, resolve_device
from evalharness.encoders.token_path import TokenPath, UsesTokenPath
from evalharness.encoders.weights import offline_env, resolve_model, torch_dtype, weights_fingerprint
from evalharness.errors import UserError
from evalharness.memory import trimmed

VECTOR_FORMAT = 1  # bump when the way vectors are produced changes


class SentenceTransformerEncoder(UsesTokenPath, TorchDevice, EncoderBase):
    Options = TorchOptions
    defer_load = True

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self.path, self.is_local = resolve_model(target)
        self.model = None
        self._counts: dict[str, int] = {}  # text -> token count, filled while encoding
        # shared with the variants derived from this encoder (copy.copy): one tokenizer
        self._tokens = TokenPath(name)
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
        """The token path (encoders/token_path.py): tokenised once, batches by padded
        tokens, the model's modules run directly, vectors kept on the device until the
        call ends. Where the safety net turns it off, each batch goes through the model's
        own ``encode`` (prompts, pooling, normalisation and devices stay its business)."""
        self.load()
        texts = self.with_prefix(texts, role)
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        batching = self.options.batching(self.torch_device)  # the device's defaults
        if self._tokens.ready(self.model.tokenizer, self.model.max_seq_length,
                              self._why_not_token_path):
            out = self._tokens.encode(texts, forward=self._forward, reference=self._reference,
                                      device=self.torch_device, counts_memo=self._counts,
                                      **batching)
            if out is not None:
                return out
        return self._encode_per_batch(texts, batching)

    def _why_not_token_path(self) -> str | None:
        """Why this model is not a plain text Transformer + modules the token path can
        feed (None: it is)."""
        model = self.model
        first = model[0] if len(model) else None
        if type(first).__name__ != "Transformer":
            return f"its first module is {type(first).__name__}, not a Transformer"
        for module in model.modules():
            if type(module).__name__ == "Router":
                return "it routes its inputs (a Router module)"
        config = getattr(first, "modality_config", None)
        if config is not None and (set(config) != {"text"} or
                                   config["text"].get("method", "forward") != "forward"):
            return f"it takes {', '.join(map(str, config))} inputs, not plain text"
        if getattr(first, "query_expansion", None):
            return "it expands queries"
        task = getattr(first, "transformer_task", "feature-extraction")
        if task != "feature-extraction":
            return f"its transformer task is {task!r}"
        if getattr(first, "can_flatten_inputs", False):
            return "it flattens its inputs for flash attention"
        if getattr(model, "default_prompt_name", None):
            return f"it has a default prompt ({model.default_prompt_name!r})"
        return None

    def _reference(self, texts: list[str]) -> dict:
        """The model's own preprocessing (sentence-transformers 5+; ``tokenize`` before)."""
        fn = getattr(self.model, "preprocess", None) or self.model.tokenize
        return fn(texts)

    def _forward(self, features: dict):
        import torch.nn.functional as F

        features["modality"] = "text"  # what preprocess gives the model
        emb = self.model(features)["sentence_embedding"]
        dims = getattr(self.model, "truncate_dim", None)
        if dims:
            emb = emb[..., :dims]
        if self.options.normalize:
            emb = F.normalize(emb, p=2, dim=1)
        return emb

    def _encode_per_batch(self, texts: list[str], batching: dict) -> np.ndarray:
        """The path before the token path: every batch through the model's ``encode``."""
        import torch

        lengths = model_lengths(self.model.tokenizer, texts, self.model.max_seq_length,
                                self._counts)
        out = None
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
        return out

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        """Token counts (with special tokens), to report truncation by max_seq_length."""
        self.load()
        return memo_counts(self.model.tokenizer, texts, self.model.max_seq_length,
                           self._counts)


