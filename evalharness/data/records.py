"""In-memory dataset records for the three layouts (pairs, labelled texts, BEIR)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class DatasetInfo:
    name: str
    split: str
    rows: int
    checksum: str
    path: str
    layout: str
    extra: dict = field(default_factory=dict)

    def record(self) -> dict:
        out = {"split": self.split, "rows": self.rows, "checksum": self.checksum,
               "layout": self.layout, "path": self.path}
        out.update(self.extra)
        return out


@dataclass
class PairsData:
    """STS pairs: sentence1, sentence2, gold score."""
    sentence1: list[str]
    sentence2: list[str]
    scores: np.ndarray
    info: DatasetInfo

    def __len__(self):
        return len(self.scores)


@dataclass
class LabelledData:
    texts: list[str]
    labels: np.ndarray  # int codes 0..k-1
    label_names: list[str]  # name per code
    info: DatasetInfo
    fields: dict[str, list[str]] = field(default_factory=dict)  # other text fields, e.g. subject
    ids: list[str] | None = None

    def __len__(self):
        return len(self.texts)

    def field(self, name: str) -> list[str]:
        if name == "text":
            return self.texts
        return self.fields[name]


@dataclass
class RetrievalData:
    corpus_ids: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}
    info: DatasetInfo
