"""Any MTEB task by name (``type: mteb``), scored by mteb's own evaluators on the harness's
vectors.

```yaml
tasks:
  banking: {type: mteb, task: Banking77Classification}
  sts22:   {type: mteb, task: STS22, languages: [deu, eng], splits: [test]}
```

How it runs:

* *load*: ``mteb.get_task(task)`` (subsets narrowed by ``languages``/``subsets``, splits by
  ``split``/``splits``; default: the task's ``eval_splits`` and every subset), then its
  data: a local copy stored by ``evalharness data pull mteb:TASK`` or mteb's own
  ``task.load_data()`` (the Hub at the pinned revision; see ``data/mteb_data.py``).
* *plan*: ``needs()`` lists exactly the texts mteb's evaluator will ask the model for, by
  role (``prompt_type`` query -> ``query``, document -> ``document``, none -> ``text``),
  worked out with mteb's own helpers: the union of the few-shot draws for classification
  (``_undersample_data``), ``title + " " + text`` documents and instruction-joined queries
  for retrieval (``_retrieval_texts``), the seeded document sample for clustering (the
  task's generator replayed on a copy), both columns for STS and pair classification. So
  the texts go through the harness's encoder, cache and de-duplication like any task's.
* *evaluate*: ``mteb.evaluate`` (no result cache, no CO2 tracker) on a fresh copy of the
  task (fresh generators, as in an ``mteb run``) holding the loaded data, with a model
  whose ``encode`` returns the run's vectors of the texts it is given, and cosine
  similarity (mteb's ``cos_sim`` / ``pairwise_cos_sim``, as for a model without other
  metadata). A text that was not planned is an internal error, never a silent re-encode.

Metrics: every numeric score of mteb's result (``main_score``, ``accuracy``, ``f1``,
``ndcg_at_10``, ...), the mean over the evaluated (split, subset) entries, as mteb's
``TaskResult.get_score`` averages the main score. With several entries each also appears
as ``SPLIT.SUBSET.NAME`` (only the parts that vary). ``X_std`` becomes the ``std`` of ``X``;
classification metrics carry the std over mteb's experiments. ``n`` is the number of
evaluated items (test texts, pairs, clustered documents, queries with judgements). No
bootstrap CI: mteb returns no per-item scores. mteb's whole result is kept in
``details["mteb_result"]`` (what ``evalharness export mteb`` writes).

Supported: text-only tasks of type STS, Classification, Clustering (fast and legacy),
Retrieval and PairClassification. Other types are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import defaultdict
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from evalharness.components import ComponentConfig, DatasetRef, TextNeed
from evalharness.errors import EvalHarnessError, UserError
from evalharness.results import Metric
from evalharness.tasks.base import Task

SUPPORTED_TYPES = ("STS", "Classification", "Clustering", "Retrieval", "PairClassification")
ROLE_OF_PROMPT = {"query": "query", "document": "document", None: "text"}

# the scores mteb's evaluators return, by task type (``metric_names`` before any run)
_STS = ["pearson", "spearman", "cosine_pearson", "cosine_spearman", "manhattan_pearson",
        "manhattan_spearman", "euclidean_pearson", "euclidean_spearman"]
_CLASSIFICATION = ["accuracy", "f1", "f1_weighted", "precision", "precision_weighted",
                   "recall", "recall_weighted", "ap", "ap_weighted"]
_PAIR = [f"{s}_{m}" for s in ("similarity", "cosine", "manhattan", "euclidean", "dot")
         for m in ("accuracy", "f1", "precision", "recall", "ap")] + \
        [f"max_{m}" for m in ("accuracy", "f1", "precision", "recall", "ap")]
_IR = ("ndcg", "map", "recall", "precision", "mrr")


def _retrieval_names(k_values) -> list[str]:
    out = [f"{m}_at_{k}" for m in _IR for k in k_values]
    out.append("accuracy")
    out += [f"nauc_{m}_at_{k}_{s}" for m in _IR for k in k_values
            for s in ("max", "std", "diff1")]
    out += [f"hit_rate_at_{k}" for k in k_values]
    return out


class MtebConfig(ComponentConfig):
    type: Literal["mteb"] = "mteb"
    task: str = Field(description="an MTEB task name (evalharness list mteb-tasks)")
    dataset: DatasetRef | None = Field(None, description="not used: mteb tasks bring their data")
    split: str | None = Field(None, description="one split to evaluate (default: the task's "
                                                "eval_splits)")
    splits: list[str] | None = Field(None, description="splits to evaluate (default: the "
                                                       "task's eval_splits)")
    languages: list[str] | None = Field(None, description="ISO 639-3 codes (eng, deu) or "
                                                          "language-script codes (eng-Latn): "
                                                          "keep the subsets in these languages")
    subsets: list[str] | None = Field(None, description="Hugging Face subsets to keep (e.g. "
                                                        "en, de-en)")

    @field_validator("task")
    @classmethod
    def _known_task(cls, v: str) -> str:
        import mteb

        try:
            task = mteb.get_task(v)
        except KeyError as exc:
            raise ValueError(f"{exc.args[0] if exc.args else exc} (list them with "
                             "'evalharness list mteb-tasks')") from None
        meta = task.metadata
        if meta.type not in SUPPORTED_TYPES or list(meta.modalities) != ["text"] \
                or _family(task) is None:
            kind = meta.type if list(meta.modalities) == ["text"] else \
                f"{meta.type} ({'+'.join(meta.modalities)})"
            raise ValueError(f"MTEB task '{v}' is of type {kind}, which type: mteb does not "
                             f"run; supported: text tasks of type {', '.join(SUPPORTED_TYPES)}")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.dataset is not None:
            raise ValueError("'dataset' does not apply to type: mteb (the task brings its "
                             "data); remove it")
        if self.split is not None and self.splits is not None:
            raise ValueError("give 'split' or 'splits', not both")
        task = mteb_task(self)  # languages / subsets / splits that match nothing
        missing = [s for s in self.eval_splits() or [] if s not in task.metadata.eval_splits]
        if missing:
            raise ValueError(f"MTEB task '{self.task}' has no evaluation split "
                             f"{missing[0]!r}; its eval_splits: {task.metadata.eval_splits}")
        return self

    def eval_splits(self) -> list[str] | None:
        return [self.split] if self.split is not None else self.splits


def mteb_task(config: MtebConfig):
    """A fresh mteb task object for ``config`` (subsets and splits narrowed)."""
    import mteb

    try:
        return mteb.get_task(config.task, languages=config.languages,
                             hf_subsets=config.subsets, eval_splits=config.eval_splits())
    except ValueError as exc:
        raise ValueError(f"MTEB task '{config.task}': {exc}") from None


def _family(task) -> str | None:
    from mteb.abstasks import (AbsTaskClassification, AbsTaskClustering,
                               AbsTaskPairClassification, AbsTaskRetrieval, AbsTaskSTS)
    from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy
    from mteb.abstasks.multilabel_classification import AbsTaskMultilabelClassification

    if isinstance(task, AbsTaskMultilabelClassification):
        return None
    for cls, fam in ((AbsTaskSTS, "sts"), (AbsTaskClassification, "classification"),
                     (AbsTaskClusteringLegacy, "clustering_legacy"),
                     (AbsTaskClustering, "clustering"), (AbsTaskRetrieval, "retrieval"),
                     (AbsTaskPairClassification, "pair")):
        if isinstance(task, cls):
            return fam
    return None


def score_names(task) -> list[str]:
    """The scores mteb reports for ``task`` (main_score first)."""
    fam = _family(task)
    names = {"sts": _STS, "classification": _CLASSIFICATION, "pair": _PAIR,
             "clustering": ["v_measure", "ami"], "clustering_legacy": ["v_measure"],
             }.get(fam)
    if fam == "retrieval":
        names = _retrieval_names(task.k_values)
    return ["main_score"] + list(names or [])


def entries_of(task) -> list[tuple[str, str]]:
    """(split, subset) in the order ``mteb.evaluate`` runs them."""
    return [(split, subset) for split in task.eval_splits for subset in task.hf_subsets]


def entry_prefix(split: str, subset: str, entries) -> str:
    """``SPLIT.SUBSET.`` with only the parts that vary over ``entries`` ("" for one)."""
    splits = {s for s, _ in entries}
    subsets = {b for _, b in entries}
    parts = ([split] if len(splits) > 1 else []) + ([subset] if len(subsets) > 1 else [])
    return "".join(p + "." for p in parts)


# ----------------------------------------------------------------------------- texts
def split_data(task, split: str, subset: str):
    """What ``AbsTask.evaluate`` hands ``_evaluate_subset`` for (split, subset)."""
    ds = task.dataset
    if subset not in ds and subset == "default":
        return ds[split]
    return ds[subset][split]


def _subset_dict(task, subset: str):
    ds = task.dataset
    return ds if (subset not in ds and subset == "default") else ds[subset]


def _prompt_role(prompt_type) -> str:
    value = getattr(prompt_type, "value", prompt_type)
    return ROLE_OF_PROMPT.get(value, "text")


class _Plan:
    """Texts by role, plus the sample size and checksum material of each entry."""

    def __init__(self):
        self.texts: dict[str, dict[str, None]] = defaultdict(dict)
        self.n: dict[tuple[str, str], int] = {}
        self.hasher = hashlib.sha256()

    def add(self, role: str, texts) -> None:
        bucket = self.texts[role]
        for t in texts:
            bucket[t] = None
        self.hash(role, list(texts))

    def hash(self, *parts) -> None:
        self.hasher.update(json.dumps(parts, ensure_ascii=False, default=str).encode() + b"\0")


def _plan_sts(task, data, plan: _Plan, key) -> None:
    c1, c2 = task.column_names
    plan.add(_prompt_role(task.input1_prompt_type), data[c1])
    plan.add(_prompt_role(task.input2_prompt_type), data[c2])
    plan.hash("score", data["score"])
    plan.n[key] = len(data)


def _plan_pair(task, data, plan: _Plan, key) -> None:
    from datasets import Dataset

    if len(data) == 1:  # mteb's v1 layout: one row of lists
        data = Dataset.from_dict(data[0])
    plan.add(_prompt_role(task.input1_prompt_type), data[task.input1_column_name])
    plan.add(_prompt_role(task.input2_prompt_type), data[task.input2_column_name])
    plan.hash("labels", data[task.label_column_name])
    plan.n[key] = len(data)


def _plan_classification(task, subset_data, split: str, plan: _Plan, key) -> None:
    col = task.input_column_name
    train = subset_data[task.train_split]
    if task.is_cross_validation:
        plan.add("text", train[col])
        plan.hash("labels", train[task.label_column_name])
        plan.n[key] = len(train)
        return
    idxs, chosen = None, set()
    for i in range(task.n_experiments):  # mteb's own draws (seeded, no state kept)
        _, idxs, selected = task._undersample_data(train, i, idxs)
        chosen.update(selected)
    union = sorted(chosen)
    plan.add("text", train.select(union)[col])
    test = subset_data[split]
    plan.add("text", test[col])
    plan.hash("labels", train.select(union)[task.label_column_name],
              test[task.label_column_name])
    plan.n[key] = len(test)


def _plan_clustering(task, data, plan: _Plan, key, rng) -> None:
    """Replays ``AbsTaskClustering._evaluate_subset``'s draws from ``rng`` (a copy of the
    task's generator): the document sample, then the bootstrap draws that advance it."""
    n = len(data)
    if task.max_document_to_embed is None and task.max_fraction_of_documents_to_embed is None:
        rows = list(range(n))
    else:
        k = int(task.max_fraction_of_documents_to_embed * n) \
            if task.max_fraction_of_documents_to_embed is not None else task.max_document_to_embed
        rows = rng.sample(range(n), k=min(n, k))
    sample = data.select(rows)
    plan.add("text", sample[task.input_column_name])
    labels = [lab if isinstance(lab, list) else [lab] for lab in sample[task.label_column_name]]
    plan.hash("labels", labels)
    plan.n[key] = len(rows)
    depth = max(map(len, labels)) if labels else 0
    if task.max_depth is not None:
        depth = min(task.max_depth, depth)
    for level in range(depth):
        level_labels = np.array([lab[level] if len(lab) > level else -1 for lab in labels])
        n_valid = int(np.array([x != -1 for x in level_labels]).sum())
        for _ in range(task.n_clusters):
            rng.choices(range(n_valid), k=task.max_documents_per_cluster)


