"""Retention of encoder variants: variant score / base score for every main task metric.

Written by the runner to the top level of results.json (only when the suite has variants)::

    "retention": {
      "minilm_bf16": {
        "base": "minilm",
        "settings": {"dtype": "bfloat16"},
        "metrics": {
          "stsb.cosine_spearman": {"variant": 0.8201, "base": 0.8203, "retention": 0.9998},
          ...
        }
      }
    }

Only tasks (``kind == "task"``) count, through their ``main_metric``; a component that
failed for the variant or the base, or a base value of 0 or null, gives
``retention: null``. Checks are left out: their main metrics (latency, drift, geometry)
are not scores whose ratio means "how much quality is kept".
"""

from __future__ import annotations


def retention_ratio(variant: float | None, base: float | None) -> float | None:
    if variant is None or base is None or base == 0:
        return None
    return float(variant) / float(base)


def compute_retention(results, specs: dict) -> dict:
    """``{variant_id: {base, settings, metrics: {TASK.METRIC: {variant, base, retention}}}}``
    for every variant spec (type ``variant``) of the run."""
    out = {}
    for vid, spec in specs.items():
        if spec.type != "variant":
            continue
        bid = spec.target
        base_res = results.results.get(bid, {})
        var_res = results.results.get(vid, {})
        metrics = {}
        for cid, bcomp in base_res.items():
            if bcomp.kind != "task" or not bcomp.main_metric:
                continue
            name = bcomp.main_metric
            bm = bcomp.metrics.get(name)
            vcomp = var_res.get(cid)
            vm = vcomp.metrics.get(name) if vcomp is not None and not vcomp.error else None
            bval = bm.value if bm is not None and not bcomp.error else None
            vval = vm.value if vm is not None else None
            metrics[f"{cid}.{name}"] = {"variant": vval, "base": bval,
                                        "retention": retention_ratio(vval, bval)}
        out[vid] = {"base": bid, "settings": dict(spec.options), "metrics": metrics}
    return out


__all__ = ["compute_retention", "retention_ratio"]
