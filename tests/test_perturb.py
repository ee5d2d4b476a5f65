"""Seeded text perturbations: determinism, the rate rule, WordNet synonyms checked with
nltk's reader, QWERTY typos, punctuation/casing, and the missing-WordNet message."""

from __future__ import annotations

import re

import numpy as np
import pytest

from evalharness.checks import perturb as P
from evalharness.checks.wordnet import load_wordnet
from evalharness.errors import UserError

TEXTS = [
    "A man is playing a harp.",
    "The quick brown fox jumps over the lazy dog near the old river bank today.",
    "Stocks fell sharply on Monday, as investors worried about rising interest rates "
    "and weak corporate earnings in the technology sector.",
    "Two dogs run through a green field.",
    "He said \"yes\" (twice) and left!",
]
DISTINCT = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
            "november oscar papa quebec romeo sierra tango")


def _wordnet_or_skip():
    try:
        return load_wordnet()
    except UserError:
        pytest.skip("WordNet is not installed (apt-get install wordnet-base "
                    "wordnet-sense-index)")


@pytest.mark.parametrize("n,rate,k", [(0, 0.1, 0), (1, 0.5, 0), (2, 0.1, 1), (9, 0.1, 1),
                                      (10, 0.1, 1), (15, 0.1, 2), (20, 0.1, 2), (25, 0.1, 3),
                                      (34, 0.1, 3), (35, 0.1, 4), (10, 1.0, 10), (7, 0.5, 4)])
def test_rate_rule(n, rate, k):
    assert P.n_touched(n, rate) == k


def test_tokens_roundtrip_keeps_whitespace_and_punctuation():
    for t in TEXTS + ["  leading and\ttabs\n new line  ", "", "-- ... !!"]:
        assert P.Tokens.of(t).text() == t
    tok = P.Tokens.of('He said "yes," (twice).')
    assert tok.core == ["He", "said", "yes", "twice"]
    assert tok.pre == ["", "", '"', "("] and tok.suf == ["", "", ',"', ")."]


@pytest.mark.parametrize("name", [p for p in P.PERTURBATIONS if p != "synonym"])
def test_same_seed_same_output_independent_of_order(name):
    a = [P.perturb(name, t, 0.2, seed=7) for t in TEXTS]
    b = P.perturb_all(name, TEXTS[::-1], 0.2, seed=7)[::-1]
    assert a == b
    other = [P.perturb(name, t, 0.2, seed=8) for t in TEXTS]
    assert other != a  # another seed gives other perturbations
    assert any(x != t for x, t in zip(a, TEXTS))


def test_synonym_deterministic():
    _wordnet_or_skip()
    a = P.perturb_all("synonym", TEXTS, 0.2, seed=3)
    assert a == P.perturb_all("synonym", TEXTS[::-1], 0.2, seed=3)[::-1]
    assert a == [P.perturb("synonym", t, 0.2, seed=3) for t in TEXTS]


def test_short_texts_unchanged():
    for name in ("swap", "shuffle", "delete", "typo"):
        assert P.perturb(name, "Hello.", 0.5) == "Hello."
        assert P.perturb(name, "", 0.5) == ""


def test_bad_rate_and_name():
    with pytest.raises(UserError, match="'rate' parameter"):
        P.perturb("swap", "a b c", 0.0)
    with pytest.raises(UserError, match="known perturbations"):
        P.perturb("swapp", "a b c", 0.1)


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.35, 0.5])
def test_rate_respected_delete_typo(rate):
    n = len(DISTINCT.split())
    k = P.n_touched(n, rate)
    for seed in range(20):
        out = P.perturb("delete", DISTINCT, rate, seed).lower().split()
        assert len(out) == n - k and set(out) <= set(DISTINCT.split())
        ty = P.perturb("typo", DISTINCT, rate, seed).split()
        assert len(ty) == n  # a typo never merges or splits words
        assert sum(a != b for a, b in zip(ty, DISTINCT.split())) == k


@pytest.mark.parametrize("rate", [0.1, 0.2, 0.35, 0.5])
def test_rate_respected_swap_shuffle(rate):
    orig = DISTINCT.split()
    k = P.n_touched(len(orig), rate)
    for seed in range(20):
        sw = P.perturb("swap", DISTINCT, rate, seed).split()
        assert sorted(sw) == sorted(orig)
        moved = [i for i, (a, b) in enumerate(zip(sw, orig)) if a != b]
        assert abs(len(moved) - k) <= 1
        # every moved word is swapped with an adjacent one
        for i in moved:
            assert (i + 1 < len(orig) and sw[i] == orig[i + 1]) or (i > 0 and sw[i] == orig[i - 1])
        sh = P.perturb("shuffle", DISTINCT, rate, seed).split()
        assert sorted(sh) == sorted(orig)
        moved = [i for i, (a, b) in enumerate(zip(sh, orig)) if a != b]
        span = max(k, 2)
        assert 2 <= len(moved) <= span and moved[-1] - moved[0] < span  # one contiguous span


def test_punctuation_and_sentence_case_kept():
    text = "A man is playing a harp."
    nonword = re.sub(r"[\w\s]", "", text)
    for name in ("swap", "shuffle", "typo"):
        for seed in range(30):
            out = P.perturb(name, text, 0.3, seed)
            assert re.sub(r"[\w\s]", "", out) == nonword  # punctuation kept in place
            assert out.endswith(".") and out[0].isupper()
    for seed in range(30):
        out = P.perturb("delete", text, 0.3, seed)
        assert out.endswith(".") and out[0].isupper()
    # swapping the first two words: the new first word is capitalised, the article lowered
    assert P.perturb("swap", "The cat sat.", 0.5, 0) in ("Cat the sat.", "The sat cat.")
    assert P.perturb("swap", "A man", 0.5, 0) == "Man a"


