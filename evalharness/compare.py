"""Paired comparisons of encoders over the same items.

For every metric that two results share, the difference ``B - A`` with a paired-bootstrap
confidence interval and a two-sided p-value:

* items are matched by their ``id`` (``ComponentResult.items["id"]``); only items present
  in both results take part;
* one set of resample indices (seeded) is drawn over the matched items and applied to the
  per-item arrays of *both* sides, and the metric's ``stat`` (``Metric.stat`` over
  ``Metric.inputs``, e.g. Spearman of ``gold`` and ``cosine``) is recomputed on each
  resample, giving the bootstrap distribution ``d*`` of the difference;
* the CI is the percentile interval of ``d*`` at level ``1 - alpha``;
* the two-sided p-value inverts that percentile interval:
  ``p = min(1, 2 * min((#{d* <= 0} + 1) / (B + 1), (#{d* >= 0} + 1) / (B + 1)))`` -- the
  smallest ``alpha`` at which the ``1 - alpha`` percentile interval excludes 0 (the ``+1``
  keeps ``p > 0`` with a finite number of resamples ``B``).

A winner is named only when ``p < alpha``; it is the side whose value is better given
``higher_is_better``. Metrics without per-item data (no ``stat``/``inputs`` or no
``items``) get the difference only, with ``p_value: null`` and no winner.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from evalharness.errors import UserError
from evalharness.results import ComponentResult, Metric, RunResults
from evalharness.stats import STATISTICS, bootstrap_distribution, resample_indices, statistic

DEFAULT_BOOT = 1000
DEFAULT_SEED = 42
DEFAULT_ALPHA = 0.05


def is_machine_dependent(comp: ComponentResult | None, metric: Metric | None = None) -> bool:
    """Metrics whose value depends on the machine (timings, throughput) carry
    ``machine_dependent: true`` on the metric or on their component."""
    return bool((comp is not None and comp.machine_dependent)
                or (metric is not None and metric.machine_dependent))


def p_value_two_sided(d: np.ndarray) -> float:
    """Two-sided bootstrap p-value of ``difference == 0`` from the distribution ``d``."""
    b = len(d)
    if b == 0:
        return float("nan")
    le = (np.count_nonzero(d <= 0) + 1) / (b + 1)
    ge = (np.count_nonzero(d >= 0) + 1) / (b + 1)
    return float(min(1.0, 2.0 * min(le, ge)))


def paired_bootstrap(stat: str, arrays_a: list, arrays_b: list, *, n_boot: int = DEFAULT_BOOT,
                     seed: int = DEFAULT_SEED, alpha: float = DEFAULT_ALPHA) -> dict:
    """Paired bootstrap of ``stat(*arrays_b) - stat(*arrays_a)``; arrays are aligned by item."""
    arrays_a = [np.asarray(a) for a in arrays_a]
    arrays_b = [np.asarray(b) for b in arrays_b]
    n = len(arrays_a[0])
    if any(len(x) != n for x in arrays_a + arrays_b):
        raise ValueError("paired arrays must have the same number of items")
    diff = statistic(stat, *arrays_b) - statistic(stat, *arrays_a)
    out = {"diff": float(diff), "ci": None, "p_value": None, "n": n, "n_boot": n_boot}
    if n_boot <= 0 or n < 2:
        return out
    idx = resample_indices(n, n_boot, seed)
    da = bootstrap_distribution(stat, arrays_a, n_boot=n_boot, seed=seed, idx=idx)
    db = bootstrap_distribution(stat, arrays_b, n_boot=n_boot, seed=seed, idx=idx)
    d = db - da
    d = d[np.isfinite(d)]
    if not len(d):
        return out
    lo, hi = np.quantile(d, [alpha / 2, 1 - alpha / 2])
    out["ci"] = [float(lo), float(hi)]
    out["p_value"] = p_value_two_sided(d)
    return out


def match_items(items_a: dict, items_b: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """Indices into A and B of the items present in both, matched by ``id``.

    Without ids on either side, items are matched by position when both have the same
    number of them. Raises ValueError when they cannot be matched."""
    if "id" in items_a and "id" in items_b:
        ida, idb = np.asarray(items_a["id"]), np.asarray(items_b["id"])
        if ida.dtype != idb.dtype:
            ida, idb = ida.astype(str), idb.astype(str)
        if len(np.unique(ida)) != len(ida) or len(np.unique(idb)) != len(idb):
            raise ValueError("item ids are not unique")
        _, ia, ib = np.intersect1d(ida, idb, assume_unique=True, return_indices=True)
        return ia, ib, "id"
    na = len(next(iter(items_a.values()), []))
    nb = len(next(iter(items_b.values()), []))
    if na != nb:
        raise ValueError("items have no ids and different counts")
    return np.arange(na), np.arange(nb), "position"


def _paired_arrays(ca: ComponentResult, cb: ComponentResult, ma: Metric, mb: Metric):
    """(arrays A, arrays B, how matched) for the metric's stat, or (None, None, reason)."""
    if not ma.stat or not ma.inputs or ma.stat != mb.stat or ma.inputs != mb.inputs:
        return None, None, "no per-item statistic"
    if ma.stat not in STATISTICS:
        return None, None, f"unknown statistic '{ma.stat}'"
    if not ca.items or not cb.items:
        return None, None, "no per-item data"
    missing = [k for k in ma.inputs if k not in ca.items or k not in cb.items]
    if missing:
        return None, None, f"per-item arrays missing: {missing}"
    try:
        ia, ib, how = match_items(ca.items, cb.items)
    except ValueError as exc:
        return None, None, str(exc)
    if len(ia) < 2:
        return None, None, "fewer than 2 matched items"
    try:
        arrays_a = [np.asarray(ca.items[k])[ia] for k in ma.inputs]
        arrays_b = [np.asarray(cb.items[k])[ib] for k in ma.inputs]
    except (IndexError, ValueError) as exc:  # per-item arrays not aligned with the ids
        return None, None, f"per-item arrays do not match the item ids: {exc}"
    return arrays_a, arrays_b, how


