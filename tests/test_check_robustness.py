"""The robustness check: hand-made vectors for mean cosine / fluctuation, STS drop against
scipy, nearest-neighbour stability and k-NN accuracy against sklearn, the planner contract
(perturbed texts are needs), metric_names, a suite run, and MiniLM on 200 STS-B pairs."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics.pairwise import cosine_similarity
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from evalharness.checks.perturb import perturb
from evalharness.checks.robustness import (RobustnessCheck, RobustnessConfig, knn_vote,
                                           neighbour_overlap, relative_drop, top_k_neighbours)
from evalharness.cli import main
from evalharness.data.resolve import DatasetResolver
from evalharness.embeddings.planner import Vectors, collect

from helpers import STS_ROWS, make_sts, write_jsonl, write_suite

NO_WN = ["swap", "shuffle", "delete", "typo"]  # tests that need no WordNet


def make_vectors(mapping: dict[str, np.ndarray]) -> Vectors:
    texts = list(mapping)
    index = {t: i for i, t in enumerate(texts)}
    matrix = np.asarray([mapping[t] for t in texts], np.float32)
    return Vectors(lambda role: "text", {"text": (index, matrix)})


def hashed(texts, dim=16) -> Vectors:
    """A fake encoder: a fixed random vector per text (seeded by its sha256)."""
    out = {}
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little")
        out[t] = np.random.default_rng(seed).normal(size=dim)
    return make_vectors(out)


def needed(check) -> list[str]:
    return collect(check.needs())["text"]


def build(resolver, seed=42, bootstrap=200, **cfg):
    return RobustnessCheck("robustness", RobustnessConfig(type="robustness", **cfg), resolver,
                           seed=seed, bootstrap=bootstrap)


def labelled_folder(root, n=60, classes=3, name="lab"):
    rng = np.random.default_rng(0)
    vocab = "apple river stone cloud market engine garden violin rocket winter".split()
    rows = [{"text": " ".join(rng.choice(vocab, size=6)) + f" item{i}.",
             "label": int(i % classes), "label_name": f"c{i % classes}"} for i in range(n)]
    write_jsonl(root / name / "test.jsonl", rows)
    return rows


# pure functions -------------------------------------------------------------------------
def test_top_k_matches_sklearn():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(50, 8))
    queries = rng.normal(size=(50, 8))
    k = 5
    got = top_k_neighbours(queries, base, k, np.arange(50), chunk=7)
    nn = NearestNeighbors(n_neighbors=k + 1, metric="cosine", algorithm="brute").fit(base)
    _, ref = nn.kneighbors(queries)
    for i in range(50):  # drop the query's own row, keep k
        row = [j for j in ref[i] if j != i][:k]
        assert got[i].tolist() == row
    # without exclusion, a clean text's nearest neighbour is itself
    assert (top_k_neighbours(base, base, 1)[:, 0] == np.arange(50)).all()


def test_overlap_vote_drop_by_hand():
    a = np.array([[0, 1, 2], [3, 4, 5]])
    b = np.array([[2, 7, 0], [6, 7, 8]])
    np.testing.assert_allclose(neighbour_overlap(a, b), [2 / 3, 0.0])
    labels = np.array([0, 1, 1, 2, 0, 2, 1, 1, 0])
    # row 0: labels 0,1,1 -> 1; row 1: labels 2,0,2 -> 2; row 2: 0,1,2 tie -> smallest 0
    assert knn_vote(np.array([[0, 1, 2], [3, 4, 5], [0, 1, 3]]), labels, 3).tolist() == [1, 2, 0]
    np.testing.assert_allclose(relative_drop(0.8, 0.6), 0.25)
    assert np.isnan(relative_drop(0.0, 0.1))


# the check on hand-made vectors ------------------------------------------------------------
@pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")
def test_mean_cosine_and_fluctuation_hand_made(tmp_path):
    make_sts(tmp_path)
    r = DatasetResolver(tmp_path)
    c = build(r, dataset="tinysts", perturbations=["delete"], rate=0.5, bootstrap=0,
              neighbours=3)
    assert len(c.texts) == 20 and len(c.perturbed["delete"]) == 20
    angles = np.linspace(0.0, 1.2, 20)  # perturbed text i sits at angle angles[i] from text i
    mapping = {}
    for i, (t, p) in enumerate(zip(c.texts, c.perturbed["delete"])):
        assert t != p
        u = np.zeros(40)
        u[2 * i] = 1.0
        w = np.zeros(40)
        w[2 * i], w[2 * i + 1] = np.cos(angles[i]), np.sin(angles[i])
        mapping[t], mapping[p] = u, 3.0 * w  # scale does not matter to a cosine
    res = c.evaluate(make_vectors(mapping), None)
    m = res.metrics
    assert m["delete_mean_cosine"].value == pytest.approx(np.cos(angles).mean())
    assert m["delete_fluctuation"].value == pytest.approx(1 - np.cos(angles).mean())
    assert m["fluctuation"].value == pytest.approx(1 - np.cos(angles).mean())
    assert m["fluctuation"].higher_is_better is False and res.main_metric == "fluctuation"
    # all clean texts are orthogonal: every pair cosine is 0, the gold is not constant
    assert np.isnan(m["clean_sts_spearman"].value)
    samples = res.details["samples"]["delete"]
    assert len(samples) == 5 and samples[0] == {"original": c.texts[0],
                                                "perturbed": c.perturbed["delete"][0]}
    assert res.details["changed"]["delete"] == 1.0


def test_sts_drop_and_nn_stability_against_scipy_sklearn(tmp_path):
    make_sts(tmp_path)
    c = build(DatasetResolver(tmp_path), dataset="tinysts", perturbations=NO_WN, rate=0.3,
              neighbours=4)
    vecs = hashed(needed(c))
    res = c.evaluate(vecs, None)
    s1 = [a for a, _, _ in STS_ROWS]
    s2 = [b for _, b, _ in STS_ROWS]
    gold = [s for _, _, s in STS_ROWS]
    cos = lambda x, y: np.diag(cosine_similarity(vecs.get("text", x), vecs.get("text", y)))
    clean = spearmanr(gold, cos(s1, s2)).statistic
    assert res.metrics["clean_sts_spearman"].value == pytest.approx(clean)
    C = vecs.get("text", c.texts)
    nn = NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute").fit(C)
    clean_nn = [[j for j in row if j != i][:4] for i, row in enumerate(nn.kneighbors(C)[1])]
    drops, coss = [], []
    for p in NO_WN:
        pert = {t: perturb(p, t, 0.3, 42) for t in c.texts}
        noisy = spearmanr(gold, cos([pert[t] for t in s1], [pert[t] for t in s2])).statistic
        assert res.metrics[f"{p}_sts_spearman"].value == pytest.approx(noisy)
        assert res.metrics[f"{p}_sts_drop"].value == pytest.approx((clean - noisy) / clean)
        drops.append((clean - noisy) / clean)
        pc = cos(c.texts, [pert[t] for t in c.texts])
        coss.append(pc)
        assert res.metrics[f"{p}_mean_cosine"].value == pytest.approx(pc.mean())
        P = vecs.get("text", [pert[t] for t in c.texts])
        ref = nn.kneighbors(P)[1]
        stab = [len(set(clean_nn[i]) & set([j for j in ref[i] if j != i][:4])) / 4
                for i in range(len(c.texts))]
        assert res.metrics[f"{p}_nn_stability"].value == pytest.approx(np.mean(stab))
        lo, hi = res.metrics[f"{p}_sts_drop"].ci
        assert lo <= hi
    assert res.metrics["sts_drop"].value == pytest.approx(np.mean(drops))
    assert res.metrics["mean_cosine"].value == pytest.approx(np.mean(coss))
    forced = c.config.model_copy(update={"source": "pairs"})  # tinysts is not in the
    assert set(res.metrics) == set(RobustnessCheck.metric_names(forced))  # default data dirs
    assert len(res.items["gold"]) == 10 and len(res.items["swap_cosine"]) == 20


def test_knn_accuracy_against_sklearn_leave_one_out(tmp_path):
    rows = labelled_folder(tmp_path)
    c = build(DatasetResolver(tmp_path), dataset="lab", perturbations=["typo", "swap"],
              rate=0.5, neighbours=5)
    assert c.layout == "labelled" and len(c.texts) == 60
    vecs = hashed(needed(c), dim=6)
    res = c.evaluate(vecs, None)
    X = vecs.get("text", c.texts)
    y = np.array([r["label"] for r in rows])

    def loo_acc(Q):
        hits = []
        for i in range(len(X)):
            keep = np.arange(len(X)) != i
            clf = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute")
            hits.append(clf.fit(X[keep], y[keep]).predict(Q[i:i + 1])[0] == y[i])
        return float(np.mean(hits))

    clean = loo_acc(X)
    assert res.metrics["clean_knn_accuracy"].value == pytest.approx(clean)
    for p in ("typo", "swap"):
        Q = vecs.get("text", [perturb(p, t, 0.5, 42) for t in c.texts])
        acc = loo_acc(Q)
        assert res.metrics[f"{p}_knn_accuracy"].value == pytest.approx(acc)
        assert res.metrics[f"{p}_knn_drop"].value == pytest.approx((clean - acc) / clean)
    forced = c.config.model_copy(update={"source": "labelled"})
    assert set(res.metrics) == set(RobustnessCheck.metric_names(forced))


# planner contract, config, names ----------------------------------------------------------
def test_needs_hold_originals_and_seeded_perturbations(tmp_path):
    make_sts(tmp_path)
    r = DatasetResolver(tmp_path)
    c = build(r, dataset="tinysts", perturbations=NO_WN)
    texts = needed(c)
    assert set(c.texts) <= set(texts)
    for p in NO_WN:
        assert set(c.perturbed[p]) <= set(texts)
    again = build(r, dataset="tinysts", perturbations=NO_WN)
    assert again.perturbed == c.perturbed  # the same seed gives the same texts
    other = build(r, dataset="tinysts", perturbations=NO_WN, seed=43)
    assert other.perturbed != c.perturbed
    small = build(r, dataset="tinysts", perturbations=["swap"], limit=3)
    assert len(small.pairs[2]) == 3 and len(small.texts) == 6


def test_config_validation():
    from pydantic import ValidationError

    cfg = RobustnessConfig(type="robustness", dataset="stsb")
    assert cfg.perturbations == ["synonym", "swap", "shuffle", "delete", "typo"]
    assert (cfg.rate, cfg.limit, cfg.samples, cfg.neighbours) == (0.1, 1000, 5, 10)
    for bad in ({"perturbations": ["swap", "swap"]}, {"perturbations": ["blur"]},
                {"perturbations": []}, {"rate": 0}, {"rate": 1.5}, {"neighbours": 0},
                {"typo_rate": 0.1}):
        with pytest.raises(ValidationError):
            RobustnessConfig(type="robustness", dataset="stsb", **bad)


def test_metric_names_by_layout(tmp_path):
    names = RobustnessCheck.metric_names(RobustnessConfig(type="robustness", dataset="stsb",
                                                          perturbations=["swap"]))
    assert names == ["mean_cosine", "fluctuation", "nn_stability", "clean_sts_spearman",
                     "sts_drop", "swap_mean_cosine", "swap_fluctuation", "swap_nn_stability",
                     "swap_sts_spearman", "swap_sts_drop"]
    lab = RobustnessCheck.metric_names(RobustnessConfig(type="robustness", dataset="agnews",
                                                        perturbations=["typo"]))
    assert "typo_knn_drop" in lab and "knn_drop" in lab and "sts_drop" not in lab
    labelled_folder(tmp_path)
    by_path = RobustnessCheck.metric_names(RobustnessConfig(
        type="robustness", dataset={"path": str(tmp_path / "lab")}, perturbations=["typo"]))
    assert by_path == lab
    forced = RobustnessCheck.metric_names(RobustnessConfig(
        type="robustness", dataset="nowhere-to-be-found", source="pairs", perturbations=["swap"]))
    assert forced == names


def test_suite_run_with_threshold(tmp_path):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", """\
suite: rob
seed: 1
bootstrap: 50
encoders:
  rnd: random?dim=16&seed=0
