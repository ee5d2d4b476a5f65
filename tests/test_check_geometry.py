"""Uniformity, alignment, anisotropy: hand-computed values on tiny inputs, Wang & Isola's
own torch formulas, the published IsoScore package, and MiniLM on STS-B."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import entropy
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import cosine_similarity

from evalharness.checks.base import (load_check_texts, pair_from_index, sample_pairs,
                                     sample_rows, unique_first)
from evalharness.checks.geometry import (AlignmentCheck, AnisotropyCheck, UniformityCheck,
                                         alignment, alignment_distances, effective_rank,
                                         isoscore, mean_pairwise_cosine, uniformity)
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors
from evalharness.errors import UserError
from evalharness.components import EncoderContext


# helpers -------------------------------------------------------------------------------

def make_vectors(texts, matrix) -> Vectors:
    index = {t: i for i, t in enumerate(texts)}
    return Vectors(lambda role: "text", {"text": (index, np.asarray(matrix, np.float32))})


def write_jsonl(folder, rows, split="test"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def build(cls, resolver, **cfg):
    return cls("chk", cls.Config(type=cls.type, **cfg), resolver, seed=42, bootstrap=200)


def wang_isola_uniformity(x, t=2.0):
    """Wang & Isola (2020), code listing: lunif on normalised x."""
    x = F.normalize(torch.as_tensor(x, dtype=torch.float64), dim=1)
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log().item()


def wang_isola_alignment(x, y, alpha=2.0):
    x = F.normalize(torch.as_tensor(x, dtype=torch.float64), dim=1)
    y = F.normalize(torch.as_tensor(y, dtype=torch.float64), dim=1)
    return (x - y).norm(p=2, dim=1).pow(alpha).mean().item()


@pytest.fixture
def pairs_dir(tmp_path):
    rows = [{"sentence1": "a", "sentence2": "b", "score": 4.5},
            {"sentence1": "c", "sentence2": "d", "score": 1.0},
            {"sentence1": "a", "sentence2": "e", "score": 4.0},   # 'a' repeats
            {"sentence1": "f", "sentence2": "g", "score": 3.99}]
    return write_jsonl(tmp_path / "tinysts", rows)


@pytest.fixture
def labelled_dir(tmp_path):
    rows = [{"text": t, "label": lab} for t, lab in
            [("x1", 0), ("x2", 0), ("y1", 1), ("x1", 1), ("y2", 1)]]
    return write_jsonl(tmp_path / "tinylab", rows)


# shared helpers (checks/base.py) --------------------------------------------------------

def test_pair_index_mapping_matches_triu():
    for n in (2, 3, 7, 50, 301):
        i, j = np.triu_indices(n, 1)
        a, b = pair_from_index(np.arange(len(i)), n)
        assert np.array_equal(a, i) and np.array_equal(b, j)


def test_sample_pairs_distinct_and_seeded():
    i, j = sample_pairs(1000, 5000, seed=3)
    assert len(i) == 5000 and (i < j).all() and j.max() < 1000
    assert len(set(zip(i.tolist(), j.tolist()))) == 5000
    i2, j2 = sample_pairs(1000, 5000, seed=3)
    assert np.array_equal(i, i2) and np.array_equal(j, j2)
    assert not np.array_equal(i, sample_pairs(1000, 5000, seed=4)[0])
    i, j = sample_pairs(10, 1000, seed=0)  # small: all pairs
    assert len(i) == 45


def test_sample_rows_and_unique_first():
    assert np.array_equal(sample_rows(5, None, 0), np.arange(5))
    r = sample_rows(100, 10, 1)
    assert len(set(r.tolist())) == 10 and np.array_equal(r, np.sort(r))
    assert unique_first(["a", "b", "a", "c", "b"]).tolist() == [0, 1, 3]


def test_layout_detection_dedup_and_limit(pairs_dir, labelled_dir, tmp_path):
    r = DatasetResolver(tmp_path)
    cfg = UniformityCheck.Config(type="uniformity", dataset="tinysts")
    d = load_check_texts(r, cfg)
    assert d.layout == "pairs" and d.texts == ["a", "b", "c", "d", "e", "f", "g"]
    cfg = UniformityCheck.Config(type="uniformity", dataset="tinysts", limit=3)
    assert load_check_texts(r, cfg).texts == ["a", "b", "c"]
    d = load_check_texts(r, UniformityCheck.Config(type="uniformity", dataset="tinylab"))
    assert d.layout == "labelled" and d.texts == ["x1", "x2", "y1", "y2"]
    assert d.labels.tolist() == [0, 0, 1, 1]  # first occurrence of 'x1' keeps its label
    with pytest.raises(UserError, match="needs a pairs dataset"):
        build(AlignmentCheck, r, dataset="tinylab")
    with pytest.raises(UserError, match="has no split"):
        build(UniformityCheck, r, dataset="tinysts", split="dev")
    with pytest.raises(Exception):  # pydantic: unknown key
        UniformityCheck.Config(type="uniformity", dataset="tinysts", nonsense=1)


# uniformity ------------------------------------------------------------------------------

def test_uniformity_hand_values():
    ident = np.ones((5, 3))
    assert uniformity(ident) == pytest.approx(0.0, abs=1e-12)  # every distance 0: log 1
    ortho = np.eye(6) * 3.0  # normalised: every squared distance is 2
    assert uniformity(ortho) == pytest.approx(-4.0, abs=1e-12)
    assert uniformity(ortho, t=0.5) == pytest.approx(-1.0, abs=1e-12)
    # two antipodal points: one pair, squared distance 4
    assert uniformity(np.array([[1.0, 0], [-2.0, 0]])) == pytest.approx(-8.0)


def test_uniformity_matches_wang_isola_torch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(301, 16)) + 0.5  # not normalised, not centred
    ref = wang_isola_uniformity(x)
    assert uniformity(x) == pytest.approx(ref, abs=1e-10)
    assert uniformity(x, block=7) == pytest.approx(ref, abs=1e-10)  # blockwise == one block
    assert uniformity(x, t=1.0) == pytest.approx(wang_isola_uniformity(x, 1.0), abs=1e-10)


def test_uniformity_check_exact_and_sampled(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 3} for i in range(40)]
    write_jsonl(tmp_path / "lab", rows)
    r = DatasetResolver(tmp_path)
    texts = [f"t{i}" for i in range(40)]
    x = np.random.default_rng(1).normal(size=(40, 8))
    vec = make_vectors(texts, x)
    chk = build(UniformityCheck, r, dataset="lab")
    assert chk.kind == "check"
    res = chk.evaluate(vec, EncoderContext("rnd"))
    m = res.metrics["uniformity"]
    assert m.value == pytest.approx(wang_isola_uniformity(x.astype(np.float32)), abs=1e-6)
    assert m.higher_is_better is False and m.n == 40 and res.details["sampled"] is False
    # above max_exact: a seeded sample of max_exact vectors
    chk = build(UniformityCheck, r, dataset="lab", max_exact=25)
    a = chk.evaluate(vec, EncoderContext("rnd"))
    b = chk.evaluate(vec, EncoderContext("rnd"))
    assert a.details["n"] == 25 and a.metrics["uniformity"].n == 25 and a.details["sampled"]
    assert a.metrics["uniformity"].value == b.metrics["uniformity"].value
    rows_used = sample_rows(40, 25, 42)
    assert a.metrics["uniformity"].value == pytest.approx(
        wang_isola_uniformity(x.astype(np.float32)[rows_used]), abs=1e-6)


# alignment -------------------------------------------------------------------------------

def test_alignment_hand_values():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    assert alignment(x, x * 5) == pytest.approx(0.0)  # same directions
    y = np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])  # orthogonal, orthogonal, antipodal
    assert alignment_distances(x, y).tolist() == pytest.approx([2.0, 2.0, 4.0])
    assert alignment(x, y) == pytest.approx(8.0 / 3)
    assert alignment(x, y, alpha=1.0) == pytest.approx((2 * np.sqrt(2) + 2) / 3)


def test_alignment_matches_wang_isola_torch():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 12))
    y = x + 0.3 * rng.normal(size=(200, 12))
    assert alignment(x, y) == pytest.approx(wang_isola_alignment(x, y), abs=1e-12)
    assert alignment(x, y, 3.0) == pytest.approx(wang_isola_alignment(x, y, 3.0), abs=1e-12)


def test_alignment_check_positive_pairs(pairs_dir, tmp_path):
    r = DatasetResolver(tmp_path)
    chk = build(AlignmentCheck, r, dataset="tinysts")
    assert chk.s1 == ["a", "a"] and chk.s2 == ["b", "e"]  # gold >= 4.0 only
    texts = list("abcdefg")
    x = np.array([[1, 0], [0, 1], [1, 1], [1, -1], [-1, 0], [2, 2], [1, 0]], float)
    res = chk.evaluate(make_vectors(texts, x), EncoderContext("rnd"))
    m = res.metrics["alignment"]
    assert m.value == pytest.approx((2.0 + 4.0) / 2) and m.n == 2
    assert m.higher_is_better is False and m.ci is not None and m.stat == "mean"
    assert res.items["distance"] == pytest.approx([2.0, 4.0]) and res.items["id"] == [0, 2]
    chk = build(AlignmentCheck, r, dataset="tinysts", min_score=3.5, limit=2)
    assert chk.s1 == ["a", "a"]
    chk = build(AlignmentCheck, r, dataset="tinysts", min_score=3.5)
    assert chk.s1 == ["a", "a", "f"]
    with pytest.raises(UserError, match="min_score"):
        build(AlignmentCheck, r, dataset="tinysts", min_score=4.6)


# anisotropy ------------------------------------------------------------------------------

def test_mean_pairwise_cosine_hand_and_bruteforce():
    assert mean_pairwise_cosine(np.ones((4, 3)) * [1, 2, 3]) == pytest.approx(1.0)
    assert mean_pairwise_cosine(np.eye(5) * 7) == pytest.approx(0.0, abs=1e-15)
    assert mean_pairwise_cosine(np.array([[1.0, 0], [-1.0, 0]])) == pytest.approx(-1.0)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(150, 20)) + 1.0
    c = cosine_similarity(x)
    ref = c[np.triu_indices(len(x), 1)].mean()
    assert mean_pairwise_cosine(x) == pytest.approx(ref, abs=1e-12)


def test_isoscore_extremes_and_hand_value():
    rng = np.random.default_rng(4)
    assert isoscore(rng.normal(size=(50_000, 8))) > 0.99  # isotropic Gaussian
    line = np.outer(rng.normal(size=500), rng.normal(size=6)) + 3.0  # all on one line
    assert isoscore(line) == pytest.approx(0.0, abs=1e-9)
    # hand computation, n = 2: covariance eigenvalues in ratio 4:1
    pts = np.array([[2.0, 1], [2, -1], [-2, 1], [-2, -1]])
    d = np.array([4.0, 1.0]) * np.sqrt(2) / np.sqrt(17)  # step 3: norm sqrt(n)
    delta = np.sqrt((d[0] - 1) ** 2 + (d[1] - 1) ** 2) / np.sqrt(2 * (2 - np.sqrt(2)))
    k = (2 - delta ** 2 * (2 - np.sqrt(2))) ** 2 / 4
    assert isoscore(pts) == pytest.approx(2 * k - 1, abs=1e-12)
    # PCA-reorientation: a rotation of the points does not change the score
    x = rng.normal(size=(400, 5)) * [5, 3, 1, 1, 0.2]
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    assert isoscore(x @ q) == pytest.approx(isoscore(x), abs=1e-10)


def test_isoscore_matches_published_package():
    pkg = pytest.importorskip("IsoScore.IsoScore", reason="pip install IsoScore "
                                                          "(the authors' implementation)")
    rng = np.random.default_rng(5)
    for scale in ([1.0] * 6, [5, 3, 1, 1, 0.2, 0.1], [10, 0.1, 0.1, 0.1, 0.1, 0.1]):
        x = rng.normal(size=(300, 6)) * scale
        # the package mixes float32 constants (torch.ones, sqrt of an int tensor) into
        # float64 maths, so agreement is to ~1e-7
        assert isoscore(x) == pytest.approx(float(pkg.IsoScore(x)), abs=1e-6)


def test_effective_rank_hand_and_independent():
    # +-e_i rows: centred already, k equal singular values -> effective rank k
    k = 5
    x = np.vstack([np.eye(k), -np.eye(k)]) * 2.0
    assert effective_rank(x) == pytest.approx(k)
    assert effective_rank(np.outer(np.arange(10.0), [1, 2, 3]) + 4) == pytest.approx(1.0)
    # a constant offset does not count (mean-centred)
    assert effective_rank(x + 100.0) == pytest.approx(k)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 10)) * np.linspace(3, 0.1, 10)
    s = PCA().fit(x).singular_values_  # sklearn centres too
    assert effective_rank(x) == pytest.approx(np.exp(entropy(s / s.sum())), rel=1e-10)


def test_anisotropy_check(labelled_dir, tmp_path):
    r = DatasetResolver(tmp_path)
    chk = build(AnisotropyCheck, r, dataset="tinylab")
    x = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], float)
    res = chk.evaluate(make_vectors(["x1", "x2", "y1", "y2"], x), EncoderContext("rnd"))
    c = cosine_similarity(x)[np.triu_indices(4, 1)].mean()
    assert res.metrics["mean_cosine"].value == pytest.approx(c)
    assert res.metrics["mean_cosine"].higher_is_better is False
    assert res.metrics["isoscore"].value == pytest.approx(isoscore(x))
    assert res.metrics["effective_rank"].value == pytest.approx(effective_rank(x))
    assert set(res.metrics) == set(AnisotropyCheck.metric_names(chk.config))
    assert res.main_metric == "mean_cosine" and res.kind == "check"


# real data -------------------------------------------------------------------------------

def _run(chk, embed):
    texts = list(dict.fromkeys(t for need in chk.needs() for t in need.texts))
    return chk.evaluate(make_vectors(texts, embed(texts)), EncoderContext("minilm"))


@pytest.mark.integration
def test_minilm_stsb_geometry(shared_data, minilm_embed):
    r = DatasetResolver(shared_data)
    uni = _run(build(UniformityCheck, r, dataset="stsb", limit=500), minilm_embed)
    ali = _run(build(AlignmentCheck, r, dataset="stsb", limit=200), minilm_embed)
    ani = _run(build(AnisotropyCheck, r, dataset="stsb", limit=500), minilm_embed)
    u = uni.metrics["uniformity"].value
    a = ali.metrics["alignment"].value
    print(f"\nMiniLM stsb: uniformity={u:.4f} alignment={a:.4f} (pairs "
          f"{ali.metrics['alignment'].n}) mean_cos={ani.metrics['mean_cosine'].value:.4f} "
          f"isoscore={ani.metrics['isoscore'].value:.4f} "
          f"erank={ani.metrics['effective_rank'].value:.2f}")
    assert -4.0 < u < -1.0  # far from collapse (0), above the 384-d uniform sphere (~-4)
    assert 0.0 < a < 1.0  # paraphrases closer than random pairs (2)
    assert ali.metrics["alignment"].n == 200
    lo, hi = ali.metrics["alignment"].ci
    assert lo < a < hi
    assert 0.0 < ani.metrics["mean_cosine"].value < 0.3
    assert 0.0 < ani.metrics["isoscore"].value < 1.0
    assert 20 < ani.metrics["effective_rank"].value < 384
    # same seed, same output
    again = _run(build(UniformityCheck, r, dataset="stsb", limit=500, max_exact=300),
                 minilm_embed)
    twice = _run(build(UniformityCheck, r, dataset="stsb", limit=500, max_exact=300),
                 minilm_embed)
    assert again.metrics["uniformity"].value == twice.metrics["uniformity"].value
    assert again.details["n"] == 300
    assert abs(again.metrics["uniformity"].value - u) < 0.1
