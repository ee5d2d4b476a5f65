"""The run as stages: resolved suite recorded, rows used, overrides validated like the
suite file, one write of results.json."""

from __future__ import annotations

import json

import pytest

from evalharness.cli import main
from evalharness.errors import UserError
from evalharness.runner import RunOptions, run_suite
from evalharness.suite import load_suite
from helpers import make_sts, write_suite

SUITE = """
suite: stages
bootstrap: 50
encoders:
  r: random?dim=16&seed=1
tasks:
  sts: {type: sts, dataset: tinysts, limit: 6}
"""


def _run(tmp_path, **kw):
    make_sts(tmp_path / "data")
    suite = load_suite(write_suite(tmp_path / "s.yaml", SUITE))
    opts = RunOptions(data_dir=str(tmp_path / "data"), output=str(tmp_path / "run"),
                      no_cache=True, log=None, **kw)
    return run_suite(suite, opts)


def test_results_record_the_resolved_suite_with_defaults(tmp_path):
    out = _run(tmp_path)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    cfg = saved["suite_config"]
    assert cfg["encoders"]["r"]["options"]["dim"] == 16
    assert cfg["encoders"]["r"]["options"]["batch_size"] == 32  # a default, recorded
    assert cfg["components"]["sts"]["limit"] == 6
    assert cfg["components"]["sts"]["split"] == "test"  # a default, recorded
    assert cfg["execution"]["engine"] == "local"
    assert out.exit_code == 0


def test_rows_used_next_to_rows_in_the_file(tmp_path):
    _run(tmp_path)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    rec = saved["datasets"]["tinysts"]
    assert rec["rows_used"] == 6 and rec["rows"] == 10


def test_write_and_total_seconds_are_real_numbers_in_the_single_write(tmp_path):
    out = _run(tmp_path)
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["seconds"]["write"] >= 0 and saved["seconds"]["total"] > 0
    assert saved["seconds"] == out.results.seconds
    assert "-7.12" not in (tmp_path / "run" / "results.json").read_text()


def test_encoder_override_is_validated_like_the_suite_file(tmp_path):
    make_sts(tmp_path / "data")
    suite = load_suite(write_suite(tmp_path / "s.yaml", SUITE))
    with pytest.raises(UserError, match="unknown option 'dimm'"):
        suite.with_encoders({"v": "random?dimm=8"})
    code = main(["run", str(tmp_path / "s.yaml"), "--data-dir", str(tmp_path / "data"),
                 "--no-cache", "-o", str(tmp_path / "bad"), "--encoder", "r=random?dim=0"])
    assert code == 2
    assert not (tmp_path / "bad" / "results.json").exists()
    assert "r" in suite.with_encoders({"x": "random?dim=8"}).encoder_specs
    assert "x" not in suite.encoder_specs  # the loaded suite is not changed


def test_device_flag_reaches_torch_encoders_only_and_bad_values_are_exit_2(tmp_path):
    from evalharness.runner import with_device
    from evalharness.suite import build_suite

    suite = build_suite({"suite": "d", "encoders": {"m": "minilm", "r": "random?dim=8",
                                                    "v": {"base": "m", "truncate_dim": 8}},
                         "tasks": {"sts": {"type": "sts", "dataset": "x"}}})
    moved = with_device(suite, "CPU")
    assert moved.encoder_specs["m"].options["device"] == "cpu"
    assert "device" not in moved.encoder_specs["r"].options
    assert "device" not in moved.encoder_specs["v"].options
    assert "device" not in suite.encoder_specs["m"].options  # the loaded suite unchanged
    make_sts(tmp_path / "data")
    write_suite(tmp_path / "s.yaml", SUITE)
    code = main(["run", str(tmp_path / "s.yaml"), "--data-dir", str(tmp_path / "data"),
                 "--no-cache", "-o", str(tmp_path / "bad"), "--device", "gpu0"])
    assert code == 2 and not (tmp_path / "bad").exists()


def test_unreachable_ray_cluster_is_exit_2_before_any_encoding(tmp_path, capsys):
    pytest.importorskip("ray")
    make_sts(tmp_path / "data")
    write_suite(tmp_path / "s.yaml", SUITE)
    code = main(["run", str(tmp_path / "s.yaml"), "--data-dir", str(tmp_path / "data"),
                 "--cache-dir", str(tmp_path / "cache"), "-o", str(tmp_path / "out"),
                 "--engine", "ray", "--ray-address", "127.0.0.1:9"])
    assert code == 2
    assert "127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


def test_end_of_run_summary_names_device_and_model_facts():
    from evalharness import console
    from evalharness.results import EncoderRecord, RunResults

    res = RunResults(suite="s", created="now", encoders={
        "m": EncoderRecord(spec="minilm", model={"device": "cpu", "dtype": "float32",
                                                  "parameters": 22713216, "max_tokens": 256,
                                                  "truncated": 3, "texts": 7559}),
        "r": EncoderRecord(spec="random?dim=8", model={"name": "random", "dim": 8})})
    assert console.model_lines(res) == [
        "m: cpu, float32, 22.7M parameters, max 256 tokens, 3 of 7,559 texts truncated"]
