"""Experiment tracking: one MLflow run per evaluation run (``--track mlflow[:URI]``, or
``track:`` in the suite).

What a run logs:

- params: the suite (name, file, seed), evalharness version, and per encoder its spec,
  fingerprint and dimension, per dataset its split, rows and checksum (and the mteb
  revision where there is one);
- metrics: ``ENCODER/TASK.METRIC`` for every metric of every task and check, plus
  ``ENCODER/TASK.METRIC.ci_low`` / ``.ci_high`` where the metric has a confidence
  interval; names are made MLflow-safe (characters other than letters, digits, ``_ - . /``
  and spaces become ``_``);
- tags: the suite, the run's verdict (``evalharness.passed``), the results' creation time;
- artifacts: ``results.json``, ``report.html`` when the run wrote one, and the suite file.

Where: ``uri`` when given (any MLflow tracking URI: ``sqlite:///path/mlflow.db``,
``file:./mlruns``, ``http://server:5000``), else MLflow's own default, which honours
``MLFLOW_TRACKING_URI`` and otherwise, in MLflow 3, is the embedded SQLite store
``./mlflow.db`` with artifacts under ``./mlruns/`` (no server). With a database URI
MLflow keeps the artifacts of a new experiment under ``./mlruns`` of the current folder,
as its own server does by default. The experiment is
``$MLFLOW_EXPERIMENT_NAME`` or ``evalharness/<suite>``. The ``[track]`` extra installs
``mlflow`` (``mlflow-skinny`` lacks the database store).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from pathlib import Path

from evalharness.errors import UserError
from evalharness.results import RunResults, save_results

INSTALL_HINT = "pip install 'evalharness[track]'  (in a checkout: pip install -c " \
               "constraints.txt -e '.[track]')"
_BAD = re.compile(r"[^\w.\- /]")


def mlflow_name(name: str) -> str:
    """An MLflow-safe metric/param key: only letters, digits, ``_ - . /`` and spaces,
    no empty, leading or doubled path parts, at most 250 characters."""
    out = _BAD.sub("_", name)
    parts = [p for p in out.split("/") if p not in ("", ".", "..")]
    out = "/".join(parts) or "_"
    return out[:250]


def _client(uri: str | None):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError("experiment tracking with MLflow needs the 'mlflow' package",
                        field="track", hint=INSTALL_HINT) from None
    return MlflowClient(tracking_uri=uri) if uri else MlflowClient()


def run_params(results: RunResults, suite_path: str | None) -> dict[str, str]:
    from evalharness import __version__

    params: dict[str, str] = {"suite": results.suite, "evalharness": str(
        results.environment.get("evalharness", __version__))}
    if suite_path:
        params["suite_file"] = str(suite_path)
    cfg = results.suite_config or {}
    for key in ("seed", "bootstrap"):
        if cfg.get(key) is not None:
            params[key] = str(cfg[key])
    for eid, rec in results.encoders.items():
        params[f"encoder.{eid}.spec"] = rec.spec
        if rec.fingerprint:
            params[f"encoder.{eid}.fingerprint"] = rec.fingerprint
        if rec.dim is not None:
            params[f"encoder.{eid}.dim"] = str(rec.dim)
        if rec.error:
            params[f"encoder.{eid}.error"] = rec.error
    for name, rec in results.datasets.items():
        for key in ("split", "rows", "rows_used", "checksum", "revision"):
            if rec.get(key) is not None:
                params[f"dataset.{name}.{key}"] = str(rec[key])
    return {mlflow_name(k): v[:6000] for k, v in params.items()}


def run_metrics(results: RunResults) -> dict[str, float]:
    out: dict[str, float] = {}

    def put(key: str, value) -> None:
        if value is None or isinstance(value, bool):
            return
        value = float(value)
        if math.isfinite(value):
            out[mlflow_name(key)] = value

    for eid, comps in results.results.items():
        for cid, comp in comps.items():
            for name, m in comp.metrics.items():
                key = f"{eid}/{cid}.{name}"
                put(key, m.value)
                if m.ci:
                    put(f"{key}.ci_low", m.ci[0])
                    put(f"{key}.ci_high", m.ci[1])
    return out


def _experiment_id(client, results: RunResults) -> str:
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"evalharness/{results.suite}"
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # created meanwhile by a concurrent run
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def log_to_mlflow(results: RunResults, folder: Path | None, *, uri: str | None,
                  suite_path: str | None) -> str:
    """Log one evaluation run as one MLflow run; returns the MLflow run id.

    ``folder``: the run folder (results.json and report.html are logged from there when
    present); ``None`` for a run that wrote nothing (results.json is then written to a
    temporary folder for the artifact)."""
    from mlflow.entities import Metric, Param, RunTag

    client = _client(uri)
    try:
        exp_id = _experiment_id(client, results)
        run_name = Path(folder).name if folder else f"{results.suite} {results.created}"
        run = client.create_run(exp_id, run_name=run_name, tags={
            "evalharness.suite": results.suite,
            "evalharness.passed": str(results.passed).lower(),
            "evalharness.created": results.created,
            "evalharness.encoders": ", ".join(results.encoders)})
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot log to MLflow at {uri or client.tracking_uri}: "
                        f"{type(exc).__name__}: {exc}", field="track",
                        hint="check the tracking URI (mlflow:URI), or leave it out to use "
                             "./mlflow.db") from None
    run_id = run.info.run_id
    status = "FAILED"
    try:
        now = int(time.time() * 1000)
        params = [Param(k, v) for k, v in run_params(results, suite_path).items()]
        metrics = [Metric(k, v, now, 0) for k, v in run_metrics(results).items()]
        for chunk in _chunks(params, 100):
            client.log_batch(run_id, params=chunk)
        for chunk in _chunks(metrics, 1000):
            client.log_batch(run_id, metrics=chunk)
        client.log_batch(run_id, tags=[RunTag("evalharness.metrics", str(len(metrics)))])
        with tempfile.TemporaryDirectory() as tmp:
            res_file = Path(folder) / "results.json" if folder else None
            if res_file is None or not res_file.is_file():
                res_file = Path(tmp) / "results.json"
                save_results(results, res_file)
            client.log_artifact(run_id, str(res_file))
            if folder and (Path(folder) / "report.html").is_file():
                client.log_artifact(run_id, str(Path(folder) / "report.html"))
            if suite_path and Path(suite_path).is_file():
                client.log_artifact(run_id, str(suite_path), artifact_path="suite")
        status = "FINISHED"
    finally:
        client.set_terminated(run_id, status=status)
    return run_id
