"""MTEB results both ways: ``evalharness export mteb`` and ``evalharness import mteb``.

**Export** writes MTEB's results-repository layout, one folder per encoder::

    DIR/<org>__<model>/<revision>/<TaskName>.json     (mteb.TaskResult.to_disk)
    DIR/<org>__<model>/<revision>/model_meta.json     (mteb.ModelMeta.to_dict)

for every result of the run that *is* an MTEB result:

- ``type: mteb`` tasks: mteb's own ``TaskResult`` (kept in the result's details), written
  back unchanged; a run with ``limit`` is skipped (a part of the data is not the task);
- the shipped ``sts`` tasks when their data is MTEB's STSBenchmark / SICK-R test split:
  the dataset's row count, distinct pairs, distinct texts per column and gold-score
  min/mean/max must equal the descriptive statistics mteb pins for that split (read from
  the data folder recorded in results.json, after checking its checksum), and the texts
  may differ by at most 0.1% of their characters (whitespace); or the recorded checksum is
  that of a copy verified so (``VERIFIED_COPIES``). Such a task is written with the scores
  it computed (``cosine_spearman`` = ``main_score``, ``cosine_pearson``). The shipped
  SICK-R copy (4,927 pairs, SemEval-2014 test) is *not* MTEB's SICK-R (9,927 pairs) and is
  skipped with that reason.

The model folder is named from the encoder's model (``model.name`` in results.json, the
spec's target, or ``--model``), the revision from its revision (or ``--revision``, else
mteb's ``no_revision_available``). mteb reads the folder back with
``TaskResult.from_disk`` and ``ResultCache(DIR/..).load_results`` / ``mteb.load_results``
(a ``results/`` folder under ``MTEB_CACHE``).

**Import** reads MTEB result files (a checkout of the results repository, a model or
revision folder of it, or single ``TaskName.json`` files) of one model into a
results.json (schema 1): one encoder (the model), one ``mteb`` task per MTEB task (id =
the task name, or the suite's task id when ``--suite`` maps it: a ``type: mteb`` task
with that ``task:``, or a shipped ``sts`` task on STS-B / SICK-R), metrics as a
``type: mteb`` task reports them (``main_score``, ``accuracy``, ...). Scores are filtered
to each task's evaluation splits and subsets as the leaderboard does
(``TaskResult.validate_and_filter_scores``) where mteb knows the task. There are no
per-item arrays, so ``compare`` says "no paired test" and ``gate --baseline`` judges on
the tolerance.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from evalharness.errors import UserError
from evalharness.results import ComponentResult, EncoderRecord, RunResults, save_results

NO_REVISION = "no_revision_available"  # mteb's folder name for an unknown revision
# shipped STS datasets -> the MTEB task whose test split they may be
STS_TASKS = {"stsb": "STSBenchmark", "sick": "SICK-R"}
# checksums (evalharness.data.local) of copies whose equality with MTEB's split was
# verified as described above: ../shared/datasets/stsb/test.jsonl (1,379 pairs; 13 of
# 147,886 characters differ, all whitespace; MiniLM reproduces MTEB's published 0.82032)
VERIFIED_COPIES = {
    "sha256:56eb9a320a40e1851ca30b04476e33303465d10276b3d2cbfbfffd5846a6bf43": "STSBenchmark",
}
CHAR_TOLERANCE = 0.001
# the embedded model of the ``minilm`` spec, by its Hub name
KNOWN_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}


@dataclass
class ExportItem:
    encoder: str
    component: str
    task: str | None
    path: Path | None = None
    note: str = ""
    result: Any = None  # the mteb TaskResult to write


@dataclass
class ExportReport:
    items: list[ExportItem] = field(default_factory=list)
    folders: dict[str, Path] = field(default_factory=dict)  # encoder -> revision folder

    @property
    def written(self) -> list[ExportItem]:
        return [i for i in self.items if i.path is not None]

    def lines(self) -> list[str]:
        out = []
        for i in self.items:
            if i.path is not None:
                out.append(f"{i.encoder}/{i.component} -> {i.path}"
                           + (f" ({i.note})" if i.note else ""))
            else:
                out.append(f"{i.encoder}/{i.component}: skipped: {i.note}")
        return out


def _quiet():
    """mteb logs and warns a lot (superseded tasks, deprecations): keep the CLI readable."""
    logging.getLogger("mteb").setLevel(logging.ERROR)
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore")
    return ctx


# ----------------------------------------------------------------------------- STS-B / SICK-R
def _sts_stats(folder: Path, split: str) -> tuple[dict, str]:
    from evalharness.data.local import load_pairs

    data = load_pairs(folder, split, folder.name)
    scores = [float(x) for x in data.scores]
    chars = sum(len(a) + len(b) for a, b in zip(data.sentence1, data.sentence2))
    return ({"num_samples": len(scores),
             "unique_pairs": len(set(zip(data.sentence1, data.sentence2))),
             "unique_texts1": len(set(data.sentence1)),
             "unique_texts2": len(set(data.sentence2)),
             "min_score": min(scores), "avg_score": sum(scores) / len(scores),
             "max_score": max(scores), "number_of_characters": chars},
            data.info.checksum)


def _mteb_sts_stats(task_name: str, split: str) -> dict | None:
    import mteb

    stats = (mteb.get_task(task_name).metadata.descriptive_stats or {}).get(split)
    if not stats:
        return None
    return {"num_samples": stats["num_samples"], "unique_pairs": stats["unique_pairs"],
            "unique_texts1": stats["text1_statistics"]["unique_texts"],
            "unique_texts2": stats["text2_statistics"]["unique_texts"],
            "min_score": stats["label_statistics"]["min_score"],
            "avg_score": stats["label_statistics"]["avg_score"],
            "max_score": stats["label_statistics"]["max_score"],
            "number_of_characters": stats["number_of_characters"]}


def sts_equivalent(dataset_name: str | None, record: dict | None) -> tuple[str | None, str]:
    """(MTEB task, why) when a shipped STS dataset of a run is that task's split, else
    (None, why not)."""
    task_name = STS_TASKS.get(dataset_name or "")
    if task_name is None or not record:
        return None, f"dataset '{dataset_name}' is not one MTEB evaluates"
    split = record.get("split", "test")
    ours_used = record.get("rows_used", record.get("rows"))
    theirs = _mteb_sts_stats(task_name, split)
    if theirs is None:
        return None, f"MTEB's {task_name} has no split '{split}'"
    if record.get("rows") != theirs["num_samples"] or ours_used != record.get("rows"):
        return None, (f"{ours_used:,} of {record.get('rows'):,} pairs used; MTEB's "
                      f"{task_name} {split} split has {theirs['num_samples']:,}")
    if VERIFIED_COPIES.get(record.get("checksum")) == task_name:
        return task_name, f"data verified equal to MTEB's {task_name} {split} split"
    folder = Path(record.get("path") or "")
    if not folder.is_dir():
        return None, (f"cannot verify that '{dataset_name}' is MTEB's {task_name}: its "
                      f"folder {folder} is gone")
    try:
        ours, checksum = _sts_stats(folder, split)
    except UserError as exc:
        return None, f"cannot read {folder}: {exc}"
    if checksum != record.get("checksum"):
        return None, f"{folder} changed since the run (checksum differs)"
    for key in ("num_samples", "unique_pairs", "unique_texts1", "unique_texts2"):
        if ours[key] != theirs[key]:
            return None, f"{key} {ours[key]} vs MTEB's {theirs[key]}"
    for key in ("min_score", "avg_score", "max_score"):
        if abs(ours[key] - theirs[key]) > 1e-9:
            return None, f"gold {key} {ours[key]:.6f} vs MTEB's {theirs[key]:.6f}"
    diff = abs(ours["number_of_characters"] - theirs["number_of_characters"])
    if diff > CHAR_TOLERANCE * theirs["number_of_characters"]:
        return None, f"texts differ: {diff} characters"
    return task_name, (f"same pairs and gold scores as MTEB's {task_name} {split} split"
                       + (f"; {diff} characters differ" if diff else ""))


# ----------------------------------------------------------------------------- export
def model_identity(results: RunResults, eid: str, *, model: str | None = None,
                   revision: str | None = None) -> tuple[str, str]:
    """(model name, revision) of encoder ``eid`` for the results-repository folders."""
    rec = results.encoders[eid]
    facts = rec.model or {}
    name = model or facts.get("name")
    cfg = ((results.suite_config or {}).get("encoders") or {}).get(eid) or {}
    if not name:
        name = cfg.get("target") or rec.spec.partition(":")[2].partition("?")[0] or eid
    name = KNOWN_MODELS.get(name, name)
    if Path(name).is_absolute() or name.startswith("."):
        raise UserError(f"encoder '{eid}' is a local model ({name}): MTEB names models "
                        "ORG/NAME", field="--model",
                        hint=f"give the name to publish under: --model {eid}=ORG/NAME")
    rev = revision or facts.get("revision") or (cfg.get("options") or {}).get("revision") \
        or NO_REVISION
    return name, str(rev)


def _model_meta(name: str, revision: str):
    import mteb
    from mteb.models.model_meta import ModelMeta

    try:
        meta = mteb.get_model_meta(name)
        return meta.model_copy(update={"revision": revision})
    except Exception:  # not in mteb's registry: an empty meta with the name
        return ModelMeta.create_empty(overwrites={"name": name, "revision": revision})


def _sts_task_result(task_name: str, comp: ComponentResult, split: str):
    import mteb
    from mteb.results import TaskResult

    task = mteb.get_task(task_name)
    scores = {k: m.value for k, m in comp.metrics.items() if m.value is not None}
    scores["main_score"] = scores[task.metadata.main_score]
    return TaskResult.from_task_results(task, {split: {"default": scores}},
                                        evaluation_time=comp.seconds)


def _parse_pairs(values: list[str] | None, encoders: list[str], flag: str) -> dict[str, str]:
    """``--model NAME`` (one encoder) or ``--model ID=NAME`` (repeatable)."""
    out: dict[str, str] = {}
    for v in values or []:
        eid, sep, val = v.partition("=")
        if not sep:
            if len(encoders) != 1:
                raise UserError(f"{flag} {v}: the run has {len(encoders)} encoders "
                                f"({', '.join(encoders)})", field=flag,
                                hint=f"give {flag} ID=VALUE for each")
            eid, val = encoders[0], v
        if eid not in encoders:
            raise UserError(f"{flag} names encoder '{eid}', which is not in the run",
                            field=flag, hint=f"encoders: {', '.join(encoders)}")
        out[eid] = val
    return out


def export_mteb(results: RunResults, out_dir: str | Path, *, models: list[str] | None = None,
                revisions: list[str] | None = None,
                encoders: list[str] | None = None) -> ExportReport:
    """Write every MTEB result of ``results`` in the results-repository layout."""
    from mteb.results import TaskResult

    out_dir = Path(out_dir)
    ok = [e for e, r in results.encoders.items() if not r.error]
    if encoders:
        unknown = [e for e in encoders if e not in results.encoders]
        if unknown:
            raise UserError(f"--encoder names {unknown[0]!r}, not an encoder of the run",
                            hint=f"encoders: {', '.join(results.encoders)}")
        ok = [e for e in ok if e in encoders]
    names = _parse_pairs(models, ok, "--model")
    revs = _parse_pairs(revisions, ok, "--revision")
    report = ExportReport()
    ctx = _quiet()
    try:
        for eid in ok:
            name, rev = model_identity(results, eid, model=names.get(eid),
                                       revision=revs.get(eid))
            meta = _model_meta(name, rev)
            folder = out_dir / meta.model_name_as_path() / rev
            written: dict[str, ExportItem] = {}
            for cid, comp in results.results.get(eid, {}).items():
                item = _export_one(results, eid, cid, comp, folder)
                if item is None:
                    continue
                if item.path is not None and item.task in written:
                    prev = written[item.task]
                    if comp.type != "mteb":  # a type: mteb task wins over a shipped one
                        item.path, item.note = None, (f"{item.task} also exported from "
                                                      f"'{prev.component}'")
                        report.items.append(item)
                        continue
                    prev.path, prev.note = None, f"{item.task} exported from '{cid}' instead"
                if item.path is not None:
                    written[item.task] = item
                report.items.append(item)
            for item in written.values():
                item.path.parent.mkdir(parents=True, exist_ok=True)
                item.result.to_disk(item.path)
                TaskResult.from_disk(item.path)  # mteb reads it back
            if written:
                (folder / "model_meta.json").write_text(
                    json.dumps(meta.to_dict(), default=str, indent=4), encoding="utf-8")
                report.folders[eid] = folder
    finally:
        ctx.__exit__(None, None, None)
    return report


def _export_one(results: RunResults, eid: str, cid: str, comp: ComponentResult,
                folder: Path) -> ExportItem | None:
    from mteb.results import TaskResult

    if comp.type == "mteb":
        raw = (comp.details or {}).get("mteb_result")
        task = (comp.details or {}).get("mteb_task")
        item = ExportItem(eid, cid, task)
        if comp.error or raw is None:
            item.note = comp.error or "no mteb result kept"
            return item
        if (comp.details or {}).get("limit"):
            item.note = f"limit: {comp.details['limit']} (a part of the task's data)"
            return item
        item.result = TaskResult.model_validate(raw)
        item.path = folder / f"{item.result.task_name}.json"
        return item
    if comp.type == "sts" and comp.kind == "task":
        rec = results.datasets.get(comp.dataset or "")
        task, why = sts_equivalent(comp.dataset, rec)
        item = ExportItem(eid, cid, task, note=why)
        if comp.error:
            item.note = comp.error
            return item
        if task is None:
            return item
        item.result = _sts_task_result(task, comp, (rec or {}).get("split", "test"))
        item.path = folder / f"{task}.json"
        return item
    return None


# ----------------------------------------------------------------------------- import
def _task_files(path: Path, model: str, revision: str | None) -> tuple[list[Path], str]:
    """The task result files of ``model`` under ``path`` and the revision they are of."""
    model_dir_name = model.replace("/", "__").replace(" ", "_")
    if path.is_file():
        return [path], revision or NO_REVISION
    if not path.is_dir():
        raise UserError(f"not found: {path}", field="PATH",
                        hint="give a results-repository checkout, a model or revision "
                             "folder of it, or TaskName.json files")

    def task_jsons(d: Path) -> list[Path]:
        return sorted(f for f in d.glob("*.json") if f.name != "model_meta.json")

    # a revision folder itself
    if task_jsons(path) and path.parent.name == model_dir_name:
        return task_jsons(path), revision or path.name
    if task_jsons(path) and not any(p.is_dir() for p in path.iterdir()):
        return task_jsons(path), revision or path.name
    # a model folder, or a checkout (results/<model>/<revision>/)
    if path.name == model_dir_name:
        model_dirs = [path]
    else:
        model_dirs = [p for p in [path / model_dir_name, path / "results" / model_dir_name,
                                  path / "remote" / "results" / model_dir_name] if p.is_dir()]
        if not model_dirs:
            model_dirs = sorted(p for p in path.rglob(model_dir_name) if p.is_dir())
    if not model_dirs:
        raise UserError(f"no results of model '{model}' under {path} (looked for a folder "
                        f"named {model_dir_name})", field="--model",
                        hint="MTEB names folders ORG__NAME/REVISION; check --model")
    revs = {}
    for md in model_dirs:
        for rd in sorted(p for p in md.iterdir() if p.is_dir()):
            if task_jsons(rd):
                revs.setdefault(rd.name, rd)
    if not revs:
        raise UserError(f"no task result files under {model_dirs[0]}", field="PATH")
    if revision is not None:
        if revision not in revs:
            raise UserError(f"model '{model}' has no results of revision '{revision}'",
                            field="--revision", hint=f"revisions: {', '.join(revs)}")
        return task_jsons(revs[revision]), revision
    if len(revs) > 1:
        raise UserError(f"model '{model}' has results of {len(revs)} revisions under "
                        f"{model_dirs[0]}", field="--revision",
                        hint=f"choose one: --revision {' | '.join(revs)}")
    rev, folder = next(iter(revs.items()))
    return task_jsons(folder), rev


def _suite_ids(suite_path: str | None) -> dict[str, tuple[str, str]]:
    """MTEB task name -> (the suite's task id, type) for ``--suite``."""
    if not suite_path:
        return {}
    from evalharness.suite import load_suite

    suite = load_suite(suite_path)
    out: dict[str, tuple[str, str]] = {}
    for cid, (kind, cfg) in suite.components().items():
        if kind != "task":
            continue
        if cfg.type == "mteb":
            out.setdefault(cfg.task, (cid, "mteb"))
        elif cfg.type == "sts" and isinstance(cfg.dataset, str) and cfg.dataset in STS_TASKS:
            out.setdefault(STS_TASKS[cfg.dataset], (cid, "sts"))
    return out


def import_mteb(paths: list[str | Path], *, model: str, revision: str | None = None,
                encoder_id: str | None = None, suite: str | None = None) -> RunResults:
    """MTEB result files of ``model`` -> a results.json (schema 1) of one encoder."""
    import mteb
    from mteb.results import TaskResult

    from evalharness import __version__
    from evalharness.tasks.mteb_task import metrics_from_scores

    files: list[Path] = []
    rev = revision
    for p in paths:
        found, r = _task_files(Path(p), model, revision)
        files += found
        rev = rev or r
    rev = rev or NO_REVISION
    ids = _suite_ids(suite)
    eid = encoder_id or model.rsplit("/", 1)[-1]
    comps: dict[str, ComponentResult] = {}
    datasets: dict[str, dict[str, Any]] = {}
    ctx = _quiet()
    try:
        for f in files:
            try:
                tr = TaskResult.from_disk(f)
            except Exception as exc:  # not an MTEB result file
                raise UserError(f"not an MTEB result file: {type(exc).__name__}: "
                                f"{str(exc)[:200]}", source=str(f)) from None
            note = None
            try:
                task = mteb.get_task(tr.task_name)
            except KeyError:
                task, note = None, "task unknown to this mteb: scores kept as they are"
            if task is not None:
                try:
                    tr = tr.validate_and_filter_scores(task=task)
                except Exception as exc:  # incomplete: keep what is there
                    note = f"not all of the task's splits/subsets: {str(exc)[:160]}"
            cid, ctype = ids.get(tr.task_name, (tr.task_name, "mteb"))
            main = "main_score"
            metrics = metrics_from_scores(tr.scores,
                                          main_score=task.metadata.main_score if task else None)
            if "main_score" not in metrics:
                raise UserError(f"{tr.task_name}: no main_score in the scores", source=str(f))
            if ctype == "sts":
                main = task.metadata.main_score if task else "cosine_spearman"
            raw = json.loads(tr.model_dump_json(exclude={"evaluation_phases"}))
            details = {"mteb_task": tr.task_name,
                       "mteb_type": task.metadata.type if task else None,
                       "mteb_main_score": task.metadata.main_score if task else None,
                       "dataset_revision": tr.dataset_revision,
                       "mteb_version": tr.mteb_version, "splits": list(tr.scores),
                       "subsets": sorted({s.get("hf_subset", "default")
                                          for lst in tr.scores.values() for s in lst}),
                       "imported_from": str(f), "mteb_result": raw}
            if note:
                details["note"] = note
            dname = f"mteb:{tr.task_name}"
            comps[cid] = ComponentResult(type=ctype, kind="task", dataset=dname,
                                         main_metric=main, metrics=metrics, details=details,
                                         seconds=float(tr.evaluation_time or 0.0))
            datasets[dname] = {"split": ",".join(tr.scores), "rows": None, "checksum": None,
                               "layout": "mteb", "path": str(f), "mteb_task": tr.task_name,
                               "revision": tr.dataset_revision}
    finally:
        ctx.__exit__(None, None, None)
    if not comps:
        raise UserError(f"no MTEB result files of model '{model}' found", field="PATH")
    record = EncoderRecord(spec=f"mteb-results:{model}@{rev}",
                           model={"name": model, "revision": rev})
    return RunResults(
        suite=f"mteb-results:{model}",
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        environment={"evalharness": __version__, "mteb": mteb.__version__,
                     "imported": {"from": [str(p) for p in paths], "model": model,
                                  "revision": rev, "files": len(files)}},
        encoders={eid: record}, datasets=datasets, results={eid: comps}, passed=True)


def import_to_file(paths, output: str | Path, **kwargs) -> RunResults:
    res = import_mteb(paths, **kwargs)
    save_results(res, output)
    return res
