"""Third-party tasks, checks and encoders through entry points: the package in
tests/plugin_pkg is made visible to importlib.metadata by a dist-info folder built from
its pyproject.toml (what `pip install` would write, without the minutes of a venv), then
used end to end through the CLI."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from evalharness import registry
from evalharness.cli import main

from helpers import STS_ROWS, make_sts, write_suite

PLUGIN_SRC = Path(__file__).parent / "plugin_pkg"


def write_dist_info(root: Path, name: str, version: str, groups: dict[str, dict[str, str]]):
    """A minimal installed-distribution record: METADATA and entry_points.txt."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")
    lines = []
    for group, eps in groups.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
        lines.append("")
    (info / "entry_points.txt").write_text("\n".join(lines), encoding="utf-8")
    return info


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The demo plugin, 'installed': its source and its dist-info on sys.path."""
    project = tomllib.loads((PLUGIN_SRC / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    write_dist_info(site, project["name"], project["version"], project["entry-points"])
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.syspath_prepend(str(site))
    registry.refresh()
    yield project["entry-points"]
    registry.refresh()
    for mod in [m for m in sys.modules if m.startswith("evalharness_demo_plugin")]:
        del sys.modules[mod]


def random_vectors(texts, dim=16, seed=0):
    """The `random` encoder's vectors, asked of the encoder directly (not through a run)."""
    from evalharness.encoders.random import RandomEncoder, RandomOptions

    enc = RandomEncoder("rnd", None, RandomOptions(dim=dim, seed=seed))
    return enc.encode(list(texts), role="text").astype(np.float64)


def unique_pair_texts(rows):
    seen = {}
    for a, b, _ in rows:
        seen.setdefault(a, None)
        seen.setdefault(b, None)
    return list(seen)


SUITE = """\
suite: plugged
seed: 3
bootstrap: 50
encoders:
  rnd: random?dim=16&seed=0
tasks:
  dot: {type: dot-sts, dataset: tinysts}
checks:
  norms: {type: norm-spread, dataset: tinysts}
thresholds:
  - {metric: norms.norm_cv, max: 10.0}
  - {metric: dot.dot_spearman, min: -1.0}
"""


def test_the_entry_points_come_from_pyproject(plugin):
    assert plugin == {"evalharness.tasks": {"dot-sts": "evalharness_demo_plugin.tasks:DotSTSTask"},
                      "evalharness.checks": {
                          "norm-spread": "evalharness_demo_plugin.checks:NormSpreadCheck"},
                      "evalharness.encoders": {
                          "letters": "evalharness_demo_plugin.encoders:LetterCountEncoder"}}
    assert "dot-sts" in registry.TASKS and registry.TASKS.origin("dot-sts") == \
        "evalharness-demo-plugin"
    assert registry.TASKS.origin("sts") == "evalharness"


def test_plugin_task_and_check_run_end_to_end(tmp_path, plugin, capsys):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", SUITE)
    assert main(["validate", str(suite)]) == 0
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "data"), "-o",
                 str(tmp_path / "out"), "--no-cache"])
    assert code == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    dot = res["results"]["rnd"]["dot"]
    norms = res["results"]["rnd"]["norms"]
    assert dot["type"] == "dot-sts" and dot["kind"] == "task" and dot["error"] is None
    assert norms["type"] == "norm-spread" and norms["kind"] == "check"

    # independent computation from the random encoder's vectors
    s1, s2, gold = zip(*STS_ROWS)
    a, b = random_vectors(s1), random_vectors(s2)
    want = spearmanr(np.array(gold), (a * b).sum(axis=1)).statistic
    m = dot["metrics"]["dot_spearman"]
    assert m["value"] == pytest.approx(want, abs=1e-9)
    assert m["higher_is_better"] is True and m["n"] == len(STS_ROWS) and m["ci"] is not None
    assert dot["main_metric"] == "dot_spearman"

    norms_want = np.linalg.norm(random_vectors(unique_pair_texts(STS_ROWS)), axis=1)
    assert norms["metrics"]["mean_norm"]["value"] == pytest.approx(norms_want.mean(), rel=1e-6)
    assert norms["metrics"]["norm_cv"]["value"] == pytest.approx(
        norms_want.std() / norms_want.mean(), rel=1e-6)
    assert norms["metrics"]["norm_cv"]["higher_is_better"] is False
    assert {v["metric"] for v in res["verdicts"]} == {"norms.norm_cv", "dot.dot_spearman"}
    assert res["passed"] is True


