"""Find datasets: --data-dir > EVALHARNESS_DATA > ../shared/datasets > user cache (+ Hub)."""

from __future__ import annotations

import os
from pathlib import Path

from evalharness.data import local
from evalharness.data.records import DatasetInfo
from evalharness.errors import UserError

LAYOUT_OF = {"stsb": "pairs", "sick": "pairs", "agnews": "labelled",
             "twentynewsgroups": "labelled", "msmarco": "retrieval"}


def user_data_dir() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("evalharness")) / "datasets"


def shared_data_dirs() -> list[Path]:
    here = Path(__file__).resolve().parents[2]  # repo root when running from a checkout
    cands = [Path.cwd() / ".." / "shared" / "datasets", here / ".." / "shared" / "datasets"]
    out = []
    for c in cands:
        c = c.resolve()
        if c.is_dir() and c not in out:
            out.append(c)
    return out


def search_dirs(data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """(origin, folder) in priority order."""
    if data_dir:
        return [("--data-dir", Path(data_dir))]
    out = []
    env = os.environ.get("EVALHARNESS_DATA")
    if env:
        out.append(("EVALHARNESS_DATA", Path(env)))
    out.extend(("shared", d) for d in shared_data_dirs())
    out.append(("user cache", user_data_dir()))
    return out


class DatasetResolver:
    """Loads each (dataset, split) once per run and records what was used."""

    def __init__(self, data_dir: str | Path | None = None, *, allow_hub: bool | None = None,
                 base_dir: Path | None = None, perturb_store=None):
        self.data_dir = data_dir
        self.dirs = search_dirs(data_dir)
        self.base_dir = base_dir or Path.cwd()
        self.allow_hub = (os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true")
                          if allow_hub is None else allow_hub)
        self._cache: dict = {}
        self.used: dict[str, DatasetInfo] = {}
        # where derived texts (robustness perturbations) are cached: a PerturbStore or None
        self.perturb_store = perturb_store

    def folder(self, ref) -> tuple[str, Path]:
        """(display name, folder) for a dataset name or ``{path: DIR}``."""
        path = getattr(ref, "path", None)
        if path is None and isinstance(ref, dict):
            path = ref.get("path")
        if path is not None:
            p = Path(path).expanduser()
            if not p.is_absolute():
                p = (self.base_dir / p).resolve()
            if not p.is_dir():
                raise UserError(f"dataset folder not found: {p}",
                                hint="'dataset: {path: DIR}' paths are relative to the suite file")
            return p.name, p
        name = str(ref)
        for _, d in self.dirs:
            if (d / name).is_dir():
                return name, d / name
        if self.allow_hub:
            from evalharness.data import hub

            if name in hub.HUB_SOURCES:
                target = self.dirs[-1][1] if not self.data_dir else Path(self.data_dir)
                return name, hub.pull(name, target)
        looked = "\n".join(f"    {d / name}  ({origin})" for origin, d in self.dirs)
        layout = LAYOUT_OF.get(name)
        files = local.LAYOUT_FILES[layout].format(split="test") if layout else \
            "pairs: {split}.jsonl; labelled: {split}.jsonl; retrieval: corpus.jsonl, " \
            "queries.jsonl, qrels.tsv"
        raise UserError(f"dataset '{name}' not found. Looked in:\n{looked}\n  expected files: "
                        f"{files}",
                        hint=f"pass --data-dir DIR, set EVALHARNESS_DATA, or run "
                             f"'evalharness data pull {name}' where the network allows")

    def _load(self, layout: str, ref, split: str):
        name, folder = self.folder(ref)
        key = (layout, str(folder), split)
        if key not in self._cache:
            loader = {"pairs": local.load_pairs, "labelled": local.load_labelled,
                      "retrieval": local.load_retrieval}[layout]
            data = loader(folder, split, name)
            self._cache[key] = data
            rec_key = name if split == "test" else f"{name}/{split}"
            if rec_key in self.used and self.used[rec_key].path != str(folder):
                rec_key = f"{rec_key}@{folder}"
            self.used[rec_key] = data.info
        return self._cache[key]

    def pairs(self, ref, split: str = "test"):
        return self._load("pairs", ref, split)

    def labelled(self, ref, split: str = "test"):
        return self._load("labelled", ref, split)

    def retrieval(self, ref, split: str = "test"):
        return self._load("retrieval", ref, split)

    def has_split(self, ref, split: str) -> bool:
        _, folder = self.folder(ref)
        return (folder / f"{split}.jsonl").exists()


def list_local(data_dir=None) -> list[dict]:
    """Datasets found in the search folders, with row counts (for ``data list``)."""
    out, seen = [], set()
    for origin, d in search_dirs(data_dir):
        if not d.is_dir():
            continue
        for sub in sorted(p for p in d.iterdir() if p.is_dir()):
            if sub.name in seen:
                continue
            seen.add(sub.name)
            files = {}
            for f in sorted(sub.rglob("*")):
                if f.is_file() and f.suffix in (".jsonl", ".tsv"):
                    with open(f, "rb") as fh:
                        rows = sum(1 for line in fh if line.strip())
                    files[str(f.relative_to(sub))] = rows
            out.append({"name": sub.name, "origin": origin, "path": str(sub), "files": files})
    return out
