"""Benchmarks, run as modules (``python -m evalharness.bench.NAME``); each writes
``reports/bench/NAME.json`` and prints a table. Timings are reported, never asserted."""
