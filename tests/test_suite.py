"""Suite loading: the contract, includes, and one clear message per kind of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalharness.cli import main
from evalharness.errors import UserError
from evalharness.suite import load_suite

from helpers import TINY_SUITE, write_suite

REPO = Path(__file__).resolve().parents[1]


def test_quick_suite_loads():
    suite = load_suite(REPO / "suites" / "quick.yaml")
    assert suite.suite == "quick"
    assert set(suite.encoders) == {"minilm", "lsa"}
    assert set(suite.task_configs) == {"stsb", "sick"}
    assert suite.thresholds and suite.thresholds[0].metric == "stsb.cosine_spearman"


def test_include_thresholds(tmp_path):
    (tmp_path / "th").mkdir()
    (tmp_path / "th" / "t.yaml").write_text(
        "- {metric: sts.cosine_spearman, min: 0.1}\n- {metric: sts.cosine_pearson, max: 0.9, severity: warn}\n")
    p = write_suite(tmp_path / "s.yaml", TINY_SUITE + "thresholds:\n  - include: th/t.yaml\n"
                    "  - {metric: sts.cosine_spearman, between: [0, 1]}\n")
    suite = load_suite(p)
    assert [t.metric for t in suite.thresholds] == ["sts.cosine_spearman", "sts.cosine_pearson",
                                                    "sts.cosine_spearman"]
    assert suite.thresholds[1].severity == "warn"


def _err(tmp_path, text) -> UserError:
    p = write_suite(tmp_path / "bad.yaml", text)
    with pytest.raises(UserError) as info:
        load_suite(p)
    return info.value


def test_unknown_key_names_line_and_suggests(tmp_path):
    e = _err(tmp_path, TINY_SUITE.replace("seed: 1", "seed: 1\nbootstap: 3"))
    assert "unknown key 'bootstap'" in str(e) and e.line == 3 and "bootstrap" in str(e)


def test_unknown_key_in_task(tmp_path):
    e = _err(tmp_path, TINY_SUITE.replace("dataset: tinysts", "dataset: tinysts, splt: test"))
    assert "unknown key 'splt'" in str(e) and e.line == 7 and "split" in str(e)
    assert "tasks.sts.splt" in str(e)


def test_wrong_type(tmp_path):
    e = _err(tmp_path, TINY_SUITE.replace("seed: 1", "seed: one"))
    assert e.line == 2 and "seed" in str(e) and "integer" in str(e)


def test_yaml_syntax_error_has_line(tmp_path):
    e = _err(tmp_path, TINY_SUITE + "thresholds: [\n  {metric: x\n")
    assert "YAML syntax error" in str(e) and e.line is not None


def test_unknown_encoder_type(tmp_path):
    e = _err(tmp_path, TINY_SUITE.replace("random?dim=16&seed=0", "rand?dim=16"))
    assert "unknown encoder type 'rand'" in str(e) and "random" in str(e) and e.line == 5


def test_unknown_encoder_option(tmp_path):
    e = _err(tmp_path, TINY_SUITE.replace("random?dim=16&seed=0", "random?dims=16"))
    assert "unknown option 'dims'" in str(e) and "dim" in str(e)


def test_unknown_task_type(tmp_path):
    e = _err(tmp_path, TINY_SUITE.replace("type: sts", "type: stss"))
    assert "unknown task type 'stss'" in str(e) and "sts" in str(e)


def test_unknown_metric_in_threshold(tmp_path):
    e = _err(tmp_path, TINY_SUITE + "thresholds:\n  - {metric: sts.cosine_spearmann, min: 0.5}\n")
    assert "sts.cosine_spearmann" in str(e) and "did you mean 'sts.cosine_spearman'" in str(e)
    assert e.line == 9


def test_threshold_needs_bound(tmp_path):
    e = _err(tmp_path, TINY_SUITE + "thresholds:\n  - {metric: sts.cosine_spearman}\n")
    assert "min" in str(e) and e.line == 9


def test_validate_cli_exit_codes(tmp_path, capsys):
    good = write_suite(tmp_path / "good.yaml", TINY_SUITE)
    assert main(["validate", str(good)]) == 0
    bad = write_suite(tmp_path / "bad.yaml", TINY_SUITE.replace("seed: 1", "seeed: 1"))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:2" in err and "unknown key 'seeed'" in err and "Traceback" not in err


def test_cli_bad_argument_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2


def test_missing_suite_file(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_validate_catches_unknown_variant_base(tmp_path):
    e = _err(tmp_path, TINY_SUITE.replace("  rnd: random?dim=16&seed=0",
                                          "  rnd: random?dim=16&seed=0\n  small: {base: rdn, truncate_dim: 8}"))
    assert "base 'rdn'" in str(e) and "did you mean 'rnd'" in str(e)
