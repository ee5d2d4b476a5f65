"""MTEB results both ways: ``export mteb`` writes files mteb itself reads back
(``TaskResult.from_disk``, ``ResultCache.load_results``, ``mteb.load_results``);
``import mteb`` turns such files into a results.json that ``compare``, ``gate
--baseline`` and ``report`` accept. One run (the Hub mocked, random encoders) is shared
by the tests of this module."""

from __future__ import annotations

import json
import shutil

import pytest

from evalharness.cli import main
from evalharness.errors import UserError
from evalharness.results import load_results

from mteb_fake_hub import FakeHub, pinned_revisions, write_hub
from test_mteb_task import STS17, TASKS, repos

MODEL = "acme-labs/tiny-encoder"
SUITE = """\
suite: mteb-interop
seed: 1
bootstrap: 0
encoders:
  mine: random?dim=16&seed=3
tasks:
  banking: {type: mteb, task: Banking77Classification}
  scifact: {type: mteb, task: SciFact}
  sts17: {type: mteb, task: STS17, subsets: [en-en, es-es]}
  pairs: {type: mteb, task: SprintDuplicateQuestions, limit: 10}
thresholds:
  - {metric: banking.accuracy, min: 0.0}
"""


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory):
    return write_hub(tmp_path_factory.mktemp("hub"), repos())


@pytest.fixture
def hub(hub_root, monkeypatch):
    return FakeHub(hub_root, pinned_revisions(list(TASKS.values()) + [STS17])).install(
        monkeypatch)


@pytest.fixture(scope="module")
def run(hub_root, tmp_path_factory):
    """results.json of SUITE (and the suite file)."""
    import evalharness

    root = tmp_path_factory.mktemp("run")
    suite = root / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        FakeHub(hub_root, pinned_revisions(list(TASKS.values()) + [STS17])).install(mp)
        res = evalharness.evaluate(str(suite), data_dir=root / "data",
                                   cache_dir=root / "cache", output=root / "out")
    assert res.exit_code == 0, res.errors
    return root / "out" / "results.json", suite


def _export(results_json, out, *extra):
    assert main(["export", "mteb", str(results_json), "-o", str(out), "--model", MODEL,
                 *extra]) == 0


def test_export_layout_and_mteb_reads_it(run, tmp_path, monkeypatch, capsys):
    import mteb
    from mteb.cache import ResultCache
    from mteb.results import TaskResult

    results_json, _ = run
    res = load_results(results_json)
    out = tmp_path / "mteb-cache" / "results"
    _export(results_json, out)
    printed = capsys.readouterr().out
    folder = out / "acme-labs__tiny-encoder" / "no_revision_available"
    files = sorted(p.name for p in folder.glob("*.json"))
    assert files == ["Banking77Classification.json", "STS17.json", "SciFact.json",
                     "model_meta.json"]
    assert "mine/pairs: skipped: limit: 10" in printed
    meta = json.loads((folder / "model_meta.json").read_text())
    assert meta["name"] == MODEL and meta["revision"] == "no_revision_available"

    comps = res.results["mine"]
    for cid, task in (("banking", "Banking77Classification"), ("scifact", "SciFact"),
                      ("sts17", STS17)):
        tr = TaskResult.from_disk(folder / f"{task}.json")
        assert tr.task_name == task
        assert tr.dataset_revision == mteb.get_task(task).metadata.revision
        # mteb's own aggregate of the file equals the run's main metric (6 decimals on disk)
        assert tr.get_score() == pytest.approx(comps[cid].metrics["main_score"].value,
                                               abs=1e-6)
    # the results cache API, and the deprecated mteb.load_results, over MTEB_CACHE
    bench = ResultCache(tmp_path / "mteb-cache").load_results(
        models=[MODEL], require_model_meta=True, include_remote=False)
    [model_res] = bench.model_results
    assert model_res.model_name == MODEL
    assert {t.task_name for t in model_res.task_results} == {
        "Banking77Classification", "SciFact", STS17}
    monkeypatch.setenv("MTEB_CACHE", str(tmp_path / "mteb-cache"))
    with pytest.warns(Warning):
        legacy = mteb.load_results(download_latest=False, models=[MODEL],
                                   validate_and_filter=False)
    [model_res] = legacy.model_results
    scores = {t.task_name: t.get_score() for t in model_res.task_results}
    assert scores["Banking77Classification"] == pytest.approx(
        comps["banking"].metrics["main_score"].value, abs=1e-6)


