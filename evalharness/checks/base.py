"""The base of every check, and the shared pieces of the intrinsic checks: which texts a
check looks at, and seeded sampling.

:class:`Check` is a :class:`~evalharness.components.Component` of kind "check".
:class:`TextsCheck` is a check of the unique texts of one dataset, which it reads in one
of two layouts (see ``evalharness.data.local``):

- ``pairs`` (STS): the texts are ``sentence1`` ∪ ``sentence2``, taken row by row
  (s1[0], s2[0], s1[1], ...), duplicates dropped (first occurrence kept);
- ``labelled``: the texts are the ``text`` field (with their labels), duplicates dropped
  (first occurrence and its label kept).

``source: auto`` (the default) decides by the first row of ``{split}.jsonl``: a row with
``sentence1`` is a pairs dataset, a row with ``text`` and ``label`` is a labelled one.
``limit`` keeps the first N texts (after de-duplication). Duplicates are dropped because
a repeated text gives a zero distance / cosine 1 pair that says nothing about the encoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from evalharness.components import Component, ComponentConfig, TextNeed
from evalharness.data.records import LabelledData, PairsData
from evalharness.errors import UserError

Source = Literal["auto", "pairs", "labelled"]


class CheckConfig(ComponentConfig):
    """Fields common to the checks: the dataset layout to read (``source``)."""
    source: Source = "auto"


@dataclass
class CheckTexts:
    """What a check looks at: unique texts, and the pairs or labels they came with."""
    layout: str  # "pairs" | "labelled"
    texts: list[str]
    labels: np.ndarray | None = None  # labelled: int code per text
    label_names: list[str] | None = None
    pairs: PairsData | None = None  # pairs: the (limited) rows, for alignment


def detect_layout(resolver, ref, split: str) -> str:
    """``pairs`` or ``labelled``, from the first non-empty row of ``{split}.jsonl``."""
    name, folder = resolver.folder(ref)
    path = folder / f"{split}.jsonl"
    if not path.exists():
        raise UserError(f"dataset '{name}' has no split '{split}': expected {path}",
                        hint="a check reads a pairs ({split}.jsonl with sentence1, sentence2, "
                             "score) or a labelled ({split}.jsonl with text, label) dataset")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    row = None
                break
        else:
            row = None
    if isinstance(row, dict) and "sentence1" in row:
        return "pairs"
    if isinstance(row, dict) and "text" in row and "label" in row:
        return "labelled"
    raise UserError(f"cannot tell the layout of dataset '{name}' from {path}",
                    hint="checks need pairs (sentence1, sentence2, score) or labelled texts "
                         "(text, label); set 'source: pairs' or 'source: labelled' to force one")


def unique_first(texts) -> np.ndarray:
    """Indices of the first occurrence of each distinct text, in order."""
    seen: dict[str, None] = {}
    keep = []
    for i, t in enumerate(texts):
        if t not in seen:
            seen[t] = None
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def load_check_texts(resolver, config, *, require: str | None = None) -> CheckTexts:
    """The texts of ``config.dataset`` for a check (see the module docstring).

    ``require`` ("pairs" | "labelled") makes a check that only makes sense on one layout
    fail with a message the user can act on.
    """
    layout = config.source
    if layout == "auto":
        layout = detect_layout(resolver, config.dataset, config.split)
    if require is not None and layout != require:
        raise UserError(f"check '{config.type}' needs a {require} dataset, but "
                        f"'{config.dataset}' is read as {layout}",
                        field="source",
                        hint=f"use a {require} dataset (e.g. "
                             f"{'stsb' if require == 'pairs' else 'agnews'}) or set "
                             f"'source: {require}'")
    if layout == "pairs":
        data: PairsData = resolver.pairs(config.dataset, config.split)
        inter = [t for pair in zip(data.sentence1, data.sentence2) for t in pair]
        texts = [inter[i] for i in unique_first(inter)]
        texts = texts if config.limit is None else texts[:config.limit]
        return CheckTexts("pairs", texts, pairs=data)
    data: LabelledData = resolver.labelled(config.dataset, config.split)
    keep = unique_first(data.texts)
    if config.limit is not None:
        keep = keep[:config.limit]
    return CheckTexts("labelled", [data.texts[i] for i in keep], labels=data.labels[keep],
                      label_names=list(data.label_names))


def sample_rows(n: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted seeded sample of ``k`` of ``range(n)`` without replacement (all when k >= n)."""
    if k is None or k >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=k, replace=False))


def pair_from_index(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Map linear indices 0..n(n-1)/2-1 to (i, j), i < j, in ``np.triu_indices(n, 1)`` order."""
    k = np.asarray(k, dtype=np.int64)
    # row i holds n-1-i pairs; start(i) = i*(2n-i-1)/2. Solve start(i) <= k, then fix rounding.
    i = np.floor(((2 * n - 1) - np.sqrt((2.0 * n - 1) ** 2 - 8.0 * k)) / 2).astype(np.int64)
    i = np.clip(i, 0, n - 2)
    start = i * (2 * n - i - 1) // 2
    over = start > k
    i[over] -= 1
    nxt = (i + 1) * (2 * n - i - 2) // 2
    under = nxt <= k
    i[under] += 1
    start = i * (2 * n - i - 1) // 2
    j = k - start + i + 1
    return i, j


def sample_pairs(n: int, max_pairs: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """All distinct pairs (i < j) of n items, or a seeded sample of ``max_pairs`` of them
    drawn uniformly without replacement."""
    total = n * (n - 1) // 2
    if max_pairs is None or total <= max_pairs:
        i, j = np.triu_indices(n, 1)
        return i.astype(np.int64), j.astype(np.int64)
    rng = np.random.default_rng(seed)
    k = np.sort(rng.choice(total, size=max_pairs, replace=False))
    return pair_from_index(k, n)


class Check(Component):
    """A component of kind "check": an intrinsic property of the vectors, not a task score."""
    kind: ClassVar[str] = "check"


class TextsCheck(Check):
    """A check that looks at the unique texts of one dataset (see the module docstring).

    Subclasses set ``requires`` to "pairs" / "labelled" when only one layout makes sense.
    ``self.data`` is a :class:`CheckTexts`; ``self.text_vectors(vectors)`` is its matrix.
    """
    Config: ClassVar[type[ComponentConfig]] = CheckConfig
    requires: ClassVar[str | None] = None

    def load(self, resolver) -> None:
        self.data = load_check_texts(resolver, self.config, require=self.requires)
        if not self.data.texts:
            raise UserError(f"check '{self.id}': dataset '{self.config.dataset}' has no texts")
        self.dataset_name = (self.data.pairs.info.name if self.data.pairs is not None
                             else resolver.folder(self.config.dataset)[0])

    def needs(self):
        return [TextNeed("text", tuple(self.data.texts))]

    def text_vectors(self, vectors) -> np.ndarray:
        return np.asarray(vectors.get("text", self.data.texts), dtype=np.float32)


__all__ = ["Check", "CheckConfig", "CheckTexts", "Source", "TextsCheck", "detect_layout",
           "load_check_texts", "pair_from_index", "sample_pairs", "sample_rows", "unique_first"]