def test_plugin_encoder_runs_end_to_end(tmp_path, plugin, capsys):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", """\
suite: letters
bootstrap: 0
encoders:
  abc: letters
  abc_cased: {type: letters, lowercase: false}
tasks:
  dot: {type: dot-sts, dataset: tinysts}
""")
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "data"), "-o",
                 str(tmp_path / "out"), "--no-cache"])
    assert code == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "results.json").read_text())

    def counts(texts, lower):
        return np.array([[(t.lower() if lower else t).count(c)
                          for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts], float)

    s1, s2, gold = zip(*STS_ROWS)
    for eid, lower in (("abc", True), ("abc_cased", False)):
        want = spearmanr(gold, (counts(s1, lower) * counts(s2, lower)).sum(axis=1)).statistic
        got = res["results"][eid]["dot"]["metrics"]["dot_spearman"]["value"]
        assert got == pytest.approx(want, abs=1e-9)
        assert res["encoders"][eid]["dim"] == 26
    assert res["encoders"]["abc"]["fingerprint"] != res["encoders"]["abc_cased"]["fingerprint"]


def test_plugins_are_listed_and_suggested(tmp_path, plugin, capsys):
    assert main(["list", "tasks"]) == 0
    assert "dot-sts" in capsys.readouterr().out.split()
    assert main(["list", "checks"]) == 0
    assert "norm-spread" in capsys.readouterr().out.split()
    assert main(["list", "encoders"]) == 0
    assert "letters" in capsys.readouterr().out.split()

    suite = write_suite(tmp_path / "s.yaml", SUITE.replace("type: dot-sts", "type: dot-st"))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "unknown task type 'dot-st'" in err and "did you mean 'dot-sts'?" in err
    suite = write_suite(tmp_path / "s2.yaml", SUITE.replace("random?dim=16&seed=0", "leters"))
    assert main(["validate", str(suite)]) == 2
    assert "did you mean 'letters'?" in capsys.readouterr().err


def test_without_the_plugin_its_types_are_unknown(tmp_path, capsys):
    registry.refresh()
    suite = write_suite(tmp_path / "s.yaml", SUITE)
    assert main(["validate", str(suite)]) == 2
    assert "unknown task type 'dot-sts'" in capsys.readouterr().err


def test_broken_plugins_are_user_errors_naming_the_package(tmp_path, plugin, capsys):
    write_dist_info(tmp_path / "site", "broken-plugin", "0.0.1", {
        "evalharness.tasks": {
            "gone": "evalharness_demo_plugin.missing:Task",
            "misnamed": "evalharness_demo_plugin.tasks:DotSTSTask",
            "sts": "evalharness_demo_plugin.tasks:DotSTSTask"},
        "evalharness.checks": {"a-task": "evalharness_demo_plugin.tasks:DotSTSTask"}})
    registry.refresh()
    from evalharness.errors import UserError
    from evalharness.tasks.sts import STSTask

    with pytest.raises(UserError, match="broken-plugin") as exc:
        registry.resolve("task", "gone")
    assert "ModuleNotFoundError" in exc.value.message
    with pytest.raises(UserError, match="registered as 'misnamed' but its config's type "
                                        "literal is 'dot-sts'"):
        registry.resolve("task", "misnamed")
    with pytest.raises(UserError, match="is a task, registered as a check"):
        registry.resolve("check", "a-task")
    assert registry.resolve("task", "sts") is STSTask  # a built-in name is never shadowed

    suite = write_suite(tmp_path / "s.yaml", SUITE.replace("type: dot-sts", "type: gone"))
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert "s.yaml" in err and "broken-plugin" in err and "evalharness.tasks" in err
