"""``type: mteb``: any MTEB task by name, scored by mteb's own evaluators on the harness's
vectors. The Hub is mocked at its boundary (``datasets.load_dataset`` and friends, where
mteb imported them) with tiny datasets in the Hub repositories' layout; every test
compares with mteb's own run (``mteb.evaluate``) of a model that returns the same
vectors (the harness's ``random`` encoder called directly), score by score."""

from __future__ import annotations

import random

import numpy as np
import pytest

from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import collect, embed
from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_spec_string
from evalharness.errors import EvalHarnessError, UserError
from evalharness.tasks.base import EncoderContext
from evalharness.tasks.mteb_task import MtebTask, VectorsModel

from mteb_fake_hub import FakeHub, pinned_revisions, sentence, tiny_repos, write_hub

TASKS = {
    "sts": "STSBenchmark",
    "classification": "Banking77Classification",
    "clustering": "TwentyNewsgroupsClustering.v2",
    "clustering_legacy": "TwentyNewsgroupsClustering",
    "retrieval": "SciFact",
    "pair": "SprintDuplicateQuestions",
}
STS17 = "STS17"


def repos():
    out = tiny_repos()
    rng = random.Random(11)
    # clustering: enough documents that mteb's 4% sample has every group
    groups = ["sci.space", "rec.autos", "talk.politics"]
    out["mteb/twentynewsgroups-clustering"] = {"default": {"test": [
        {"sentences": [sentence(rng, 4) for _ in range(300)],
         "labels": [groups[i % 3] for i in range(300)]} for _ in range(3)]}}
    # a multilingual task: STS17 with two of its subsets (mteb's "fast loading" layout:
    # one default config whose rows name their subset in "lang")
    out["mteb/sts17-crosslingual-sts"] = {"default": {"test": [
        {"sentence1": sentence(rng), "sentence2": sentence(rng),
         "score": round(rng.uniform(0, 5), 2), "lang": sub}
        for sub in ("en-en", "es-es") for _ in range(25)]}}
    return out


@pytest.fixture
def hub(tmp_path, monkeypatch):
    root = write_hub(tmp_path / "hub", repos())
    return FakeHub(root, pinned_revisions(list(TASKS.values()) + [STS17])).install(monkeypatch)


@pytest.fixture(scope="module")
def encoder():
    return build_encoder(parse_spec_string("rnd", "random?dim=16&seed=3"))


class ReferenceModel:
    """What a user would hand ``mteb.evaluate``: an encoder producing the same vectors."""

    def __init__(self, enc):
        self.enc = enc
        self.asked: set[tuple[str, str]] = set()

    def encode(self, inputs, *, task_metadata=None, hf_split=None, hf_subset=None,
               prompt_type=None, **kwargs):
        role = {"query": "query", "document": "document"}.get(
            getattr(prompt_type, "value", prompt_type), "text")
        texts = [t for batch in inputs for t in batch["text"]]
        self.asked.update((role, t) for t in texts)
        return self.enc.encode(texts, role=role)

    similarity = VectorsModel.similarity
    similarity_pairwise = VectorsModel.similarity_pairwise
    mteb_model_meta = None


def mteb_own_run(name, enc, **filters):
    import mteb

    model = ReferenceModel(enc)
    res = mteb.evaluate(model, mteb.get_task(name, **filters), cache=None, co2_tracker=False,
                        overwrite_strategy="always", show_progress_bar=False)
    return res.task_results[0], model


def ours(name, enc, tmp_path, **cfg):
    task = MtebTask("t", MtebTask.Config(type="mteb", task=name, **cfg),
                    DatasetResolver(tmp_path / "data", allow_hub=True))
    vectors, _ = embed(enc, collect(task.needs()), None)
    return task, task.evaluate(vectors, EncoderContext("rnd"))


def numeric(scores: dict) -> dict[str, float]:
    out = {}
    for k, v in scores.items():
        if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) \
                and np.isfinite(v):
            out[k] = float(v)
    return out