def _plan_clustering_legacy(task, data, plan: _Plan, key) -> None:
    total = 0
    for row in data:
        labels = row[task.label_column_name]
        if len(set(labels)) <= 1:
            continue  # mteb skips the set (v_measure 1.0 without encoding)
        plan.add("text", row[task.input_column_name])
        plan.hash("labels", labels)
        total += len(labels)
    plan.n[key] = total


def _plan_retrieval(task, part, plan: _Plan, key) -> None:
    from mteb._create_dataloaders import _retrieval_texts
    from mteb.types import PromptType

    qrels = part["relevant_docs"]
    queries = part["queries"]
    keep = [i for i, qid in enumerate(queries["id"]) if qrels.get(qid)]
    queries = queries.select(keep)
    plan.add("document", _retrieval_texts(part["corpus"], PromptType.document))
    plan.add("query", _retrieval_texts(queries, PromptType.query))
    plan.hash("qrels", sorted((q, sorted(d.items())) for q, d in qrels.items()))
    plan.n[key] = len(queries)


def _apply_limit(task, fam: str, limit: int) -> None:
    """Keep the first ``limit`` items of each evaluated split (smoke runs): pairs, test
    texts, clustering rows, queries with judgements (the corpus stays whole)."""
    for split, subset in entries_of(task):
        holder = _subset_dict(task, subset)
        if fam == "retrieval":
            part = holder[split]
            qrels = part["relevant_docs"]
            ids = [qid for qid in part["queries"]["id"] if qrels.get(qid)][:limit]
            keep = set(ids)
            part["queries"] = part["queries"].select(
                [i for i, qid in enumerate(part["queries"]["id"]) if qid in keep])
            part["relevant_docs"] = {q: d for q, d in qrels.items() if q in keep}
            continue
        data = holder[split]
        if fam == "pair" and len(data) == 1:
            from datasets import Dataset

            data = Dataset.from_dict({k: v[:limit] for k, v in data[0].items()})
            holder[split] = data
            continue
        holder[split] = data.select(range(min(limit, len(data))))


