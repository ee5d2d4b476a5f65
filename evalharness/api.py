"""The Python API: ``evalharness.evaluate(suite, ...) -> Results``. The CLI's ``run``
is built on the same function.

    import evalharness
    res = evalharness.evaluate("suites/quick.yaml", encoders={"mine": my_model})
    res.to_dataframe()          # one row per encoder x metric, with CI and n
    res.passed                  # every error-severity gate passed
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from evalharness.errors import UserError
from evalharness.results import RunResults


@dataclass
class Results:
    """One evaluation run: the typed results plus where they were written (if anywhere)
    and the exit code the CLI would return."""

    results: RunResults
    folder: Path | None = None
    exit_code: int = 0
    errors: list[str] = field(default_factory=list)
    tracking: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.results.passed

    def __getattr__(self, name: str):  # results.encoders, .verdicts, .datasets, ...
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.results, name)

    def metric(self, encoder: str, address: str):
        return self.results.metric(encoder, address)

    def to_dataframe(self):
        """One row per (encoder, task/check, metric): value, CI, n, direction, main."""
        import pandas as pd

        rows = []
        for eid, comps in self.results.results.items():
            for cid, comp in comps.items():
                for name, m in comp.metrics.items():
                    rows.append({
                        "encoder": eid, "component": cid, "kind": comp.kind,
                        "type": comp.type, "metric": name, "address": f"{cid}.{name}",
                        "value": m.value,
                        "ci_low": m.ci[0] if m.ci else None,
                        "ci_high": m.ci[1] if m.ci else None,
                        "n": m.n, "higher_is_better": m.higher_is_better,
                        "main": name == comp.main_metric})
        cols = ["encoder", "component", "kind", "type", "metric", "address", "value",
                "ci_low", "ci_high", "n", "higher_is_better", "main"]
        return pd.DataFrame(rows, columns=cols)


def _load(suite) -> "Suite":  # noqa: F821
    from evalharness.suite import Suite, build_suite, load_suite

    if isinstance(suite, Suite):
        return suite
    if isinstance(suite, (str, Path)):
        return load_suite(suite)
    if isinstance(suite, Mapping):
        return build_suite(dict(suite), source="<dict>")
    raise UserError(f"suite must be a path, a dict or a Suite, got {type(suite).__name__}")


def evaluate(suite, *, encoders: Mapping[str, Any] | None = None,
             data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
             no_cache: bool = False, output: str | Path | None = None,
             only: list[str] | None = None, engine: str | None = None,
             ray_address: str | None = None, device: str | None = None,
             track: str | None = None,
             report: bool = False, log: Callable | None = None) -> Results:
    """Run ``suite`` and return its :class:`Results`.

    ``suite``: a path to a YAML file, a dict with the same content, or a ``Suite``.
    ``encoders``: id -> a spec string (``"minilm"``, ``"st:NAME"``, ...), an object with
    ``encode(texts)`` (a ``SentenceTransformer`` instance included) or a callable
    ``f(texts) -> array``; adds to or replaces the suite's encoders.
    ``output``: a folder for results.json (none: nothing is written); ``report=True``
    also writes report.html there. ``track``: ``"mlflow"`` or ``"mlflow:URI"``.
    ``device``: the torch device of st/hf/minilm/mteb encoders (default ``auto``: CUDA,
    then MPS, then CPU).
    """
    from evalharness.runner import RunOptions, run_suite

    s = _load(suite)
    execution = None
    if engine is not None or ray_address is not None:
        from evalharness.embeddings.engines import ExecutionConfig

        update = {"engine": engine or s.execution.engine}
        if ray_address is not None:
            update["address"] = ray_address
        try:
            execution = ExecutionConfig.model_validate(
                {**s.execution.model_dump(), **update})
        except ValueError as exc:
            raise UserError(f"engine must be 'local' or 'ray', got {engine!r}",
                            field="--engine") from exc
    if report and output is None:
        raise UserError("report=True needs an output folder", field="output")
    opts = RunOptions(data_dir=str(data_dir) if data_dir else None,
                      output=str(output) if output is not None else None,
                      cache_dir=str(cache_dir) if cache_dir else None, no_cache=no_cache,
                      only=list(only or []), encoders=dict(encoders or {}),
                      execution=execution, device=device,
                      write_results=output is not None,
                      log=log)
    outcome = run_suite(s, opts)
    res = Results(outcome.results, outcome.folder if output is not None else None,
                  outcome.exit_code, outcome.errors)
    if report:
        write_reports(outcome.folder, outcome.results, log)
    tracker = track or s.track
    if tracker:
        res.tracking = track_run(tracker, res, suite_path=s.source)
    return res


def write_reports(folder: Path, results: RunResults, log: Callable | None = None) -> bool:
    """report.html (and the reports index) next to results.json. A report that fails
    must not lose the computed results: it is a warning, not an error."""
    try:
        from evalharness.report import write_run_reports

        write_run_reports(folder, results)
        return True
    except Exception as exc:  # noqa: BLE001
        (log or print)(f"warning: could not write the report: {type(exc).__name__}: {exc}")
        return False


def track_run(tracker: str, res: Results, *, suite_path: str | None) -> dict:
    """Log the run to an experiment tracker (``mlflow`` or ``mlflow:URI``)."""
    name, _, uri = tracker.partition(":")
    if name != "mlflow":
        raise UserError(f"unknown tracker '{name}'", field="track",
                        hint="use 'mlflow' or 'mlflow:TRACKING_URI'")
    from evalharness.tracking import log_to_mlflow

    run_id = log_to_mlflow(res.results, res.folder, uri=uri or None, suite_path=suite_path)
    return {"tracker": "mlflow", "uri": uri or None, "run_id": run_id}
