"""Seeded word- and character-level text perturbations for the robustness check.

Every perturbation is a pure function ``f(text, rate, rng) -> str``; :func:`perturb` seeds
``rng`` from (seed, perturbation name, sha256(text)), so a text always gets the same
perturbation for a seed, whatever else is perturbed and in whatever order.

Words. A text is split on whitespace into tokens (the whitespace between them is kept as
it was). A token is ``prefix + core + suffix`` where prefix/suffix are its leading/trailing
non-word characters (punctuation, quotes, brackets); a *word* is a token with a non-empty
core. Perturbations touch cores only, so punctuation stays where it was: swapping the last
two words of "playing a harp." gives "playing harp a.".

Rate. ``n`` words, ``k = floor(rate * n + 0.5)`` (round half up), at least 1 when
``n >= 2``; texts with fewer than 2 words are returned unchanged by every perturbation.
``k`` is the number of words touched:

- ``synonym``: ``k`` content words are replaced by a WordNet synonym (EDA, Wei & Zou
  2019): candidates are alphabetic words that are not English stop-words (scikit-learn's
  list) and have WordNet synsets as a noun, verb, adjective or adverb; the synonym is a
  lemma, drawn uniformly, of any synset of the word, different from the word and from
  its base forms (morphy), underscores written as spaces. A text with fewer than ``k``
  candidates has all its candidates replaced. Casing follows the replaced word
  (Title -> Title, UPPER -> UPPER).
- ``swap``: ``ceil(k / 2)`` non-overlapping pairs of adjacent words are swapped (each swap
  touches 2 words, so ``k`` or ``k + 1`` words move); at most ``n // 2`` pairs.
- ``shuffle``: the words of one random contiguous span of ``max(k, 2)`` words are put in
  a random order other than the original one (when the span's words are not all equal).
- ``delete``: ``min(k, n - 1)`` random words are deleted (a text never becomes empty); the
  punctuation around a deleted word is kept: its suffix moves to the previous word
  ("a harp." -> "a."), its prefix to the next one; a wrapped word ("(yes)") takes its
  wrappers with it and leaves only sentence punctuation; the trailing punctuation of a
  deleted first word is dropped.
- ``typo``: ``k`` random words that contain a letter get one character edit each, drawn
  uniformly among those that apply: substitution of a letter by a QWERTY-adjacent key,
  insertion of a key adjacent to a letter after it, deletion of a letter (words of 3+
  characters), or transposition of two adjacent differing letters. Case is kept.

Sentence casing: when word order changes (swap, shuffle, delete) and the text started
with a capital, the new first word is capitalised, and a capitalised stop-word that left
the front ("The", "A") is lower-cased.
"""

from __future__ import annotations

import functools

import hashlib
import math
import re
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from evalharness.errors import UserError

PERTURBATIONS = ("synonym", "swap", "shuffle", "delete", "typo")

_TOKEN = re.compile(r"\S+")
_SPLIT = re.compile(r"^(\W*)(.*?)(\W*)$", re.DOTALL)

# QWERTY neighbours (same row left/right, and the keys touching above/below)
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _qwerty_neighbours() -> dict[str, str]:
    pos = {c: (r, i) for r, row in enumerate(_ROWS) for i, c in enumerate(row)}
    out = {}
    for c, (r, i) in pos.items():
        near = []
        for d, row in enumerate(_ROWS):
            if abs(d - r) > 1:
                continue
            # rows are staggered by half a key: row r+1 key j sits under keys j, j+1 of row r
            if d == r:
                cols = (i - 1, i + 1)
            elif d == r + 1:
                cols = (i - 1, i)
            else:
                cols = (i, i + 1)
            near.extend(row[j] for j in cols if 0 <= j < len(row))
        out[c] = "".join(near)
    return out


