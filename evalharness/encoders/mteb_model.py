"""Models of MTEB's registry (``mteb:MODEL_NAME``), loaded and called through mteb.

``mteb.get_model_meta(MODEL_NAME)`` gives the model's metadata and loader (e.g.
``SentenceTransformerEncoderWrapper`` with its prompts); ``meta.load_model`` builds it.
Offline, give the weights as a local folder with ``path``: the registry's loader is then
called with that folder instead of the Hub name (and HF_HUB_OFFLINE=1 while loading), e.g.
``mteb:sentence-transformers/all-MiniLM-L6-v2?path=/models/all-MiniLM-L6-v2``.

Encoding uses mteb's own protocol: ``model.encode(DataLoader, task_metadata=...,
prompt_type=...)``. Roles map to prompt types (query -> ``PromptType.query``, document ->
``PromptType.document``, text -> none), and the task metadata that selects a model's
task-specific prompts is that of ``task`` (an MTEB task name) when given, otherwise
``STSBenchmark`` for the text role and ``MSMARCO`` for queries and documents.

Fingerprint: the registry name and revision, the content hash of the local weights when
``path`` is given, the loader and its keyword arguments (prompts), the task names per
role and the prefixes.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from evalharness.encoders.base import BaseOptions, EncoderBase, fingerprint_of
from evalharness.encoders.weights import offline_env, resolve_model, weights_fingerprint
from evalharness.errors import UserError

DEFAULT_TASKS = {"text": "STSBenchmark", "query": "MSMARCO", "document": "MSMARCO"}


class MtebOptions(BaseOptions):
    path: str | None = Field(None, description="local folder with the model's weights")
    revision: str | None = None
    device: str = "auto"
    task: str | None = Field(None, description="MTEB task whose metadata selects prompts")


def _meta(name: str, revision: str | None, eid: str):
    import mteb

    try:
        return mteb.get_model_meta(name, revision)
    except KeyError as exc:
        raise UserError(f"'{name}' is not a model of mteb's registry: {exc.args[0]}",
                        field=f"encoders.{eid}",
                        hint="use a registry name (mteb.get_model_metas()), or st:PATH for a "
                             "local sentence-transformers folder") from None
    except ValueError as exc:
        raise UserError(str(exc), field=f"encoders.{eid}.revision") from None


class MtebEncoder(EncoderBase):
    Options = MtebOptions
    needs_target = True

    def __init__(self, name, target, options, *, spec_string=""):
        super().__init__(name, target, options, spec_string=spec_string)
        self.meta = _meta(target, options.revision, name)
        if self.meta.loader is None:
            raise UserError(f"mteb has no implementation to load '{target}'",
                            field=f"encoders.{name}")
        self.path, self.is_local = (resolve_model(options.path) if options.path
                                    else (target, False))
        if options.path and not self.is_local:
            raise UserError(f"path '{options.path}' does not exist", field=f"encoders.{name}.path")
        self.model = None
        self._tasks: dict[str, object] = {}
        self._dim = self.meta.embed_dim if isinstance(self.meta.embed_dim, int) else None

    def load(self) -> None:
        if self.model is not None:
            return
        meta = self.meta
        if self.is_local:
            meta = meta.model_copy(update={"name": self.path})
        with offline_env(self.is_local):
            try:
                from evalharness.encoders.device import resolve_device

                self.model = meta.load_model(device=resolve_device(
                    self.options.device, field=f"encoders.{self.name}.device"))
            except OSError as exc:
                raise UserError(f"cannot load mteb model '{self.target}': {exc}",
                                field=f"encoders.{self.name}",
                                hint="without network access give the weights folder: "
                                     f"mteb:{self.target}?path=DIR") from None

    def task_name(self, role: str) -> str:
        return self.options.task or DEFAULT_TASKS.get(role, "STSBenchmark")

    def _task_metadata(self, role: str):
        name = self.task_name(role)
        if name not in self._tasks:
            import mteb

            try:
                self._tasks[name] = mteb.get_task(name).metadata
            except KeyError as exc:
                raise UserError(f"'{name}' is not an MTEB task: {exc.args[0]}",
                                field=f"encoders.{self.name}.task") from None
        return self._tasks[name]

    def role_key(self, role: str) -> str:
        """One cache table for all roles only when no prompt or prefix tells them apart
        (a loaded model without any prompt, e.g. all-MiniLM-L6-v2)."""
        if super().role_key(role) != "any" or self.model is None:
            return role
        prompts = dict(getattr(self.model, "model_prompts", None) or {})
        prompts.update(getattr(getattr(self.model, "model", None), "prompts", None) or {})
        return "any" if not any(prompts.values()) else role

    def fingerprint(self) -> str:
        o = self.options
        weights = weights_fingerprint(self.path, True) if self.is_local else None
        loader = getattr(self.meta.loader, "__name__", str(self.meta.loader))
        return fingerprint_of("mteb", 1, self.meta.name, self.meta.revision, weights, loader,
                              sorted((k, str(v)) for k, v in self.meta.loader_kwargs.items()),
                              {r: self.task_name(r) for r in DEFAULT_TASKS},
                              o.query_prefix, o.document_prefix, o.text_prefix)

    def encode(self, texts: list[str], *, role: str) -> np.ndarray:
        self.load()
        from mteb.types import PromptType
        from torch.utils.data import DataLoader
        from datasets import Dataset

        prompt = {"query": PromptType.query, "document": PromptType.document}.get(role)
        loader = DataLoader(Dataset.from_dict({"text": self.with_prefix(texts, role)}),
                            batch_size=self.options.batch_size)
        out = self.model.encode(loader, task_metadata=self._task_metadata(role),
                                hf_split="test", hf_subset="default", prompt_type=prompt)
        if hasattr(out, "float"):  # a torch tensor
            out = out.float().cpu().numpy()
        arr = np.asarray(out, dtype=np.float32)
        if self._dim is None and arr.ndim == 2:
            self._dim = arr.shape[1]
        return arr


__all__ = ["MtebEncoder", "MtebOptions"]
