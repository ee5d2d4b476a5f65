"""transformers AutoModel with a chosen pooling (``hf:NAME_OR_PATH?pooling=mean``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np

from evalharness.encoders.base import EncoderBase, TorchOptions, fingerprint_of
from evalharness.encoders.batching import memo_counts, model_lengths, token_batches
from evalharness.encoders.device import TorchDevice, device_name, resolve_device
from evalharness.encoders.token_path import TokenPath, UsesTokenPath
from evalharness.encoders.weights import offline_env, resolve_model, torch_dtype, weights_fingerprint
from evalharness.errors import UserError
from evalharness.memory import trimmed

Pooling = Literal["cls", "mean", "max", "mean_max"]


class HFOptions(TorchOptions):
    pooling: Pooling | None = None


def default_pooling(path: str, is_local: bool) -> Pooling:
    """Pooling from a sentence-transformers ``1_Pooling/config.json``; else mean."""
    cfg = Path(path) / "1_Pooling" / "config.json"
    if is_local and cfg.exists():
        conf = json.loads(cfg.read_text())
        if conf.get("pooling_mode_cls_token"):
            return "cls"
        if conf.get("pooling_mode_mean_tokens") and conf.get("pooling_mode_max_tokens"):
            return "mean_max"
        if conf.get("pooling_mode_max_tokens"):
            return "max"
    return "mean"


def default_max_length(path: str, is_local: bool, tokenizer) -> int:
    cfg = Path(path) / "sentence_bert_config.json"
    if is_local and cfg.exists():
        msl = json.loads(cfg.read_text()).get("max_seq_length")
        if msl:
            return int(msl)
    return int(min(getattr(tokenizer, "model_max_length", 512) or 512, 512))


def pool(token_embeddings, attention_mask, mode: str):
    """Pooling exactly as sentence-transformers' Pooling module computes it."""
    import torch

    mask = attention_mask.unsqueeze(-1).to(token_embeddings.dtype)
    outs = []
    if mode == "cls":
        return token_embeddings[:, 0]
    if mode in ("mean", "mean_max"):
        summed = (token_embeddings * mask).sum(1)
        counts = torch.clamp(mask.sum(1), min=1e-9)
        outs.append(summed / counts)
    if mode in ("max", "mean_max"):
        masked = token_embeddings.clone()
        masked[attention_mask == 0] = -1e9
        outs.append(masked.max(1).values)
    return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]


class HFEncoder(UsesTokenPath, TorchDevice, EncoderBase):
    Options = HFOptions
    needs_target = True
    defer_load = True

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self.path, self.is_local = resolve_model(target)
        self.pooling = options.pooling or default_pooling(self.path, self.is_local)
        self.model = None
        self.tokenizer = None
        self.max_length = options.max_seq_length
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
            from transformers import AutoModel, AutoTokenizer

            kw = {"trust_remote_code": self.options.trust_remote_code}
            if self.options.revision and not self.is_local:
                kw["revision"] = self.options.revision
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(self.path, **kw)
                model = AutoModel.from_pretrained(self.path, **kw)
            except OSError as exc:
                raise UserError(f"cannot load transformers model '{self.path}': {exc}",
                                field=f"encoders.{self.name}") from None
        if self.options.dtype != "float32":
            model = model.to(torch_dtype(self.options.dtype))
        self.model = model.to(self.torch_device).eval()
        self._device_name = device_name(self.torch_device)
        if self.max_length is None:
            self.max_length = default_max_length(self.path, self.is_local, self.tokenizer)
        hidden = self.model.config.hidden_size
        self._dim = hidden * 2 if self.pooling == "mean_max" else hidden

    def fingerprint(self) -> str:
        o = self.options
        return fingerprint_of("hf", 1, weights_fingerprint(self.path, self.is_local, o.revision),
                              self.pooling, o.dtype, o.max_seq_length, o.normalize,
                              o.query_prefix, o.document_prefix, o.text_prefix)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        """The token path (encoders/token_path.py); where its safety net turns it off, the
        tokenizer is called per batch."""
        self.load()
        texts = self.with_prefix(texts, role)
        batching = self.options.batching(self.torch_device)  # the device's defaults
        if texts and self._tokens.ready(self.tokenizer, self.max_length, lambda: None):
            out = self._tokens.encode(texts, forward=self._forward, reference=self._reference,
                                      device=self.torch_device, counts_memo=self._counts,
                                      **batching)
            if out is not None:
                return out
        return self._encode_per_batch(texts, batching)

    def _reference(self, texts: list[str]) -> dict:
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt")

    def _forward(self, features: dict):
        import torch.nn.functional as F

        tokens = self.model(**features).last_hidden_state
        emb = pool(tokens, features["attention_mask"], self.pooling)
        if self.options.normalize:
            emb = F.normalize(emb, p=2, dim=1)
        return emb

    def _encode_per_batch(self, texts: list[str], batching: dict) -> np.ndarray:
        """The path before the token path: the tokenizer called per batch."""
        import torch

        lengths = model_lengths(self.tokenizer, texts, self.max_length, self._counts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for idx in trimmed(token_batches(lengths, batching["batch_size"],
                                              batching["batch_tokens"])):
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                batch = {k: v.to(self.torch_device) for k, v in batch.items()}
                emb = self._forward(batch)
                out[idx] = emb.float().cpu().numpy()
        return out

    def token_lengths(self, texts: list[str]) -> np.ndarray:
        self.load()
        return memo_counts(self.tokenizer, texts, self.max_length, self._counts)