def compare_metric(ca: ComponentResult, cb: ComponentResult, name: str, *,
                   n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
                   alpha: float = DEFAULT_ALPHA) -> dict | None:
    """Difference B - A of one metric with its paired-bootstrap CI and p-value, or None
    when the metric is missing on either side."""
    ma, mb = ca.metrics.get(name), cb.metrics.get(name)
    if ma is None or mb is None or ma.value is None or mb.value is None:
        return None
    out = {"value_a": ma.value, "value_b": mb.value, "diff": mb.value - ma.value,
           "ci": None, "p_value": None, "n": None, "higher_is_better": mb.higher_is_better,
           "method": "difference only"}
    arrays_a, arrays_b, how = _paired_arrays(ca, cb, ma, mb)
    if arrays_a is None:
        out["note"] = how
        return out
    try:
        boot = paired_bootstrap(ma.stat, arrays_a, arrays_b, n_boot=n_boot, seed=seed,
                                alpha=alpha)
    except (ValueError, TypeError, IndexError) as exc:
        out["note"] = f"paired bootstrap failed: {exc}"
        return out
    full = boot["n"] == len(ca.items[ma.inputs[0]]) == len(cb.items[mb.inputs[0]])
    if not full:  # a subset of the items: the difference on the matched items only
        out["diff"] = boot["diff"]
        out["note"] = f"{boot['n']} matched items"
    out.update(ci=boot["ci"], p_value=boot["p_value"], n=boot["n"], n_boot=boot["n_boot"],
               method=f"paired bootstrap ({how})")
    return out


def _decide(row: dict, label_a: str, label_b: str, alpha: float) -> dict:
    p = row.get("p_value")
    sig = p is not None and not math.isnan(p) and p < alpha and row["diff"] != 0
    row["significant"] = bool(sig)
    row["winner"] = None
    if sig:
        b_better = (row["diff"] > 0) == bool(row["higher_is_better"])
        row["winner"] = label_b if b_better else label_a
    return row


def compare_results(run_a: RunResults, enc_a: str, run_b: RunResults, enc_b: str, *,
                    label_a: str | None = None, label_b: str | None = None,
                    n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
                    alpha: float = DEFAULT_ALPHA) -> list[dict]:
    """Every metric shared by encoder ``enc_a`` of ``run_a`` and ``enc_b`` of ``run_b``."""
    label_a = label_a or enc_a
    label_b = label_b or enc_b
    comps_a = run_a.results.get(enc_a, {})
    comps_b = run_b.results.get(enc_b, {})
    rows = []
    for cid, ca in comps_a.items():
        cb = comps_b.get(cid)
        if cb is None or ca.error or cb.error:
            continue
        main = cb.main_metric or ca.main_metric
        for name in ca.metrics:
            row = compare_metric(ca, cb, name, n_boot=n_boot, seed=seed, alpha=alpha)
            if row is None:
                continue
            head = {"metric": f"{cid}.{name}", "a": label_a, "b": label_b,
                    "encoder_a": enc_a, "encoder_b": enc_b, "main": name == main}
            if is_machine_dependent(ca, ca.metrics[name]) or \
                    is_machine_dependent(cb, cb.metrics[name]):
                head["machine_dependent"] = True
            head.update(row)
            head["alpha"] = alpha
            rows.append(_decide(head, label_a, label_b, alpha))
    return rows