# ----------------------------------------------------------------------------- the model
class VectorsModel:
    """An mteb encoder (``EncoderProtocol``) that serves the run's vectors.

    ``encode`` concatenates the ``text`` of the batches it is given and looks them up by
    role (the prompt type); cosine similarity as mteb computes it for models without
    other metadata."""

    def __init__(self, vectors, task_name: str):
        self.vectors = vectors
        self.task_name = task_name
        self.calls = 0

    def encode(self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None,
               prompt_type=None, **kwargs):
        role = _prompt_role(prompt_type)
        texts = [t for batch in inputs for t in batch["text"]]
        self.calls += 1
        try:
            return self.vectors.get(role, texts)
        except KeyError as exc:
            raise EvalHarnessError(
                f"MTEB task '{self.task_name}': mteb asked for a {role} text that the plan "
                f"did not include ({str(exc)[:80]}); this is a bug of the harness's mteb "
                "adapter for this task, please report it") from None

    def similarity(self, a, b):
        from mteb.similarity_functions import cos_sim

        return cos_sim(a, b)

    def similarity_pairwise(self, a, b):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(a, b)

    @property
    def mteb_model_meta(self):
        return None


# ----------------------------------------------------------------------------- scores
def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def metrics_from_scores(scores: dict[str, list[dict]], *, n_of=None,
                        main_score: str | None = None) -> dict[str, Metric]:
    """Our metrics from mteb's ``TaskResult.scores`` ({split: [per-subset scores]}).

    ``n_of(split, subset)`` gives the sample size of an entry (None where unknown)."""
    entries = [(split, s.get("hf_subset", "default"), s)
               for split, lst in scores.items() for s in lst]
    keys = [(split, sub) for split, sub, _ in entries]
    per_entry: dict[str, dict[str, Metric]] = {}
    collected: dict[str, list[tuple[float, float | None, int | None]]] = defaultdict(list)
    for split, sub, s in entries:
        n = n_of(split, sub) if n_of else None
        nums = {k: _number(v) for k, v in s.items()}
        nums = {k: v for k, v in nums.items() if v is not None}
        per_exp = s.get("scores_per_experiment") if isinstance(
            s.get("scores_per_experiment"), list) else None
        prefix = entry_prefix(split, sub, keys)
        for name, value in nums.items():
            if name.endswith("_std") and name[:-4] in nums and not name.startswith("nauc_"):
                continue  # the std of another score
            std = nums.get(f"{name}_std") if not name.startswith("nauc_") else None
            if std is None and per_exp:
                vals = [_number(e.get(name)) for e in per_exp]
                if vals and all(x is not None for x in vals):
                    std = float(np.std(vals))
            if name == "main_score" and std is None and main_score:
                std = nums.get(f"{main_score}_std")
                if std is None and per_exp:
                    vals = [_number(e.get(main_score)) for e in per_exp]
                    if vals and all(x is not None for x in vals):
                        std = float(np.std(vals))
            collected[name].append((value, std, n))
            if prefix:
                per_entry[prefix + name] = Metric(value=value, std=std, n=n,
                                                  higher_is_better=True)
    out: dict[str, Metric] = {}
    for name in sorted(collected, key=lambda k: (k != "main_score", k)):
        rows = collected[name]
        value = float(np.mean([r[0] for r in rows]))
        ns = [r[2] for r in rows]
        n = sum(ns) if all(x is not None for x in ns) else None
        std = rows[0][1] if len(rows) == 1 else None
        out[name] = Metric(value=value, std=std, n=n, higher_is_better=True)
    out.update(per_entry)
    return out


