"""evalharness.formatting.fmt, the one number formatter: each output's parameters give
what that output printed before the five formatters were merged (html.fmt, console._fmt,
compare._f, junit._num, gate_summary._num), checked against plain format strings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalharness.formatting import fmt

FLOATS = [0.0, 0.8203, -0.25, 0.5, 12.0, 1379.0, 0.00012, 3.2e7, 1e-15, 1234.5678]


def test_report_style_auto():
    assert fmt(None) == "–" and fmt(float("nan")) == "–" and fmt(math.inf) == "–"
    assert fmt(True) == "yes" and fmt(False) == "no"
    assert fmt(1379) == "1,379" and fmt(np.int64(1379)) == "1,379"
    assert fmt(0.8203) == "0.8203" and fmt(np.float32(0.5)) == "0.5000"
    assert fmt(40.0) == "40" and fmt(1379.0) == "1,379"  # counts stay counts
    assert fmt(1e-15) == "0.0000" and fmt(-1e-13) == "0.0000"  # float noise
    assert fmt(0.00012) == "1.20e-04" and fmt(3.2e7 + 0.5) == "3.20e+07"
    assert fmt(2.5) == "2.5000" and fmt(0.0) == "0.0000"
    assert fmt([0.8, 1.0]) == "[0.8000, 1.0000]"
    assert fmt({"corpus": 1000, "queries": 43}) == "corpus: 1,000, queries: 43"
    assert fmt("test") == "test"
    assert fmt(2.5, 1) == "2.5" and fmt(0.01, 1) == "1e-02"  # digits 1: no negative precision


@pytest.mark.parametrize("v", FLOATS)
def test_terminal_and_gate_summary_style_fixed(v):
    assert fmt(v, style="fixed", missing="-", grouping=False) == f"{v:.4f}"
    assert fmt(v, 2, style="fixed", missing="-", grouping=False) == f"{v:.2f}"
    assert fmt(v, style="fixed", missing="—", grouping=False, sign=True) == f"{v:+.4f}"


@pytest.mark.parametrize("v", FLOATS)
def test_junit_style_general(v):
    assert fmt(v, style="general", missing="missing", grouping=False) == f"{v:.4g}"


def test_missing_values_per_output():
    assert fmt(None, style="fixed", missing="-", grouping=False) == "-"
    assert fmt(None, style="general", missing="missing", grouping=False) == "missing"
    assert fmt([0.6, None], style="fixed", missing="—", grouping=False) == "[0.6000, —]"
    assert fmt(7, style="fixed", grouping=False) == "7"  # integers stay exact


def test_p_values_and_percent():
    assert fmt(0.0009, 3, style="p") == "< 0.001" and fmt(0.4, 3, style="p") == "0.400"
    assert fmt(1, 3, style="p") == "1.000" and fmt(None, 3, style="p") == "–"
    assert fmt(float("nan"), 3, style="p") == "–"
    assert fmt(0.98765, 2, style="percent") == "98.77%"
    assert fmt(1234.5, 2, style="fixed") == "1,234.50"  # seconds in the report