@pytest.mark.parametrize("family", list(TASKS))
def test_equals_mteb_own_run(hub, encoder, tmp_path, family):
    name = TASKS[family]
    task, res = ours(name, encoder, tmp_path)
    ref, ref_model = mteb_own_run(name, encoder)

    theirs = numeric(ref.scores["test"][0])
    assert "main_score" in theirs and len(theirs) > 2
    for key, value in theirs.items():
        if key.endswith("_std") and key[:-4] in theirs and not key.startswith("nauc_"):
            assert res.metrics[key[:-4]].std == pytest.approx(value, abs=1e-6), key
            continue
        assert res.metrics[key].value == pytest.approx(value, abs=1e-6), key
    # nothing more than mteb's scores, and every name was declared before the run
    assert set(res.metrics) == {k for k in theirs if not (
        k.endswith("_std") and k[:-4] in theirs and not k.startswith("nauc_"))}
    assert set(res.metrics) <= set(MtebTask.metric_names(task.config))
    assert res.main_metric == "main_score"
    assert res.metrics["main_score"].value == pytest.approx(
        theirs[task.task.metadata.main_score], abs=1e-12)
    assert all(m.higher_is_better for m in res.metrics.values())
    # the plan is exactly what mteb asks a model for: no text missed, none extra
    planned = {(need.role, t) for need in task.needs() for t in need.texts}
    assert planned == ref_model.asked
    # mteb's whole result is kept for the export
    kept = res.details["mteb_result"]
    assert kept["task_name"] == name and kept["dataset_revision"] == task.task.metadata.revision
    assert numeric(kept["scores"]["test"][0]) == pytest.approx(theirs, abs=1e-9)


def test_sample_sizes_and_dataset_record(hub, encoder, tmp_path):
    resolver = DatasetResolver(tmp_path / "data", allow_hub=True)
    sizes = {"sts": 40, "classification": 30, "retrieval": 10, "pair": 40,
             "clustering": int(0.04 * 900), "clustering_legacy": 900}
    for family, name in TASKS.items():
        task = MtebTask(family, MtebTask.Config(type="mteb", task=name), resolver)
        vectors, _ = embed(encoder, collect(task.needs()), None)
        res = task.evaluate(vectors, EncoderContext("rnd"))
        assert res.metrics["main_score"].n == sizes[family], family
        rec = resolver.used[f"mteb:{name}"].record()
        assert rec["rows"] == sizes[family]
        assert rec["revision"] == task.task.metadata.revision
        assert rec["source"] == "hub" and rec["checksum"].startswith("sha256:")
        assert rec["path"].startswith("hf://datasets/mteb/")
    # retrieval: queries without judgements are not encoded, the documents are, as
    # title + " " + text (mteb's reading)
    task = MtebTask("r", MtebTask.Config(type="mteb", task="SciFact"), resolver)
    queries = dict(collect(task.needs()))["query"]
    assert len(queries) == 10
    docs = dict(collect(task.needs()))["document"]
    assert any(d.startswith("Title ") for d in docs) and len(docs) == 50


def test_several_subsets_named_and_averaged(hub, encoder, tmp_path):
    task, res = ours(STS17, encoder, tmp_path, subsets=["en-en", "es-es"])
    ref, _ = mteb_own_run(STS17, encoder, hf_subsets=["en-en", "es-es"])
    by_subset = {s["hf_subset"]: numeric(s) for s in ref.scores["test"]}
    assert set(by_subset) == {"en-en", "es-es"}
    for sub, scores in by_subset.items():
        for key, value in scores.items():
            assert res.metrics[f"{sub}.{key}"].value == pytest.approx(value, abs=1e-6)
            assert res.metrics[f"{sub}.{key}"].n == 25
    # the unprefixed metric is mteb's get_score(): the mean over the subsets
    assert res.metrics["main_score"].value == pytest.approx(ref.get_score(), abs=1e-9)
    assert res.metrics["cosine_spearman"].n == 50
    names = MtebTask.metric_names(task.config)
    assert "en-en.main_score" in names and "es-es.cosine_pearson" in names
    assert set(res.metrics) <= set(names)


