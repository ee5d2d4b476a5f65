"""Data of MTEB tasks (``type: mteb``): mteb's own loading from the Hugging Face Hub at the
task's pinned revision, or a local copy for offline runs.

``evalharness data pull mteb:TASK`` runs mteb's ``task.load_data()`` (the Hub download at
``task.metadata.dataset["revision"]`` plus the task's own ``dataset_transform``) and stores
the result, as mteb holds it in memory, under ``<data dir>/mteb/<TASK>/``:

- ``manifest.json``: task name, dataset path and revision, mteb version, the layout of
  ``task.dataset`` and the state of the task's random generators after loading (some
  tasks draw from them while transforming);
- ``data/...``: each ``datasets.Dataset`` / ``DatasetDict`` via ``save_to_disk``; for
  retrieval tasks ``corpus/``, ``queries/``, ``relevant_docs.json`` and ``top_ranked.json``
  per subset and split.

A run looks for that copy in every data folder (``--data-dir`` > ``$EVALHARNESS_DATA`` >
``../shared/datasets`` > the per-user cache) first; without one it calls mteb's
``task.load_data()`` (the Hub, or the ``datasets`` cache when offline). A copy whose
revision differs from the one mteb pins is refused. ``_hub_load`` is the single boundary
with the Hub (tests mock ``datasets`` beneath it).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from evalharness.errors import UserError

FORMAT = 1
SUBDIR = "mteb"


def copy_folders(task_name: str, data_dir=None) -> list[Path]:
    """Where a local copy of ``task_name`` may be, in search order."""
    from evalharness.data.resolve import search_dirs

    return [d / SUBDIR / task_name for _, d in search_dirs(data_dir)]


def pull_target(task_name: str, data_dir=None) -> Path:
    from evalharness.data.resolve import user_data_dir

    root = Path(data_dir) if data_dir else user_data_dir()
    return root / SUBDIR / task_name


def find_copy(task_name: str, data_dir=None) -> Path | None:
    for folder in copy_folders(task_name, data_dir):
        if (folder / "manifest.json").is_file():
            return folder
    return None


def get_task(name: str, *, field: str | None = None, **filters):
    """``mteb.get_task`` with a UserError (and mteb's own suggestion) for unknown names."""
    import mteb

    try:
        return mteb.get_task(name, **filters)
    except KeyError as exc:
        raise UserError(f"'{name}' is not an MTEB task: {exc.args[0] if exc.args else exc}",
                        field=field,
                        hint="list them with 'evalharness list mteb-tasks [--type TYPE]'") \
            from None
    except ValueError as exc:  # a language / subset filter that matches nothing
        raise UserError(f"MTEB task '{name}': {exc}", field=field) from None


# ----------------------------------------------------------------------------- rng states
def _rng_state(task) -> dict:
    ver, internal, gauss = task.rng_state.getstate()
    return {"random": [ver, list(internal), gauss],
            "numpy": task.np_rng.bit_generator.state}


def set_rng_state(task, state: dict | None) -> None:
    """Put ``task``'s generators where they were after loading (see ``_rng_state``)."""
    if not state:
        return
    ver, internal, gauss = state["random"]
    task.rng_state.setstate((ver, tuple(internal), gauss))
    task.np_rng.bit_generator.state = state["numpy"]


# ----------------------------------------------------------------------------- save / load
def _layout(dataset) -> str:
    from datasets import Dataset

    if not isinstance(dataset, dict):  # a DatasetDict is a dict
        raise UserError(f"cannot store mteb data of type {type(dataset).__name__}")
    first = next(iter(dataset.values()), None)
    if isinstance(first, Dataset):
        return "splits"  # {split: Dataset}
    inner = next(iter(first.values()), None) if isinstance(first, dict) else None
    if isinstance(inner, dict) and "corpus" in inner:
        return "retrieval"  # {subset: {split: {corpus, queries, relevant_docs, top_ranked}}}
    return "subsets"  # {subset: {split: Dataset}}


def _save_splits(splits: dict, folder: Path) -> list[str]:
    from datasets import DatasetDict

    DatasetDict(dict(splits)).save_to_disk(str(folder))
    return list(splits)


def save_copy(task, dest: Path, *, source: str) -> Path:
    """Store ``task.dataset`` (loaded) under ``dest``, atomically (a temporary folder beside
    it, renamed when complete)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    try:
        layout = _layout(task.dataset)
        entries: list[dict[str, Any]] = []
        data = tmp / "data"
        if layout == "splits":
            entries.append({"subset": None, "dir": "all",
                            "splits": _save_splits(task.dataset, data / "all")})
        else:
            for i, (subset, by_split) in enumerate(task.dataset.items()):
                sub = data / f"s{i}"
                if layout == "subsets":
                    entries.append({"subset": subset, "dir": sub.name,
                                    "splits": _save_splits(by_split, sub)})
                    continue
                names = []
                for j, (split, part) in enumerate(by_split.items()):
                    d = sub / f"p{j}"
                    part["corpus"].save_to_disk(str(d / "corpus"))
                    part["queries"].save_to_disk(str(d / "queries"))
                    (d / "relevant_docs.json").write_text(
                        json.dumps(part["relevant_docs"]), encoding="utf-8")
                    (d / "top_ranked.json").write_text(
                        json.dumps(part.get("top_ranked")), encoding="utf-8")
                    names.append({"split": split, "dir": d.name})
                entries.append({"subset": subset, "dir": sub.name, "splits": names})
        from mteb import __version__ as mteb_version

        manifest = {"format": FORMAT, "task": task.metadata.name,
                    "type": task.metadata.type, "dataset": dict(task.metadata.dataset),
                    "revision": task.metadata.revision, "mteb_version": mteb_version,
                    "source": source, "layout": layout, "entries": entries,
                    "seed": task.seed, "rng_state": _rng_state(task)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        os.chmod(tmp, 0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"unreadable local copy of an MTEB task: {exc}", source=str(path),
                        hint="pull it again: 'evalharness data pull mteb:TASK'") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"local copy written in format {manifest.get('format')!r}, this "
                        f"version reads format {FORMAT}", source=str(path),
                        hint=f"pull it again: 'evalharness data pull mteb:{manifest.get('task')}'")
    return manifest


def load_copy(task, folder: Path) -> dict:
    """Fill ``task.dataset`` from a local copy; returns its manifest."""
    from datasets import load_from_disk

    manifest = read_manifest(folder)
    name = task.metadata.name
    if manifest.get("task") != name:
        raise UserError(f"{folder} holds MTEB task '{manifest.get('task')}', not '{name}'",
                        source=str(folder / "manifest.json"))
    if manifest.get("revision") != task.metadata.revision:
        raise UserError(f"the local copy of '{name}' is of dataset revision "
                        f"{manifest.get('revision')}, but this mteb pins "
                        f"{task.metadata.revision}", source=str(folder / "manifest.json"),
                        hint=f"pull it again where the network allows: "
                             f"'evalharness data pull mteb:{name}'")
    data = folder / "data"
    layout = manifest["layout"]
    if layout == "splits":
        task.dataset = load_from_disk(str(data / "all"))
    else:
        task.dataset = {}
        for entry in manifest["entries"]:
            sub = data / entry["dir"]
            if layout == "subsets":
                task.dataset[entry["subset"]] = load_from_disk(str(sub))
                continue
            parts = {}
            for sp in entry["splits"]:
                d = sub / sp["dir"]
                parts[sp["split"]] = {
                    "corpus": load_from_disk(str(d / "corpus")),
                    "queries": load_from_disk(str(d / "queries")),
                    "relevant_docs": json.loads((d / "relevant_docs.json").read_text("utf-8")),
                    "top_ranked": json.loads((d / "top_ranked.json").read_text("utf-8")),
                }
            task.dataset[entry["subset"]] = parts
    task.data_loaded = True
    return manifest


# ----------------------------------------------------------------------------- the Hub
def _hub_load(task) -> None:
    """mteb's own loading (the Hub at the pinned revision, or the ``datasets`` cache)."""
    task.load_data()
    if hasattr(task, "convert_v1_dataset_format_to_v2"):  # retrieval tasks of mteb 1.x style
        task.convert_v1_dataset_format_to_v2(num_proc=None)


def _hub_failure(task, exc: Exception, data_dir=None) -> UserError:
    name = task.metadata.name
    looked = "\n".join(f"    {f}" for f in copy_folders(name, data_dir))
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return UserError(
        f"MTEB task '{name}': no local copy, and mteb could not load "
        f"{task.metadata.dataset['path']}@{task.metadata.revision[:8]} from the Hugging "
        f"Face Hub ({type(exc).__name__}: {first[:300]}). Looked for a copy in:\n{looked}",
        hint=f"where the network allows, run 'evalharness data pull mteb:{name}' "
             f"(add --data-dir DIR to choose the folder), then run offline")


def load_task_data(task, data_dir=None) -> dict:
    """Load ``task``'s data: a local copy when there is one, else mteb's own loading.

    Returns where it came from: ``{"source": "local"|"hub", "path": ..., "rng_state": ...}``.
    """
    folder = find_copy(task.metadata.name, data_dir)
    if folder is not None:
        manifest = load_copy(task, folder)
        if manifest.get("seed") == task.seed:
            set_rng_state(task, manifest.get("rng_state"))
        return {"source": "local", "path": str(folder), "rng_state": _rng_state(task)}
    try:
        _hub_load(task)
    except UserError:
        raise
    except Exception as exc:  # offline, missing, or a failure inside the download
        raise _hub_failure(task, exc, data_dir) from None
    return {"source": "hub",
            "path": f"hf://datasets/{task.metadata.dataset['path']}@{task.metadata.revision}",
            "rng_state": _rng_state(task)}


def pull(task_name: str, data_dir=None) -> Path:
    """``evalharness data pull mteb:TASK``: mteb's own loading, stored locally."""
    task = get_task(task_name)
    try:
        _hub_load(task)
    except UserError:
        raise
    except Exception as exc:
        raise _hub_failure(task, exc, data_dir) from None
    src = f"hf://datasets/{task.metadata.dataset['path']}@{task.metadata.revision}"
    return save_copy(task, pull_target(task.metadata.name, data_dir), source=src)