# ----------------------------------------------------------------------------- the task
class MtebTask(Task):
    Config = MtebConfig
    # every score mteb reports is better higher (accuracy, F1, AP, correlations, nDCG,
    # V-measure, nAUC); the names depend on the task (see metric_names)
    metrics = {"main_score": True, "{score}": True}
    main_metric = "main_score"

    @classmethod
    def metric_names(cls, config) -> list[str]:
        task = mteb_task(config)
        names = score_names(task)
        entries = entries_of(task)
        out = list(names)
        if len(entries) > 1:
            out += [entry_prefix(sp, sb, entries) + n for sp, sb in entries for n in names]
        return out

    def load(self, resolver) -> None:
        from evalharness.data import mteb_data
        from evalharness.data.records import DatasetInfo

        cfg = self.config
        try:
            task = mteb_task(cfg)
        except ValueError as exc:
            raise UserError(str(exc), field=f"tasks.{self.id}") from None
        self.task = task
        self.family = _family(task)
        self.entries = entries_of(task)
        t0 = time.perf_counter()
        where = mteb_data.load_task_data(task, getattr(resolver, "data_dir", None))
        self.load_seconds = time.perf_counter() - t0
        self.source = where
        # a fresh task per evaluation starts its generators where this one stands now
        self.rng_state = where["rng_state"]
        if hasattr(task, "convert_v1_dataset_format_to_v2"):
            task.convert_v1_dataset_format_to_v2(num_proc=None)
        if cfg.limit:
            _apply_limit(task, self.family, cfg.limit)
        self.plan = self._plan()
        name = task.metadata.name
        self.dataset_name = f"mteb:{name}"
        info = DatasetInfo(
            name=self.dataset_name, split=",".join(task.eval_splits),
            rows=sum(self.plan.n.values()), checksum="sha256:" + self.plan.hasher.hexdigest(),
            path=where["path"], layout="mteb",
            extra={"mteb_task": name, "mteb_type": task.metadata.type,
                   "revision": task.metadata.revision,
                   "hf_dataset": task.metadata.dataset["path"],
                   "subsets": list(task.hf_subsets), "source": where["source"],
                   "limit": cfg.limit})
        used = getattr(resolver, "used", None)
        if used is not None:
            key = self.dataset_name if cfg.limit is None else f"{self.dataset_name}[:{cfg.limit}]"
            used[key] = info
        self.info = info

    def _plan(self) -> _Plan:
        import random

        task, fam, plan = self.task, self.family, _Plan()
        rng = random.Random()
        rng.setstate(task.rng_state.getstate())
        for split, subset in self.entries:
            key = (split, subset)
            plan.hash("entry", split, subset)
            if fam == "classification":
                _plan_classification(task, _subset_dict(task, subset), split, plan, key)
            elif fam == "retrieval":
                _plan_retrieval(task, split_data(task, split, subset), plan, key)
            else:
                data = split_data(task, split, subset)
                if fam == "sts":
                    _plan_sts(task, data, plan, key)
                elif fam == "pair":
                    _plan_pair(task, data, plan, key)
                elif fam == "clustering":
                    _plan_clustering(task, data, plan, key, rng)
                elif fam == "clustering_legacy":
                    _plan_clustering_legacy(task, data, plan, key)
        return plan

    def needs(self):
        return [TextNeed(role, tuple(texts)) for role, texts in self.plan.texts.items()]

    def fresh_task(self):
        """A new task object over the loaded data, its generators where ``load`` left
        them (what ``mteb.evaluate`` starts from after its own ``load_data``)."""
        from evalharness.data.mteb_data import set_rng_state

        task = mteb_task(self.config)
        task.dataset = self.task.dataset
        task.data_loaded = True
        set_rng_state(task, self.rng_state)
        return task

    def run_mteb(self, model):
        """mteb's own evaluation of ``model`` (no result cache): its ``TaskResult``."""
        import logging
        import warnings

        import mteb

        task = self.fresh_task()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("mteb").setLevel(logging.ERROR)
            res = mteb.evaluate(model, task, cache=None, co2_tracker=False,
                                overwrite_strategy="always", show_progress_bar=False,
                                encode_kwargs={"batch_size": 256, "show_progress_bar": False},
                                raise_error=True)
        if res.exceptions:
            raise EvalHarnessError(f"MTEB task '{self.task.metadata.name}': "
                                   f"{res.exceptions[0]}")
        return res.task_results[0]

    def evaluate(self, vectors, encoder):
        result = self.run_mteb(VectorsModel(vectors, self.task.metadata.name))
        main = self.task.metadata.main_score
        metrics = metrics_from_scores(result.scores, n_of=lambda sp, sb: self.plan.n.get((sp, sb)),
                                      main_score=main)
        raw = json.loads(result.model_dump_json(exclude={"evaluation_phases"}))
        details = {"mteb_task": result.task_name, "mteb_type": self.task.metadata.type,
                   "mteb_main_score": main, "dataset_revision": result.dataset_revision,
                   "mteb_version": result.mteb_version, "splits": list(self.task.eval_splits),
                   "subsets": list(self.task.hf_subsets), "data_source": self.source["source"],
                   "limit": self.config.limit, "mteb_result": raw}
        return self.result(metrics, details=details)


