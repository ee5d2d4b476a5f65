"""Latency: texts/s and per-batch milliseconds at several batch sizes, load time, peak RSS.

This is the one component that runs the encoder, through a narrow hook the runner puts on
the :class:`~evalharness.components.EncoderContext`:

``encoder_ctx.timer(texts) -> seconds``
    encodes ``texts`` as ONE batch (for the call, the encoder's ``batch_size`` is set to
    ``len(texts)`` and its token budget ``batch_tokens`` lifted) straight through the
    encoder, never through the embedding cache, applies a variant's output settings
    (int8/binary/truncation) to the result, and returns the wall-clock seconds. The
    vectors are discarded.
``encoder_ctx.load_seconds``
    seconds the runner spent in ``encoder.load()`` (for a variant: deriving it from its
    already loaded base, plus loading the base when the variant was the first to need it).

Protocol: a seeded sample of ``n_texts`` unique texts of the dataset (``checks.base``
text selection); for each batch size ``b`` the batches are consecutive windows of the
sample (wrapping around); ``warmup`` batches are run and discarded, then ``n_batches``
timed. ``texts_per_second_bN`` = timed texts / timed seconds, ``p50_ms_bN`` and
``p95_ms_bN`` are percentiles (numpy's linear interpolation) of the per-batch
milliseconds. ``texts_per_second`` (main) is the throughput at the largest batch size.
``peak_rss_mb`` is the process's peak resident set size so far (``getrusage``
``ru_maxrss``), which includes everything the process did before, not only this encoder.
``threads`` sets torch's intra-op thread count for the measurement (restored after): on a
busy machine, torch's default (one thread per core) can wait for a descheduled core and
give batch-1 latencies many times the single-thread ones; the count used is recorded in
``details.torch_threads``.

Every metric, and the result itself, carries ``machine_dependent: true``: the numbers
depend on the machine and its load, so gates leave them out of baseline regression unless
asked for.
"""

from __future__ import annotations

import contextlib
import resource
import sys
import time
from typing import Literal

import numpy as np
from pydantic import Field

from evalharness.checks.base import CheckConfig, TextsCheck, sample_rows
from evalharness.errors import UserError
from evalharness.results import Metric


class LatencyConfig(CheckConfig):
    type: Literal["latency"] = "latency"
    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8, 32], min_length=1)
    n_texts: int = Field(256, ge=1, description="seeded sample of the dataset's texts")
    n_batches: int = Field(10, ge=1, description="timed batches per batch size")
    warmup: int = Field(2, ge=0, description="untimed batches per batch size")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads during the "
                                "measurement (null: leave torch's setting)")


def make_timer(encoder, transform=None):
    """The runner's hook: ``timer(texts) -> seconds`` for one batch of ``texts``."""

    def timer(texts) -> float:
        texts = list(texts)
        opts = getattr(encoder, "options", None)
        has_bs = opts is not None and "batch_size" in type(opts).model_fields
        try:
            if has_bs:
                one_batch = {"batch_size": max(1, len(texts))}
                if "batch_tokens" in type(opts).model_fields:  # no token budget split
                    one_batch["batch_tokens"] = None
                encoder.options = opts.model_copy(update=one_batch)
            t0 = time.perf_counter()
            out = encoder.encode(texts, role="text")
            if transform is not None:
                transform(np.asarray(out, dtype=np.float32))
            return time.perf_counter() - t0
        finally:
            if has_bs:
                encoder.options = opts

    return timer


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss: KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def batch_windows(n: int, batch_size: int, count: int, start: int = 0) -> np.ndarray:
    """(count, batch_size) indices of consecutive windows over range(n), wrapping."""
    offs = (start + np.arange(count)[:, None] * batch_size + np.arange(batch_size)[None, :])
    return offs % n


def latency_stats(batch_seconds: np.ndarray, batch_size: int) -> dict[str, float]:
    ms = np.asarray(batch_seconds, dtype=np.float64) * 1000.0
    total = float(np.sum(batch_seconds))
    return {"texts_per_second": batch_size * len(ms) / total if total > 0 else float("inf"),
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Set torch's intra-op threads to ``n`` for the block (restored after); yields the
    count in use (None when torch is not imported and no count was asked for)."""
    if n is None:
        torch = sys.modules.get("torch")
        yield torch.get_num_threads() if torch is not None else None
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


def _metric(value, *, n=None) -> Metric:
    return Metric(value=value, n=n, machine_dependent=True)


class LatencyCheck(TextsCheck):
    Config = LatencyConfig
    metrics = {"texts_per_second": True, "texts_per_second_b{b}": True, "p50_ms_b{b}": False,
               "p95_ms_b{b}": False, "load_seconds": False, "peak_rss_mb": False}
    main_metric = "texts_per_second"

    @classmethod
    def metric_names(cls, config) -> list[str]:
        names = ["texts_per_second"]
        for b in config.batch_sizes:
            names += [f"texts_per_second_b{b}", f"p50_ms_b{b}", f"p95_ms_b{b}"]
        return names + ["load_seconds", "peak_rss_mb"]

    def load(self, resolver) -> None:
        super().load(resolver)
        keep = sample_rows(len(self.data.texts), self.config.n_texts, self.seed)
        self.sample = [self.data.texts[i] for i in keep]

    def needs(self):
        return []  # it times the encoder itself; no vectors from the embed stage

    def _time_batches(self, timer, b: int) -> np.ndarray:
        c = self.config
        idx = batch_windows(len(self.sample), b, c.warmup + c.n_batches)
        secs = [timer([self.sample[i] for i in row]) for row in idx]
        return np.array(secs[c.warmup:])

    def evaluate(self, vectors, encoder):
        timer = getattr(encoder, "timer", None)
        if timer is None:
            raise UserError(f"check '{self.id}': the latency check needs the runner's encoder "
                            "timer hook (encoder_ctx.timer), which this context lacks")
        c = self.config
        metrics: dict[str, Metric] = {}
        details = {"batch_sizes": list(c.batch_sizes), "n_texts": len(self.sample),
                   "n_batches": c.n_batches, "warmup": c.warmup, "per_batch_ms": {}}
        with torch_threads(c.threads) as used:
            details["torch_threads"] = used
            for b in c.batch_sizes:
                secs = self._time_batches(timer, b)
                st = latency_stats(secs, b)
                metrics[f"texts_per_second_b{b}"] = _metric(st["texts_per_second"],
                                                            n=len(secs) * b)
                metrics[f"p50_ms_b{b}"] = _metric(st["p50_ms"], n=len(secs))
                metrics[f"p95_ms_b{b}"] = _metric(st["p95_ms"], n=len(secs))
                details["per_batch_ms"][str(b)] = [round(x * 1000, 3) for x in secs]
        top = metrics[f"texts_per_second_b{max(c.batch_sizes)}"]
        metrics = {"texts_per_second": _metric(top.value, n=top.n), **metrics}
        load = getattr(encoder, "load_seconds", None)
        metrics["load_seconds"] = _metric(None if load is None else float(load))
        metrics["peak_rss_mb"] = _metric(peak_rss_mb())
        res = self.result(metrics, details=details)
        res.machine_dependent = True
        return res


__all__ = ["LatencyCheck", "LatencyConfig", "batch_windows", "latency_stats", "make_timer",
           "peak_rss_mb", "torch_threads"]