def test_two_encoders_in_one_run(hub, tmp_path):
    """Through the runner: clustering draws from the task's generator, so each encoder's
    evaluation must start from the same state (a fresh task), as mteb's own run does."""
    import evalharness

    suite = {"suite": "mteb", "seed": 1, "bootstrap": 0,
             "encoders": {"a": "random?dim=16&seed=3", "b": "random?dim=8&seed=5"},
             "tasks": {"news": {"type": "mteb", "task": TASKS["clustering"]},
                       "banking": {"type": "mteb", "task": TASKS["classification"]}},
             "thresholds": [{"metric": "banking.accuracy", "min": 0.0},
                            {"metric": "news.main_score", "min": 0.0}]}
    res = evalharness.evaluate(suite, data_dir=tmp_path / "data", cache_dir=tmp_path / "cache",
                               output=tmp_path / "out")
    assert res.exit_code == 0, res.errors
    for eid, spec in (("a", "random?dim=16&seed=3"), ("b", "random?dim=8&seed=5")):
        enc = build_encoder(parse_spec_string(eid, spec))
        for cid, family in (("news", "clustering"), ("banking", "classification")):
            ref, _ = mteb_own_run(TASKS[family], enc)
            comp = res.results.results[eid][cid]
            assert comp.type == "mteb" and comp.main_metric == "main_score"
            assert comp.metrics["main_score"].value == pytest.approx(
                ref.scores["test"][0]["main_score"], abs=1e-6), (eid, cid)
    assert res.results.datasets[f"mteb:{TASKS['clustering']}"]["layout"] == "mteb"
    assert res.metric("a", "banking.accuracy") is not None
    assert res.passed


def test_limit_keeps_the_first_items(hub, encoder, tmp_path):
    task, res = ours("SprintDuplicateQuestions", encoder, tmp_path, limit=12)
    assert res.metrics["main_score"].n == 12
    assert len(dict(collect(task.needs()))["text"]) <= 24
    task, res = ours("SciFact", encoder, tmp_path, limit=4)
    assert res.metrics["main_score"].n == 4


def test_pull_then_offline_run_equals_online(hub, encoder, tmp_path):
    from evalharness.cli import main
    from evalharness.data import mteb_data

    online = ours(TASKS["clustering"], encoder, tmp_path)[1].metrics
    data = tmp_path / "store"
    for family in ("clustering", "retrieval", "classification"):
        assert main(["data", "pull", f"mteb:{TASKS[family]}", "--data-dir", str(data)]) == 0
    folder = data / "mteb" / TASKS["clustering"]
    manifest = mteb_data.read_manifest(folder)
    assert manifest["revision"] == pinned_revisions([TASKS["clustering"]])[
        "mteb/twentynewsgroups-clustering"]
    hub.offline = True
    n_calls = len(hub.calls)
    for family in ("clustering", "retrieval", "classification"):
        resolver = DatasetResolver(data, allow_hub=False)
        task = MtebTask("t", MtebTask.Config(type="mteb", task=TASKS[family]), resolver)
        vectors, _ = embed(encoder, collect(task.needs()), None)
        res = task.evaluate(vectors, EncoderContext("rnd"))
        assert resolver.used[f"mteb:{TASKS[family]}"].record()["source"] == "local"
        if family == "clustering":
            for k, m in online.items():
                assert res.metrics[k].value == pytest.approx(m.value, abs=1e-12), k
    assert len(hub.calls) == n_calls  # the Hub was not asked


def test_offline_without_copy_names_folder_and_command(hub, tmp_path):
    hub.offline = True
    with pytest.raises(UserError) as err:
        MtebTask("t", MtebTask.Config(type="mteb", task="SciFact"),
                 DatasetResolver(tmp_path / "data", allow_hub=False))
    msg = str(err.value)
    assert str(tmp_path / "data" / "mteb" / "SciFact") in msg
    assert "evalharness data pull mteb:SciFact" in msg
    assert "ConnectionError" in msg


