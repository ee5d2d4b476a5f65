"""Name -> lazy ``module:object`` registry for encoders, tasks, checks and reporters.

Entries are strings so that nothing heavy (torch, sentence-transformers, mteb) is
imported until a suite actually needs it. Unknown names get a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import importlib
from typing import Any

from evalharness.errors import UserError

TASKS: dict[str, str] = {
    "sts": "evalharness.tasks.sts:STSTask",
    "classification": "evalharness.tasks.classification:ClassificationTask",
    "clustering": "evalharness.tasks.clustering:ClusteringTask",
    "retrieval": "evalharness.tasks.retrieval:RetrievalTask",
}

CHECKS: dict[str, str] = {
    "uniformity": "evalharness.checks.geometry:UniformityCheck",
    "alignment": "evalharness.checks.geometry:AlignmentCheck",
    "anisotropy": "evalharness.checks.geometry:AnisotropyCheck",
    "spectrum": "evalharness.checks.spectrum:SpectrumCheck",
    "robustness": "evalharness.checks.robustness:RobustnessCheck",
    "separation": "evalharness.checks.separation:SeparationCheck",
    "latency": "evalharness.checks.latency:LatencyCheck",
    "ann": "evalharness.checks.ann:AnnCheck",
    "drift": "evalharness.checks.drift:DriftCheck",
}

ENCODERS: dict[str, str] = {
    "st": "evalharness.encoders.sentence_transformer:SentenceTransformerEncoder",
    "minilm": "evalharness.encoders.sentence_transformer:SentenceTransformerEncoder",
    "hf": "evalharness.encoders.hf:HFEncoder",
    "tfidf-lsa": "evalharness.encoders.tfidf_lsa:TfidfLsaEncoder",
    "random": "evalharness.encoders.random:RandomEncoder",
    "py": "evalharness.encoders.python:PythonEncoder",
    "mteb": "evalharness.encoders.mteb_model:MtebEncoder",
    "http": "evalharness.encoders.http:HttpEncoder",
}

KINDS = {"task": TASKS, "check": CHECKS, "encoder": ENCODERS}


def suggest(name: str, choices) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def available(kind: str) -> list[str]:
    table = KINDS[kind]
    out = []
    for name, target in table.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return sorted(out)


def resolve(kind: str, name: str, *, source: str | None = None, line: int | None = None,
            field: str | None = None) -> Any:
    table = KINDS[kind]
    names = available(kind)
    if name not in table or name not in names:
        hint = suggest(name, names) or f"known {kind} types: {', '.join(names)}"
        raise UserError(f"unknown {kind} type '{name}'", source=source, line=line,
                        field=field, hint=hint)
    module, _, attr = table[name].partition(":")
    return getattr(importlib.import_module(module), attr)
