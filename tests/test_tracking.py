"""MLflow tracking: one MLflow run per evaluation run, in a real local store (MLflow 3's
SQLite default or a given URI), read back with ``mlflow.search_runs``."""

from __future__ import annotations

import json

import pytest

from evalharness.errors import UserError
from evalharness.results import load_results

from helpers import make_sts, write_suite

pytest.importorskip("mlflow")

SUITE = """\
suite: tracked
seed: 3
bootstrap: 50
encoders:
  rnd: random?dim=16&seed=0
  lsa: random?dim=8&seed=1
tasks:
  sts: {type: sts, dataset: tinysts}
checks:
  uni: {type: uniformity, dataset: tinysts}
thresholds:
  - {metric: sts.cosine_spearman, min: -1.0}
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """MLflow puts the artifacts of a SQLite store under ./mlruns of the current folder."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def run(tmp_path):
    import evalharness

    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    res = evalharness.evaluate(str(suite), data_dir=tmp_path / "data",
                               cache_dir=tmp_path / "cache", output=tmp_path / "out",
                               report=True)
    assert res.exit_code == 0, res.errors
    return res, suite


def _search(uri: str, experiment: str, monkeypatch):
    """``mlflow.search_runs`` against ``uri``; the process-wide tracking URI is put back
    as it was (unset), so later tests still see MLflow's default."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    with monkeypatch.context() as mp:
        mp.setattr(utils, "_tracking_uri", uri)
        return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def test_logs_params_metrics_cis_and_artifacts(run, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from evalharness.tracking import log_to_mlflow

    res, suite = run
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    run_id = log_to_mlflow(res.results, res.folder, uri=uri, suite_path=str(suite))
    [logged] = _search(uri, "evalharness/tracked", monkeypatch)
    assert logged.info.run_id == run_id and logged.info.status == "FINISHED"
    params, metrics, tags = logged.data.params, logged.data.metrics, logged.data.tags
    results = load_results(res.folder / "results.json")
    # every metric of every encoder, task and check, with its CI bounds
    for eid, comps in results.results.items():
        assert params[f"encoder.{eid}.spec"] == results.encoders[eid].spec
        assert params[f"encoder.{eid}.fingerprint"] == results.encoders[eid].fingerprint
        for cid, comp in comps.items():
            for name, m in comp.metrics.items():
                key = f"{eid}/{cid}.{name}"
                assert metrics[key] == pytest.approx(m.value, rel=1e-12), key
                if m.ci:
                    assert metrics[f"{key}.ci_low"] == pytest.approx(m.ci[0], rel=1e-12)
                    assert metrics[f"{key}.ci_high"] == pytest.approx(m.ci[1], rel=1e-12)
    assert "rnd/sts.cosine_spearman.ci_low" in metrics
    rec = results.datasets["tinysts"]
    assert params["dataset.tinysts.checksum"] == rec["checksum"]
    assert params["dataset.tinysts.rows"] == str(rec["rows"])
    assert params["suite"] == "tracked" and params["seed"] == "3"
    assert tags["evalharness.passed"] == "true"
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run_id)}
    assert {"results.json", "report.html", "suite"} <= artifacts
    local = MlflowClient(uri).download_artifacts(run_id, "results.json", str(tmp_path / "dl"))
    assert json.loads(open(local).read())["suite"] == "tracked"


def test_default_store_is_mlflow_db_in_the_current_folder(run, tmp_path, monkeypatch):
    from evalharness.tracking import log_to_mlflow

    res, suite = run
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    run_id = log_to_mlflow(res.results, None, uri=None, suite_path=None)
    assert (work / "mlflow.db").is_file()
    assert (work / "mlruns").is_dir()
    # a second run in the same folder goes to the same store (./mlruns holds artifacts
    # only, so MLflow does not fall back to its old file store)
    second = log_to_mlflow(res.results, None, uri=None, suite_path=None)
    runs = _search(f"sqlite:///{work / 'mlflow.db'}", "evalharness/tracked", monkeypatch)
    assert sorted(r.info.run_id for r in runs) == sorted([run_id, second])
    logged = next(r for r in runs if r.info.run_id == run_id)
    assert logged.data.metrics["lsa/uni.uniformity"] == pytest.approx(
        res.results.results["lsa"]["uni"].metrics["uniformity"].value)
    # a run that wrote no folder still gets its results.json as an artifact
    assert any(f.name == "results.json" for f in (work / "mlruns").rglob("results.json"))


def test_two_runs_one_experiment_through_the_api(tmp_path, monkeypatch):
    import evalharness

    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "nightly")
    ids = []
    for i in range(2):
        res = evalharness.evaluate(str(suite), data_dir=tmp_path / "data",
                                   cache_dir=tmp_path / "cache", output=tmp_path / f"o{i}",
                                   track=f"mlflow:{uri}")
        ids.append(res.tracking["run_id"])
    runs = _search(uri, "nightly", monkeypatch)
    assert sorted(r.info.run_id for r in runs) == sorted(ids)


def test_names_are_made_mlflow_safe():
    from mlflow.utils.validation import _validate_metric_name

    from evalharness.tracking import mlflow_name

    for raw in ("enc/mteb:SciFact.ndcg_at_10", "a//b/../c.x", "é/t.m@1", "/lead"):
        name = mlflow_name(raw)
        _validate_metric_name(name)
    assert mlflow_name("enc/sts17.en-en.main_score") == "enc/sts17.en-en.main_score"
    assert mlflow_name("rnd/mteb:x.y") == "rnd/mteb_x.y"


def test_missing_mlflow_is_a_user_error(run, monkeypatch):
    import sys

    from evalharness.tracking import log_to_mlflow

    res, _ = run
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(UserError, match="needs the 'mlflow' package") as err:
        log_to_mlflow(res.results, res.folder, uri=None, suite_path=None)
    assert "evalharness[track]" in str(err.value)