checks:
  robustness: {type: robustness, dataset: tinysts, source: pairs, perturbations: [swap, typo]}
thresholds:
  - {metric: robustness.swap_fluctuation, max: 2.0}
  - {metric: robustness.sts_drop, max: 100.0, severity: warn}
""")
    code = main(["run", str(suite), "--data-dir", str(tmp_path / "data"), "-o",
                 str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert code == 0, res
    rob = res["results"]["rnd"]["robustness"]
    assert rob["kind"] == "check" and rob["main_metric"] == "fluctuation"
    assert set(rob["metrics"]) == set(RobustnessCheck.metric_names(RobustnessConfig(
        type="robustness", dataset="tinysts", source="pairs", perturbations=["swap", "typo"])))
    assert [v["passed"] for v in res["verdicts"]] == [True, True]
    # 20 texts + 2 perturbations (some texts may perturb into the same string)
    assert res["encoders"]["rnd"]["cache"]["misses"] >= 40


# real data -------------------------------------------------------------------------------
def test_minilm_stsb_200_pairs(shared_data, minilm_embed):
    c = build(DatasetResolver(shared_data), dataset="stsb", limit=200, bootstrap=200)
    texts = needed(c)
    vecs = make_vectors(dict(zip(texts, minilm_embed(texts))))
    res = c.evaluate(vecs, None)
    m = res.metrics
    for p in c.config.perturbations:
        assert 0 < m[f"{p}_fluctuation"].value < 0.5, p
        assert 0 < m[f"{p}_nn_stability"].value <= 1
    assert 0 < m["fluctuation"].value < 0.5
    assert m["clean_sts_spearman"].value > 0.75
    for p in ("synonym", "typo"):
        assert res.details["changed"][p] > 0.8
        assert all(s["original"] != s["perturbed"] for s in res.details["samples"][p])
    # a typo of 10% of the words moves MiniLM more than swapping two adjacent words
    assert m["typo_fluctuation"].value > m["swap_fluctuation"].value


def test_perturbed_texts_are_cached_and_reused(tmp_path, monkeypatch):
    """A second load with the same store reads the perturbed texts back (no WordNet, no
    perturbing); another rate or seed, or a damaged file, computes them again."""
    import evalharness.checks.robustness as rob
    from evalharness.checks.perturb_store import PerturbStore, store_key

    make_sts(tmp_path)
    r = DatasetResolver(tmp_path)
    r.perturb_store = PerturbStore(tmp_path / "store")
    first = build(r, dataset="tinysts", perturbations=NO_WN, rate=0.3)
    assert len(list((tmp_path / "store").glob("*.json"))) == len(NO_WN)
    calls = []
    real = rob.perturb
    monkeypatch.setattr(rob, "perturb", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = build(r, dataset="tinysts", perturbations=NO_WN, rate=0.3)
    assert calls == [] and again.perturbed == first.perturbed
    other = build(r, dataset="tinysts", perturbations=["typo"], rate=0.3, seed=7)
    assert calls and other.perturbed["typo"] == [real("typo", t, 0.3, 7) for t in other.texts]
    key = store_key("swap", first.texts, 0.3, 42)
    assert key != store_key("swap", first.texts, 0.2, 42)
    (tmp_path / "store" / f"{key}.json").write_text("{broken")
    calls.clear()
    fixed = build(r, dataset="tinysts", perturbations=["swap"], rate=0.3)
    assert len(calls) == len(first.texts) and fixed.perturbed["swap"] == first.perturbed["swap"]


def test_synonym_texts_from_the_store_need_no_wordnet(tmp_path, monkeypatch):
    import evalharness.checks.robustness as rob
    from evalharness.checks.perturb_store import PerturbStore, store_key

    make_sts(tmp_path)
    r = DatasetResolver(tmp_path)
    r.perturb_store = store = PerturbStore(tmp_path / "store")
    texts = build(r, dataset="tinysts", perturbations=["swap"]).texts
    fake = [t.upper() for t in texts]  # stands for stored synonym output
    store.put(store_key("synonym", texts, 0.1, 42), "synonym", fake)

    def no_wordnet(*a, **k):
        raise AssertionError("WordNet must not be read")

    monkeypatch.setattr(rob, "SynonymSource", no_wordnet)
    chk = build(r, dataset="tinysts", perturbations=["synonym"], rate=0.1)
    assert chk.perturbed["synonym"] == fake