def test_delete_keeps_sentence_punctuation():
    tok = P.Tokens.of("A man is playing a harp.")
    tok.delete(5)
    assert tok.text() == "A man is playing a."
    tok = P.Tokens.of("Hello, world")
    tok.delete(1)
    assert tok.text() == "Hello"
    tok = P.Tokens.of('He said "yes", then left.')
    tok.delete(2)
    assert tok.text() == "He said, then left."
    tok = P.Tokens.of("Wow! Great game.")
    tok.delete(0)
    assert tok.text() == "Great game."


def test_qwerty_neighbours_by_hand():
    assert set(P.QWERTY["s"]) == set("adwezx")
    assert set(P.QWERTY["q"]) == set("wa")
    assert set(P.QWERTY["g"]) == set("fhtyvb")
    assert set(P.QWERTY["m"]) == set("njk")
    for c, near in P.QWERTY.items():  # adjacency is symmetric
        assert all(c in P.QWERTY[d] for d in near)


def test_typo_edits_are_keyboard_typos():
    """Each typo is one of: a QWERTY-neighbour substitution or insertion, a deletion, or a
    transposition of adjacent letters; case is kept."""
    seen = set()
    for seed in range(300):
        rng = np.random.default_rng(seed)
        w = "Keyboard"
        t = P._typo_word(w, rng)
        assert t != w
        if len(t) == len(w):
            diff = [i for i in range(len(w)) if t[i] != w[i]]
            if len(diff) == 1:
                i = diff[0]
                assert t[i].lower() in P.QWERTY[w[i].lower()]
                assert t[i].isupper() == w[i].isupper()
                seen.add("substitute")
            else:
                i, j = diff
                assert j == i + 1 and t[i] == w[j] and t[j] == w[i]
                seen.add("transpose")
        elif len(t) == len(w) + 1:
            i = next(i for i in range(len(w)) if t[i] != w[i]) if t[:-1] != w else len(w)
            assert t[:i] + t[i + 1:] == w and t[i].lower() in P.QWERTY[t[i - 1].lower()]
            seen.add("insert")
        else:
            assert len(t) == len(w) - 1
            assert any(w[:i] + w[i + 1:] == t for i in range(len(w)))
            seen.add("delete")
    assert seen == {"substitute", "transpose", "insert", "delete"}


def test_synonyms_come_from_wordnet():
    wn = _wordnet_or_skip()
    texts = TEXTS[:4] + ["The children played happily in the beautiful garden yesterday."]
    changed = 0
    for seed in range(10):
        for t in texts:
            out = P.perturb("synonym", t, 0.25, seed)
            tok, edits = P.synonym_edits(t, 0.25, P.text_rng(seed, "synonym", t))
            assert tok.text() == out
            orig = P.Tokens.of(t)
            # punctuation and whitespace untouched; only the edited cores differ
            assert orig.pre == tok.pre and orig.suf == tok.suf and orig.seps == tok.seps
            assert [i for i, (a, b) in enumerate(zip(orig.core, tok.core)) if a != b] == \
                [i for i, _, _ in edits]
            for _, old, new in edits:
                changed += 1
                assert new.lower() != old.lower()
                assert "_" not in new
                lemmas = {lem.lower() for s in wn.synsets(old.lower()) for lem in s.lemma_names()}
                assert new.replace(" ", "_").lower() in lemmas, (old, new)
                assert old.lower() not in P.stopwords()
                if old[0].isupper():
                    assert new[0].isupper()
    assert changed >= 20


def test_synonym_rate_and_casing():
    _wordnet_or_skip()
    text = "Large hungry birds attract warm summer evenings quickly eat houses"
    n = len(text.split())
    src = P.SynonymSource()
    assert sum(bool(src.candidates(w)) for w in text.split()) == n  # all are candidates
    for rate in (0.1, 0.3, 0.5):
        for seed in range(10):
            _, edits = P.synonym_edits(text, rate, P.text_rng(seed, "synonym", text),
                                       source=src)
            assert len(edits) == P.n_touched(n, rate)
    # fewer candidates than k: all candidates are replaced, stop-words never
    _, edits = P.synonym_edits("the dog and the cat", 1.0, np.random.default_rng(0),
                               source=src)
    assert [old for _, old, _ in edits] == ["dog", "cat"]
    rng = np.random.default_rng(0)
    assert P.synonym("DOG CAT", 1.0, rng, source=src).split()[0].isupper()
    assert P.synonym("Dog cat", 1.0, np.random.default_rng(1), source=src)[0].isupper()
    assert src.candidates("the") == () and src.candidates("men")
    assert "man" not in [c.lower() for c in src.candidates("men")]  # base forms excluded
    assert all("_" not in c for c in src.candidates("car"))


def test_missing_wordnet_message(tmp_path, monkeypatch):
    empty = tmp_path / "wordnet"
    empty.mkdir()
    with pytest.raises(UserError) as info:
        load_wordnet(empty)
    msg = str(info.value)
    assert "apt-get install wordnet-base wordnet-sense-index" in msg
    assert "make system-deps" in msg and str(empty) in msg
    monkeypatch.setenv("WNSEARCHDIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="apt-get install wordnet-base"):
        P.perturb_all("synonym", TEXTS, 0.1)  # no silent fallback to another perturbation