QWERTY = _qwerty_neighbours()


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """scikit-learn's English stop words (imported on first use: fast CLI start-up)."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


# tokens ---------------------------------------------------------------------------------
@dataclass
class Tokens:
    seps: list[str]  # len(tokens) + 1 whitespace runs around the tokens
    pre: list[str]
    core: list[str]
    suf: list[str]

    @classmethod
    def of(cls, text: str) -> "Tokens":
        seps, pre, core, suf = [], [], [], []
        last = 0
        for m in _TOKEN.finditer(text):
            seps.append(text[last:m.start()])
            p, c, s = _SPLIT.match(m.group()).groups()
            if not c:  # all punctuation: keep it whole, as a non-word
                p, c, s = m.group(), "", ""
            pre.append(p)
            core.append(c)
            suf.append(s)
            last = m.end()
        seps.append(text[last:])
        return cls(seps, pre, core, suf)

    def words(self) -> list[int]:
        return [i for i, c in enumerate(self.core) if c]

    def text(self) -> str:
        parts = [self.seps[0]]
        for i in range(len(self.core)):
            parts.append(self.pre[i] + self.core[i] + self.suf[i])
            parts.append(self.seps[i + 1])
        return "".join(parts)

    def delete(self, i: int) -> None:
        """Delete token i. Its trailing punctuation moves to the previous token and its
        leading punctuation to the next one; a wrapped word ("(yes)", '"yes",') takes its
        wrappers with it and leaves only sentence punctuation (.,;:!?)."""
        n = len(self.core)
        pre, suf = self.pre[i], self.suf[i]
        if pre and suf:
            pre, suf = "", "".join(ch for ch in suf if ch in ".,;:!?")
        if i > 0:
            if i + 1 == n:  # the last word: no dangling comma before the end
                self.suf[i - 1] = self.suf[i - 1].rstrip(",;:-")
            self.suf[i - 1] += suf
        if i + 1 < n:
            self.pre[i + 1] = pre + self.pre[i + 1]
        drop_sep = i + 1 if i + 1 < n else i  # the whitespace after it (before it if last)
        del self.seps[drop_sep]
        del self.pre[i], self.core[i], self.suf[i]


def n_touched(n_words: int, rate: float) -> int:
    """Words to touch: ``floor(rate * n + 0.5)``, at least 1 for ``n >= 2``, 0 below."""
    if n_words < 2:
        return 0
    return min(n_words, max(1, math.floor(rate * n_words + 0.5)))


def _check_rate(rate: float) -> None:
    if not 0 < rate <= 1:
        raise UserError(f"The 'rate' parameter must be in (0, 1]. Got {rate!r} instead.")


def _match_case(word: str, like: str) -> str:
    if len(like) > 1 and like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _fix_sentence_case(tok: Tokens, first_core_before: str | None) -> None:
    """After a change of word order: capitalise the new first word when the text started
    with a capital; lower-case a capitalised stop-word that left the front."""
    words = tok.words()
    if not words or not first_core_before or not first_core_before[:1].isupper():
        return
    first = words[0]
    if tok.core[first] == first_core_before:
        return
    tok.core[first] = tok.core[first][:1].upper() + tok.core[first][1:]
    for i in words[1:]:
        c = tok.core[i]
        title = c[:1].isupper() and (len(c) == 1 or c[1:].islower())
        if c == first_core_before and title and c.lower() in stopwords() and c != "I":
            tok.core[i] = c.lower()
            break


# perturbations ----------------------------------------------------------------------------
def swap(text: str, rate: float, rng: np.random.Generator) -> str:
    tok = Tokens.of(text)
    words = tok.words()
    k = n_touched(len(words), rate)
    if k == 0:
        return text
    n_pairs = min(math.ceil(k / 2), len(words) // 2)
    used = np.zeros(len(words), dtype=bool)
    chosen = []
    for s in rng.permutation(len(words) - 1):
        if not used[s] and not used[s + 1]:
            used[s] = used[s + 1] = True
            chosen.append(s)
            if len(chosen) == n_pairs:
                break
    first = tok.core[words[0]]
    for s in chosen:
        a, b = words[s], words[s + 1]
        tok.core[a], tok.core[b] = tok.core[b], tok.core[a]
    _fix_sentence_case(tok, first)
    return tok.text()


def shuffle(text: str, rate: float, rng: np.random.Generator) -> str:
    tok = Tokens.of(text)
    words = tok.words()
    k = n_touched(len(words), rate)
    if k == 0:
        return text
    span = max(k, 2)
    start = int(rng.integers(0, len(words) - span + 1))
    idx = words[start:start + span]
    cores = [tok.core[i] for i in idx]
    if len(set(cores)) > 1:
        while True:
            order = rng.permutation(span)
            if [cores[j] for j in order] != cores:
                break
        first = tok.core[words[0]]
        for i, j in zip(idx, order):
            tok.core[i] = cores[j]
        _fix_sentence_case(tok, first)
    return tok.text()


def delete(text: str, rate: float, rng: np.random.Generator) -> str:
    tok = Tokens.of(text)
    words = tok.words()
    k = min(n_touched(len(words), rate), len(words) - 1)
    if k <= 0:
        return text
    first = tok.core[words[0]]
    for i in sorted(rng.choice(words, size=k, replace=False).tolist(), reverse=True):
        tok.delete(i)
    _fix_sentence_case(tok, first)
    return tok.text()


def _typo_word(word: str, rng: np.random.Generator) -> str:
    letters = [i for i, c in enumerate(word) if c.lower() in QWERTY]
    ops = []
    if letters:
        ops += ["substitute", "insert"]
        if len(word) >= 3:
            ops.append("delete")
    swaps = [i for i in range(len(word) - 1)
             if word[i] != word[i + 1] and (word[i].isalpha() or word[i + 1].isalpha())]
    if swaps:
        ops.append("transpose")
    if not ops:
        return word
    op = ops[int(rng.integers(len(ops)))]
    if op == "transpose":
        i = swaps[int(rng.integers(len(swaps)))]
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    i = letters[int(rng.integers(len(letters)))]
    if op == "delete":
        return word[:i] + word[i + 1:]
    near = QWERTY[word[i].lower()]
    key = near[int(rng.integers(len(near)))]
    key = key.upper() if word[i].isupper() else key
    if op == "substitute":
        return word[:i] + key + word[i + 1:]
    return word[:i + 1] + key + word[i + 1:]


def typo(text: str, rate: float, rng: np.random.Generator) -> str:
    tok = Tokens.of(text)
    words = tok.words()
    k = n_touched(len(words), rate)
    cands = [i for i in words if any(c.isalpha() for c in tok.core[i])]
    k = min(k, len(cands))
    if k == 0:
        return text
    for i in rng.choice(cands, size=k, replace=False).tolist():
        tok.core[i] = _typo_word(tok.core[i], rng)
    return tok.text()


class SynonymSource:
    """WordNet synonyms of a word, cached per lower-cased word."""

    POS = ("n", "v", "a", "r")

    def __init__(self, wordnet=None):
        if wordnet is None:
            from evalharness.checks.wordnet import load_wordnet

            wordnet = load_wordnet()
        self.wn = wordnet
        self._cache: dict[str, tuple[str, ...]] = {}

    def candidates(self, word: str) -> tuple[str, ...]:
        low = word.lower()
        if low in self._cache:
            return self._cache[low]
        out: tuple[str, ...] = ()
        if low.isalpha() and len(low) > 1 and low not in stopwords():
            bases = {low}
            for pos in self.POS:  # every base form morphy finds ("men" -> men, man)
                bases.update(b.lower() for b in self.wn._morphy(low, pos))
            seen: dict[str, str] = {}  # lower -> first spelling met
            for syn in self.wn.synsets(low):
                for lemma in syn.lemma_names():
                    name = lemma.replace("_", " ")
                    if name.lower() not in bases:
                        seen.setdefault(name.lower(), name)
            out = tuple(seen.values())
        self._cache[low] = out
        return out


_DEFAULT_SOURCE: SynonymSource | None = None


def synonym_edits(text: str, rate: float, rng: np.random.Generator, *,
                  source: SynonymSource | None = None) -> tuple["Tokens", list[tuple]]:
    """The replacements ``synonym`` makes: (tokens after, [(token index, old, new)])."""
    global _DEFAULT_SOURCE
    if source is None:
        if _DEFAULT_SOURCE is None:
            _DEFAULT_SOURCE = SynonymSource()
        source = _DEFAULT_SOURCE
    tok = Tokens.of(text)
    words = tok.words()
    k = n_touched(len(words), rate)
    cands = [i for i in words if source.candidates(tok.core[i])] if k else []
    k = min(k, len(cands))
    edits = []
    if k:
        for i in sorted(rng.choice(cands, size=k, replace=False).tolist()):
            old = tok.core[i]
            options = source.candidates(old)
            tok.core[i] = _match_case(options[int(rng.integers(len(options)))], old)
            edits.append((i, old, tok.core[i]))
    return tok, edits


def synonym(text: str, rate: float, rng: np.random.Generator, *,
            source: SynonymSource | None = None) -> str:
    tok, edits = synonym_edits(text, rate, rng, source=source)
    return tok.text() if edits else text


FUNCTIONS: dict[str, Callable[..., str]] = {
    "synonym": synonym, "swap": swap, "shuffle": shuffle, "delete": delete, "typo": typo,
}


def text_rng(seed: int, name: str, text: str) -> np.random.Generator:
    """The generator for one (seed, perturbation, text): independent of any other text."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())] + words)


def perturb(name: str, text: str, rate: float = 0.10, seed: int = 42, **kwargs) -> str:
    """``text`` perturbed by ``name`` at ``rate``, deterministic in (seed, name, text)."""
    if name not in FUNCTIONS:
        raise UserError(f"unknown perturbation '{name}'",
                        hint=f"known perturbations: {', '.join(PERTURBATIONS)}")
    _check_rate(rate)
    return FUNCTIONS[name](text, rate, text_rng(seed, name, text), **kwargs)


def perturb_all(name: str, texts, rate: float = 0.10, seed: int = 42, **kwargs) -> list[str]:
    """``perturb`` over texts; the synonym source (WordNet) is loaded once."""
    if name == "synonym" and "source" not in kwargs:
        kwargs["source"] = SynonymSource()
    return [perturb(name, t, rate, seed, **kwargs) for t in texts]
