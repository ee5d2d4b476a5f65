"""Find datasets: --data-dir > EVALHARNESS_DATA > ../shared/datasets > user cache (+ Hub)."""

from __future__ import annotations

import os
from pathlib import Path

from evalharness.data import local
from evalharness.data.records import DatasetInfo
from evalharness.errors import UserError
from evalharness.registry import suggest

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
        from evalharness.data import hub

        if name in hub.HUB_SOURCES:  # only names that 'data pull' knows are offered to it
            hint = (f"pass --data-dir DIR, set EVALHARNESS_DATA, or run 'evalharness data "
                    f"pull {name}' where the network allows")
        else:
            hint = (f"pass --data-dir DIR, set EVALHARNESS_DATA, copy a folder in with "
                    f"'evalharness data import PATH --as {name}', or give "
                    f"'dataset: {{path: DIR}}' in the suite ('data pull' knows only "
                    f"{', '.join(hub.HUB_SOURCES)})")
            close = suggest(name, {*hub.HUB_SOURCES, *(p.name for _, d in self.dirs
                                                       if d.is_dir() for p in d.iterdir()
                                                       if p.is_dir())})
            hint = f"{close} " + hint if close else hint
        raise UserError(f"dataset '{name}' not found. Looked in:\n{looked}\n  expected files: "
                        f"{files}", hint=hint)

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


# the header line of a qrels file, as local.load_retrieval skips it
QRELS_HEADER_FIRST = (b"query-id", b"query_id", b"qid")


def count_rows(path: Path) -> int:
    """Data rows of a .jsonl or .tsv file: non-blank lines, without a qrels header line."""
    rows, first = 0, True
    with open(path, "rb") as fh:
        for line in fh:
            if first and path.suffix == ".tsv":
                head = line.split(b"\t")[0].split()[0] if line.strip() else b""
                if head in QRELS_HEADER_FIRST:
                    first = False
                    continue
            first = False
            if line.strip():
                rows += 1
    return rows


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
                    files[str(f.relative_to(sub))] = count_rows(f)
            out.append({"name": sub.name, "origin": origin, "path": str(sub), "files": files})
    return out
