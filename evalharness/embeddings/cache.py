"""Content-addressed on-disk embedding cache.

Key: (encoder fingerprint, role key, sha256(text)). Layout::

    CACHE_DIR/v1/<fingerprint>/<role>/<shard>.npz   # keys: (n, 32) uint8, vecs: (n, dim) f32
    CACHE_DIR/v1/<fingerprint>/tokens/<shard>.npz   # token counts, (n, 1) f32 (facts.py)
    CACHE_DIR/v1/<fingerprint>/meta.json            # facts of the model (max_seq_length)

Each write adds one shard, written to a temporary file and renamed into place (atomic);
a folder with many shards is compacted into one. Loading reads whole arrays, never one
file per text.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from pathlib import Path

import numpy as np

FORMAT = "v1"
MAX_SHARDS = 8


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def default_cache_dir() -> Path:
    env = os.environ.get("EVALHARNESS_CACHE")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("evalharness")) / "embeddings"


class EmbeddingCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()

    def _dir(self, fingerprint: str, role: str) -> Path:
        return self.root / FORMAT / fingerprint / role

    def meta(self, fingerprint: str) -> dict:
        """Facts about the model of ``fingerprint`` saved by an earlier run ({} if none)."""
        try:
            data = json.loads((self.root / FORMAT / fingerprint / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update_meta(self, fingerprint: str, facts: dict) -> None:
        current = self.meta(fingerprint)
        if all(current.get(k) == v for k, v in facts.items()):
            return
        folder = self.root / FORMAT / fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump({**current, **facts}, fh)
            os.replace(tmp, folder / "meta.json")
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def _load_all(self, folder: Path) -> tuple[np.ndarray, np.ndarray] | None:
        for _attempt in range(3):
            shards = sorted(folder.glob("*.npz")) if folder.exists() else []
            keys, vecs, vanished = [], [], False
            for shard in shards:
                try:
                    with np.load(shard) as z:
                        keys.append(z["keys"])
                        vecs.append(z["vecs"])
                except FileNotFoundError:
                    vanished = True  # compacted away by another process: list again
                    break
                except (OSError, ValueError, KeyError, EOFError):
                    continue  # a damaged shard is a miss, never a wrong vector
            if not vanished:
                break
        if not keys:
            return None
        return np.concatenate(keys), np.concatenate(vecs)

    def lookup(self, fingerprint: str, role: str, digests: list[bytes]):
        """Return (hit mask, vectors for hits in order of ``digests`` or None)."""
        found = self._load_all(self._dir(fingerprint, role))
        mask = np.zeros(len(digests), dtype=bool)
        if found is None:
            return mask, None
        keys, vecs = found
        # raw 32-byte keys (a numpy "S32" view would drop trailing NUL bytes of a digest)
        blob = np.ascontiguousarray(keys).tobytes()
        index = {blob[i * 32:(i + 1) * 32]: i for i in range(len(keys))}
        rows = [index.get(d, -1) for d in digests]
        rows = np.asarray(rows, dtype=np.int64)
        mask = rows >= 0
        return mask, vecs[rows[mask]]

    def store(self, fingerprint: str, role: str, digests: list[bytes], vecs: np.ndarray) -> None:
        if len(digests) == 0:
            return
        folder = self._dir(fingerprint, role)
        folder.mkdir(parents=True, exist_ok=True)
        keys = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(-1, 32)
        self._write(folder, keys, np.asarray(vecs, dtype=np.float32))
        if len(list(folder.glob("*.npz"))) > MAX_SHARDS:
            self._compact(folder)

    def _write(self, folder: Path, keys: np.ndarray, vecs: np.ndarray) -> Path:
        final = folder / f"{uuid.uuid4().hex}.npz"
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, keys=keys, vecs=vecs)
            os.replace(tmp, final)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return final

    def _compact(self, folder: Path) -> None:
        old = sorted(folder.glob("*.npz"))
        found = self._load_all(folder)
        if found is None:
            return
        keys, vecs = found
        _, first = np.unique(np.ascontiguousarray(keys).view("V32").ravel(), return_index=True)
        self._write(folder, keys[first], vecs[first])
        for shard in old:
            shard.unlink(missing_ok=True)