def test_stale_copy_is_refused(hub, tmp_path):
    import json

    from evalharness.cli import main

    data = tmp_path / "store"
    assert main(["data", "pull", "mteb:STSBenchmark", "--data-dir", str(data)]) == 0
    path = data / "mteb" / "STSBenchmark" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["revision"] = "0" * 40
    path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="revision"):
        MtebTask("t", MtebTask.Config(type="mteb", task="STSBenchmark"),
                 DatasetResolver(data, allow_hub=False))


@pytest.mark.parametrize("raw,expected", [
    ({"task": "Banking77Clasification"}, "Did you mean"),
    ({"task": "Tatoeba"}, "BitextMining"),
    ({"task": "STSBenchmark", "dataset": "stsb"}, "'dataset' does not apply"),
    ({"task": "STSBenchmark", "split": "train"}, "no evaluation split 'train'"),
    ({"task": "STSBenchmark", "nope": 1}, "nope"),
    ({"task": "STS17", "languages": ["xxx"]}, "Invalid language code"),
    ({"task": "STS17", "subsets": ["xx-yy"]}, "No subsets"),
])
def test_bad_configs_are_user_errors(raw, expected):
    from evalharness.suite import build_suite

    with pytest.raises(UserError, match=expected) as err:
        build_suite({"suite": "s", "encoders": {"r": "random?dim=4"},
                     "tasks": {"m": {"type": "mteb", **raw}}})
    assert "tasks.m" in str(err.value)


def test_unplanned_text_is_an_internal_error(hub, encoder, tmp_path):
    task = MtebTask("t", MtebTask.Config(type="mteb", task="STSBenchmark"),
                    DatasetResolver(tmp_path / "data", allow_hub=True))
    wanted = collect(task.needs())
    wanted["text"] = wanted["text"][:-1]
    vectors, _ = embed(encoder, wanted, None)
    with pytest.raises(EvalHarnessError, match="did not include"):
        task.evaluate(vectors, EncoderContext("rnd"))


def test_list_mteb_tasks_and_list_tasks(capsys):
    from evalharness.cli import main

    assert main(["list", "mteb-tasks", "--type", "PairClassification"]) == 0
    out = capsys.readouterr().out
    assert "SprintDuplicateQuestions" in out and "Banking77Classification" not in out
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "mteb" in out and "list mteb-tasks" in out


def test_task_prompts_reach_mteb_tasks(hub, encoder, tmp_path):
    """query_prompt / document_prompt of a type: mteb task: mteb's own run with a model
    that puts the same prompts before the texts gives the same scores."""
    import evalharness

    suite = {"suite": "p", "bootstrap": 0, "encoders": {"rnd": "random?dim=16&seed=3"},
             "tasks": {"sci": {"type": "mteb", "task": "SciFact", "query_prompt": "query: ",
                               "document_prompt": "passage: "}}}
    res = evalharness.evaluate(suite, data_dir=tmp_path / "data", cache_dir=tmp_path / "c")
    assert res.exit_code == 0, res.errors
    comp = res.results.results["rnd"]["sci"]

    class Prompted(ReferenceModel):
        def encode(self, inputs, *, prompt_type=None, **kwargs):
            prefix = {"query": "query: ", "document": "passage: "}[prompt_type.value]
            texts = [prefix + t for batch in inputs for t in batch["text"]]
            return self.enc.encode(texts, role="text")

    import mteb

    ref = mteb.evaluate(Prompted(encoder), mteb.get_task("SciFact"), cache=None,
                        co2_tracker=False, overwrite_strategy="always",
                        show_progress_bar=False).task_results[0]
    for key, value in numeric(ref.scores["test"][0]).items():
        assert comp.metrics[key].value == pytest.approx(value, abs=1e-6), key
    plain, _ = mteb_own_run("SciFact", encoder)
    assert plain.scores["test"][0]["main_score"] != pytest.approx(
        comp.metrics["main_score"].value, abs=1e-9)