def list_mteb_tasks(task_type: str | None = None) -> list[dict[str, Any]]:
    """MTEB's text tasks (name, type, languages, whether ``type: mteb`` runs it)."""
    import mteb

    out = []
    for t in mteb.get_tasks():
        meta = t.metadata
        if task_type and meta.type.lower() != task_type.lower():
            continue
        supported = meta.type in SUPPORTED_TYPES and list(meta.modalities) == ["text"] \
            and _family(t) is not None
        out.append({"name": meta.name, "type": meta.type, "supported": supported,
                    "languages": sorted(set(meta.languages))[:6],
                    "n_languages": len(set(meta.languages)),
                    "superseded_by": meta.superseded_by})
    return sorted(out, key=lambda r: (r["type"], r["name"]))


def format_mteb_tasks(task_type: str | None = None) -> str:
    """``evalharness list mteb-tasks [--type TYPE]``: one line per MTEB task."""
    rows = list_mteb_tasks(task_type)
    if not rows:
        import mteb

        types = sorted({t.metadata.type for t in mteb.get_tasks()})
        raise UserError(f"no MTEB task of type '{task_type}'",
                        hint=f"types: {', '.join(types)}")
    lines = []
    for r in rows:
        langs = ",".join(r["languages"]) + ("..." if r["n_languages"] > 6 else "")
        note = "" if r["supported"] else "  (not runnable by type: mteb)"
        if r["superseded_by"]:
            note += f"  (superseded by {r['superseded_by']})"
        lines.append(f"{r['name']:<48} {r['type']:<20} {langs}{note}")
    runnable = sum(r["supported"] for r in rows)
    lines.append(f"\n{len(rows)} task(s), {runnable} runnable with "
                 f"{{type: mteb, task: NAME}} (text tasks of type "
                 f"{', '.join(SUPPORTED_TYPES)})")
    return "\n".join(lines)