def test_round_trip_gate_compare_report(run, tmp_path, capsys):
    results_json, suite = run
    res = load_results(results_json)
    _export(results_json, tmp_path / "export")
    imported = tmp_path / "published.json"
    assert main(["import", "mteb", str(tmp_path / "export"), "--model", MODEL,
                 "--suite", str(suite), "--as", "mine", "-o", str(imported)]) == 0
    back = load_results(imported)
    assert back.schema_version == 1 and list(back.encoders) == ["mine"]
    assert back.encoders["mine"].model == {"name": MODEL, "revision": "no_revision_available"}
    # same task ids (from the suite), same metrics, values to mteb's 6 stored decimals
    assert set(back.results["mine"]) == {"banking", "scifact", "sts17"}
    for cid, comp in back.results["mine"].items():
        orig = res.results["mine"][cid]
        assert comp.type == "mteb" and comp.main_metric == "main_score"
        assert comp.items is None
        assert set(comp.metrics) == set(orig.metrics), cid
        for name, m in comp.metrics.items():
            assert m.value == pytest.approx(orig.metrics[name].value, abs=1e-6), (cid, name)
            assert m.higher_is_better and m.ci is None
    assert back.datasets["mteb:SciFact"]["revision"] == \
        res.results["mine"]["scifact"].details["dataset_revision"]

    # gate the run against the imported numbers: no per-item data, so the tolerance decides
    capsys.readouterr()
    code = main(["gate", str(results_json), "--baseline", str(imported), "--tolerance",
                 "0.001", "--significant"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASSED" in out
    from evalharness.gate import regression_verdicts

    verdicts = regression_verdicts(res, back, tolerance=0.001, significant=True)
    assert {v.metric for v in verdicts} == {"banking.main_score", "scifact.main_score",
                                            "sts17.main_score", }
    assert all(v.passed and v.p_value is None and "judged on the tolerance alone" in v.note
               for v in verdicts)
    # a baseline above the run fails it
    worse = json.loads(imported.read_text())
    worse["results"]["mine"]["banking"]["metrics"]["main_score"]["value"] += 0.05
    high = tmp_path / "high.json"
    high.write_text(json.dumps(worse))
    assert main(["gate", str(results_json), "--baseline", str(high), "--tolerance",
                 "0.001"]) == 1

    # compare: the difference, and no paired test
    capsys.readouterr()
    assert main(["compare", str(results_json), str(imported), "-o",
                 str(tmp_path / "cmp.json")]) == 0
    out = capsys.readouterr().out
    assert "no paired test" in out
    rows = json.loads((tmp_path / "cmp.json").read_text())
    main_rows = [r for r in rows if r["metric"] == "banking.main_score"]
    assert main_rows and main_rows[0]["p_value"] is None
    assert abs(main_rows[0]["diff"]) < 1e-6

    # report: HTML and Markdown of the imported file, alone and next to the run
    for fmt, name in (("html", "r.html"), ("md", "r.md")):
        assert main(["report", str(imported), str(results_json), "--format", fmt, "-o",
                     str(tmp_path / name)]) == 0
        text = (tmp_path / name).read_text()
        assert "banking" in text and ("SciFact" in text or "scifact" in text)
    assert main(["report", str(imported), "-o", str(tmp_path / "alone.html")]) == 0


def test_import_finds_files_and_revisions(run, tmp_path):
    from evalharness.interop.mteb_results import import_mteb

    results_json, _ = run
    _export(results_json, tmp_path / "repo" / "results")
    model_dir = tmp_path / "repo" / "results" / "acme-labs__tiny-encoder"
    # a checkout root, the model folder, a revision folder and single files all work
    for path in (tmp_path / "repo", model_dir, model_dir / "no_revision_available"):
        got = import_mteb([path], model=MODEL)
        assert set(got.results["tiny-encoder"]) == {"Banking77Classification", "SciFact",
                                                    STS17}
    one = import_mteb([model_dir / "no_revision_available" / "SciFact.json"], model=MODEL,
                      revision="abc123")
    assert list(one.results["tiny-encoder"]) == ["SciFact"]
    assert one.encoders["tiny-encoder"].model["revision"] == "abc123"
    # several revisions: the user chooses
    shutil.copytree(model_dir / "no_revision_available", model_dir / "r2")
    with pytest.raises(UserError, match="2 revisions") as err:
        import_mteb([tmp_path / "repo"], model=MODEL)
    assert "--revision" in str(err.value)
    assert import_mteb([tmp_path / "repo"], model=MODEL, revision="r2").encoders[
        "tiny-encoder"].model["revision"] == "r2"
    with pytest.raises(UserError, match="no results of model 'other/model'"):
        import_mteb([tmp_path / "repo"], model="other/model")
    bad = tmp_path / "bad.json"
    bad.write_text("{\"not\": \"mteb\"}")
    with pytest.raises(UserError, match="not an MTEB result file"):
        import_mteb([bad], model=MODEL)


def test_import_filters_to_the_leaderboard_splits(run, tmp_path):
    """An extra split in a file is dropped, as mteb's leaderboard drops it."""
    from evalharness.interop.mteb_results import import_mteb

    results_json, _ = run
    _export(results_json, tmp_path / "x")
    path = next((tmp_path / "x").rglob("SciFact.json"))
    data = json.loads(path.read_text())
    data["scores"]["dev"] = [dict(data["scores"]["test"][0], main_score=0.99)]
    path.write_text(json.dumps(data))
    got = import_mteb([path], model=MODEL)
    comp = got.results["tiny-encoder"]["SciFact"]
    assert comp.details["splits"] == ["test"]
    assert comp.metrics["main_score"].value < 0.99


def test_export_model_names(run, tmp_path):
    from evalharness.interop.mteb_results import export_mteb

    results_json, _ = run
    res = load_results(results_json)
    rep = export_mteb(res, tmp_path / "a", revisions=["v1"])
    assert rep.folders["mine"] == tmp_path / "a" / "random" / "v1"
    rep = export_mteb(res, tmp_path / "b", models=["mine=org/name"])
    assert rep.folders["mine"] == tmp_path / "b" / "org__name" / "no_revision_available"
    with pytest.raises(UserError, match="not in the run"):
        export_mteb(res, tmp_path / "c", models=["other=org/name"])


def test_shipped_sts_equivalence(shared_data, monkeypatch):
    """The shipped STS-B test copy is MTEB's STSBenchmark test split; SICK-R is not."""
    from evalharness.data.local import load_pairs
    from evalharness.interop import mteb_results as mr

    stsb = load_pairs(shared_data / "stsb", "test", "stsb").info.record()
    sick = load_pairs(shared_data / "sick", "test", "sick").info.record()
    assert mr.sts_equivalent("stsb", stsb)[0] == "STSBenchmark"
    task, why = mr.sts_equivalent("sick", sick)
    assert task is None and "9,927" in why
    # without the verified checksum, the statistics decide (same pairs and scores)
    monkeypatch.setattr(mr, "VERIFIED_COPIES", {})
    task, why = mr.sts_equivalent("stsb", stsb)
    assert task == "STSBenchmark" and "characters differ" in why
    assert mr.sts_equivalent("stsb", dict(stsb, rows_used=100))[0] is None
    assert mr.sts_equivalent("stsb", dict(stsb, path="/nonexistent"))[0] is None


def test_export_shipped_sts(shared_data, tmp_path):
    """A run on the shipped STS-B / SICK-R: STS-B becomes STSBenchmark.json, SICK-R is
    skipped with the reason."""
    import evalharness
    from mteb.results import TaskResult

    suite = {"suite": "sts", "bootstrap": 0, "encoders": {"rnd": "random?dim=16&seed=3"},
             "tasks": {"stsb": {"type": "sts", "dataset": "stsb"},
                       "sick": {"type": "sts", "dataset": "sick"}}}
    res = evalharness.evaluate(suite, data_dir=shared_data, cache_dir=tmp_path / "cache",
                               output=tmp_path / "out")
    from evalharness.interop.mteb_results import export_mteb

    rep = export_mteb(res.results, tmp_path / "export")
    folder = tmp_path / "export" / "random" / "no_revision_available"
    tr = TaskResult.from_disk(folder / "STSBenchmark.json")
    stsb = res.results.results["rnd"]["stsb"]
    assert tr.get_score() == pytest.approx(stsb.metrics["cosine_spearman"].value, abs=1e-6)
    assert tr.scores["test"][0]["cosine_pearson"] == pytest.approx(
        stsb.metrics["cosine_pearson"].value, abs=1e-6)
    assert not (folder / "SICK-R.json").exists()
    [skipped] = [i for i in rep.items if i.component == "sick"]
    assert skipped.path is None and "9,927" in skipped.note
