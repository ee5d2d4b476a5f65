"""Latency check: batch windows, percentiles, the runner's timer hook (no cache, one batch
per call, options restored), machine-dependent flags. Timings themselves are never asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from evalharness.checks.latency import (LatencyCheck, LatencyConfig, batch_windows,
                                        latency_stats, make_timer, peak_rss_mb)
from evalharness.data.resolve import DatasetResolver
from evalharness.encoders.base import BaseOptions
from evalharness.errors import UserError
from evalharness.runner import RunOptions, run_suite
from evalharness.suite import load_suite
from evalharness.components import EncoderContext
from helpers import make_sts, write_suite


def test_batch_windows_wrap_around():
    np.testing.assert_array_equal(batch_windows(5, 2, 4), [[0, 1], [2, 3], [4, 0], [1, 2]])
    np.testing.assert_array_equal(batch_windows(3, 1, 2), [[0], [1]])


def test_latency_stats_by_hand():
    st = latency_stats(np.array([0.01, 0.02, 0.03, 0.04]), 8)
    assert st["texts_per_second"] == pytest.approx(32 / 0.1)
    assert st["p50_ms"] == pytest.approx(25.0)
    assert st["p95_ms"] == pytest.approx(np.percentile([10, 20, 30, 40], 95))


class FakeEncoder:
    def __init__(self):
        self.options = BaseOptions(batch_size=4)
        self.calls = []

    def encode(self, texts, *, role):
        self.calls.append((len(texts), self.options.batch_size, role))
        return np.ones((len(texts), 3), dtype=np.float32)


def test_timer_encodes_one_batch_and_restores_options():
    enc = FakeEncoder()
    seen = []
    timer = make_timer(enc, transform=lambda x: seen.append(x.shape))
    secs = timer(["a"] * 9)
    assert secs >= 0
    assert enc.calls == [(9, 9, "text")]  # batch_size raised to the batch for the call
    assert enc.options.batch_size == 4
    assert seen == [(9, 3)]


def _check(tmp_path, **cfg):
    make_sts(tmp_path / "data")
    config = LatencyConfig(type="latency", dataset="tinysts", **cfg)
    return LatencyCheck("latency", config, DatasetResolver(tmp_path / "data"), seed=0)


def test_check_metrics_with_a_deterministic_timer(tmp_path):
    check = _check(tmp_path, batch_sizes=[1, 4], n_batches=5, warmup=2, n_texts=12)
    assert check.needs() == []  # it asks the embed stage for nothing
    sizes = []

    def timer(texts):
        sizes.append(len(texts))
        return 0.002 * len(texts)  # 2 ms per text

    ctx = EncoderContext("fake", 3)
    ctx.timer = timer
    ctx.load_seconds = 1.5
    res = check.evaluate(None, ctx)
    assert sizes == [1] * 7 + [4] * 7  # warm-up + timed batches per size
    m = res.metrics
    assert set(m) == set(LatencyCheck.metric_names(check.config))
    assert m["texts_per_second_b1"].value == pytest.approx(500.0)
    assert m["texts_per_second_b4"].value == pytest.approx(500.0)
    assert m["texts_per_second"].value == m["texts_per_second_b4"].value
    assert m["p50_ms_b4"].value == pytest.approx(8.0) and m["p95_ms_b1"].value == pytest.approx(2.0)
    assert m["load_seconds"].value == 1.5 and m["peak_rss_mb"].value > 0
    assert all(x.machine_dependent for x in m.values()) and res.machine_dependent
    assert not m["p95_ms_b1"].higher_is_better and m["texts_per_second"].higher_is_better
    assert len(res.details["per_batch_ms"]["4"]) == 5


def test_missing_timer_is_an_error(tmp_path):
    check = _check(tmp_path)
    with pytest.raises(UserError, match="timer"):
        check.evaluate(None, EncoderContext("fake", 3))


def test_sample_is_seeded(tmp_path):
    a = _check(tmp_path, n_texts=5).sample
    b = LatencyCheck("l", LatencyConfig(type="latency", dataset="tinysts", n_texts=5),
                     DatasetResolver(tmp_path / "data"), seed=0).sample
    assert a == b and len(a) == 5


def test_peak_rss_is_positive():
    assert peak_rss_mb() > 10


def test_run_gives_latency_for_base_and_variant(tmp_path):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", """\
suite: latency
bootstrap: 10
encoders:
  rnd: random?dim=16&seed=0
  rnd_bin: {base: rnd, embedding: binary}
tasks:
  sts: {type: sts, dataset: tinysts}
checks:
  latency: {type: latency, dataset: tinysts, batch_sizes: [1, 4], n_batches: 3, warmup: 1}
""")
    out = run_suite(load_suite(suite), RunOptions(data_dir=str(tmp_path / "data"),
                                                  output=str(tmp_path / "run"),
                                                  cache_dir=str(tmp_path / "cache"), log=None))
    assert out.exit_code == 0, out.errors
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    for eid in ("rnd", "rnd_bin"):
        lat = res["results"][eid]["latency"]
        assert lat["machine_dependent"] is True and lat["error"] is None
        assert lat["metrics"]["texts_per_second_b4"]["machine_dependent"] is True
        assert lat["metrics"]["texts_per_second"]["value"] > 0
    # latency is a check: it has no retention entry
    assert list(res["retention"]["rnd_bin"]["metrics"]) == ["sts.cosine_spearman"]


def test_threads_option_is_applied_for_the_measurement_and_restored(tmp_path):
    import torch

    from evalharness.checks.latency import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1) as used:
        assert used == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    check = _check(tmp_path, batch_sizes=[2], n_batches=2, warmup=0, threads=1)
    seen = []
    ctx = EncoderContext("fake", 3)
    ctx.timer = lambda texts: seen.append(torch.get_num_threads()) or 0.01
    res = check.evaluate(None, ctx)
    assert seen == [1, 1] and res.details["torch_threads"] == 1
    assert torch.get_num_threads() == before
