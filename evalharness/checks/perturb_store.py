"""Perturbed texts kept on disk, next to the embedding cache, so a warm run neither reads
WordNet (nltk's reader takes seconds to start) nor perturbs thousands of texts again.

A perturbed text is a pure function of (perturbation, text, rate, seed), of the code in
``perturb.py`` / ``wordnet.py`` and, for ``synonym``, of the WordNet files and the nltk
version. The key hashes all of them, so any change is a miss, never a stale text::

    CACHE_DIR/perturbed/<sha256 key>.json   # {"name", "n", "texts": [...]}

Writes are atomic (temporary file + rename); an unreadable or mismatched file is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

FORMAT = 1
_CODE = ("perturb.py", "wordnet.py")


@lru_cache(maxsize=1)
def _code_digest() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _CODE:
        h.update((here / name).read_bytes())
    return h.hexdigest()


def _wordnet_stamp() -> list:
    from importlib import metadata

    from evalharness.checks.wordnet import REQUIRED, wordnet_folder

    folder = wordnet_folder()
    files = []
    for name in (*REQUIRED, "index.sense"):
        try:
            st = (folder / name).stat()
            files.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            files.append((name, None, None))
    try:
        nltk = metadata.version("nltk")
    except metadata.PackageNotFoundError:
        nltk = None
    return [str(folder.resolve()), files, nltk]


def store_key(name: str, texts: list[str], rate: float, seed: int) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(hashlib.sha256(t.encode("utf-8")).digest())
    parts = [FORMAT, _code_digest(), name, repr(float(rate)), int(seed), len(texts),
             h.hexdigest(), _wordnet_stamp() if name == "synonym" else None]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


class PerturbStore:
    """``get`` / ``put`` of perturbed text lists under ``root`` (None: keeps nothing)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str, n: int) -> list[str] | None:
        if self.root is None:
            return None
        try:
            data = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        texts = data.get("texts") if isinstance(data, dict) else None
        if not isinstance(texts, list) or len(texts) != n or \
                not all(isinstance(t, str) for t in texts):
            return None
        return texts

    def put(self, key: str, name: str, texts: list[str]) -> None:
        if self.root is None:
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"name": name, "n": len(texts), "texts": texts}, fh,
                          ensure_ascii=False)
            os.replace(tmp, self._path(key))
        except OSError:
            pass  # a read-only cache only costs speed


def perturbed_texts(name: str, texts: list[str], rate: float, seed: int,
                    store: PerturbStore | None, compute) -> list[str]:
    """``compute()`` (the perturbed ``texts``), served from ``store`` when it has them."""
    if store is None or store.root is None:
        return compute()
    key = store_key(name, texts, rate, seed)
    found = store.get(key, len(texts))
    if found is not None:
        return found
    out = compute()
    store.put(key, name, out)
    return out