def compare_encoders(results: RunResults, *, reference: str | None = None,
                     n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
                     alpha: float = DEFAULT_ALPHA) -> list[dict]:
    """Within one run: the reference encoder (default: the first) against each other."""
    encs = [e for e in results.encoders if not results.encoders[e].error]
    if reference is None:
        reference = encs[0] if encs else None
    elif reference not in encs:
        from evalharness.registry import suggest

        raise UserError(f"reference encoder '{reference}' is not among the encoders of this "
                        f"run", hint=suggest(reference, encs) or f"encoders: {', '.join(encs)}")
    rows = []
    for other in encs:
        if other == reference:
            continue
        rows.extend(compare_results(results, reference, results, other, n_boot=n_boot,
                                    seed=seed, alpha=alpha))
    return rows


def run_labels(paths: list[str]) -> list[str]:
    """Short, distinct labels for results files: the run folder for ``.../results.json``,
    else the file stem; the path as given where those collide."""
    labels = [Path(p).parent.name if Path(p).name == "results.json" and Path(p).parent.name
              else Path(p).stem for p in paths]
    if len(set(labels)) != len(labels):
        labels = [str(p) for p in paths]
    if len(set(labels)) != len(labels):
        labels = [f"{lab}#{i + 1}" for i, lab in enumerate(labels)]
    return labels


def encoder_pairs(run_a: RunResults, run_b: RunResults) -> list[tuple[str, str]]:
    """Encoders to compare across two runs: the same ids, or the only encoder of each."""
    common = [e for e in run_a.encoders if e in run_b.encoders]
    if common:
        return [(e, e) for e in common]
    if len(run_a.encoders) == 1 and len(run_b.encoders) == 1:
        return [(next(iter(run_a.encoders)), next(iter(run_b.encoders)))]
    return []


def compare_runs(runs: list[RunResults], labels: list[str], *, n_boot: int = DEFAULT_BOOT,
                 seed: int = DEFAULT_SEED, alpha: float = DEFAULT_ALPHA) -> list[dict]:
    """Several runs: the first run against each other one, encoder by encoder."""
    rows = []
    for run_b, lab_b in zip(runs[1:], labels[1:]):
        pairs = encoder_pairs(runs[0], run_b)
        if not pairs:
            raise UserError(f"'{labels[0]}' and '{lab_b}' share no encoder id "
                            f"({', '.join(runs[0].encoders)} vs {', '.join(run_b.encoders)})",
                            hint="compare runs of the same encoders, or files with one "
                                 "encoder each")
        single = len(pairs) == 1
        for ea, eb in pairs:
            la = labels[0] if single else f"{labels[0]}:{ea}"
            lb = lab_b if single else f"{lab_b}:{eb}"
            rows.extend(compare_results(runs[0], ea, run_b, eb, label_a=la, label_b=lb,
                                        n_boot=n_boot, seed=seed, alpha=alpha))
    return rows


def compare_files(paths: list[str], *, reference: str | None = None,
                  n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED,
                  alpha: float = DEFAULT_ALPHA) -> list[dict]:
    """Paired comparisons of results files: one file of several encoders (the
    ``reference``, default the first, against each other), or several files (the first
    run against each other one). Bad input (a file, alpha, the resample count) is a
    ``UserError``."""
    from evalharness.results import load_results

    if not 0 < alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {alpha}")
    if n_boot < 0:
        raise UserError(f"--bootstrap must be >= 0, got {n_boot}")
    runs = [load_results(p) for p in paths]
    if len(runs) == 1:
        if len(runs[0].encoders) < 2:
            raise UserError("one results file with a single encoder: nothing to compare",
                            source=paths[0],
                            hint="give two or more results files, or a run of several encoders")
        return compare_encoders(runs[0], reference=reference, n_boot=n_boot, seed=seed,
                                alpha=alpha)
    return compare_runs(runs, run_labels(paths), n_boot=n_boot, seed=seed, alpha=alpha)


def dumps_comparisons(rows: list[dict]) -> str:
    """The comparison rows as JSON (``evalharness compare -o FILE``)."""
    return json.dumps(rows, indent=1, allow_nan=False, default=_json_default) + "\n"


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
