"""The ``ray`` engine (evalharness/embeddings/ray_engine.py) against the local engine.

One local Ray instance (2 CPUs) serves the whole module; tests/ is on its workers'
PYTHONPATH so they import ``ray_helpers``. Skipped when the ``ray`` extra is absent.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from ray_helpers import MARKER_ENV, TRIGGER, hashed_vectors  # noqa: E402

from evalharness.embeddings.cache import EmbeddingCache  # noqa: E402
from evalharness.embeddings.engines import ExecutionConfig, LocalEngine  # noqa: E402
from evalharness.embeddings.planner import embed  # noqa: E402
from evalharness.embeddings.ray_engine import (RayEngine, WorkerRecipe,  # noqa: E402
                                               _complete_ranges, _gpu_options,
                                               build_from_recipe, recipe_for)
from evalharness.encoders.pool import build_encoder  # noqa: E402
from evalharness.encoders.spec import parse_encoder_entry  # noqa: E402
from evalharness.errors import EncoderError, UserError  # noqa: E402

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """One local Ray for the module; yields the path of the exit-once marker file."""
    marker = tmp_path_factory.mktemp("ray") / "exit-once"
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"PYTHONPATH": str(TESTS), MARKER_ENV: str(marker)}})
    yield marker
    ray.shutdown()


def ray_engine(**kw) -> RayEngine:
    return RayEngine(ExecutionConfig(engine="ray", actors=2, **kw))


def encoder(spec: str, eid: str = "enc"):
    return build_encoder(parse_encoder_entry(eid, spec))


def stsb_subset(shared, n=120):
    rows = [json.loads(line) for line in
            (shared / "stsb" / "test.jsonl").read_text(encoding="utf-8").splitlines()[:n]]
    return ([r["sentence1"] for r in rows], [r["sentence2"] for r in rows],
            np.array([float(r["score"]) for r in rows]))


def sts_metrics(vectors, s1, s2, gold):
    from evalharness.tasks.sts import sts_scores
    from evalharness.vectors_math import cosine_rows

    return sts_scores(gold, cosine_rows(vectors.get("text", s1), vectors.get("text", s2)))


# -- MiniLM: ray == local, and a Ray-filled cache serves a local warm run --------------
@pytest.fixture(scope="module")
def minilm_runs(ray_local, shared_data, tmp_path_factory):
    s1, s2, gold = stsb_subset(shared_data)
    texts = s1 + s2
    enc = encoder("minilm", "minilm")
    local, local_stats = embed(enc, {"text": texts}, None, chunk_size=64)
    cache = EmbeddingCache(tmp_path_factory.mktemp("ray-cache"))
    engine = ray_engine()
    remote, remote_stats = embed(encoder("minilm", "minilm"), {"text": texts}, cache,
                                 chunk_size=64, engine=engine)
    warm, warm_stats = embed(encoder("minilm", "minilm"), {"text": texts}, cache,
                             chunk_size=64, engine=LocalEngine())
    return dict(texts=texts, s1=s1, s2=s2, gold=gold, local=local, remote=remote, warm=warm,
                stats=(local_stats, remote_stats, warm_stats), describe=engine.describe("minilm"))


@pytest.mark.integration
def test_minilm_vectors_and_sts_metrics_equal_local(minilm_runs):
    r = minilm_runs
    texts = r["texts"]
    assert len(set(texts)) >= 200
    a, b = r["local"].get("text", texts), r["remote"].get("text", texts)
    assert a.shape == b.shape == (len(texts), 384)
    assert np.abs(a - b).max() <= 1e-6
    m_local = sts_metrics(r["local"], r["s1"], r["s2"], r["gold"])
    m_ray = sts_metrics(r["remote"], r["s1"], r["s2"], r["gold"])
    assert m_local.keys() == m_ray.keys()
    for k in m_local:
        assert round(m_ray[k], 6) == round(m_local[k], 6), k
    d = r["describe"]
    assert d["engine"] == "ray" and d["encoded_on"] == "ray"
    assert d["actors"] == 2 and d["devices"] == ["cpu"]
    assert d["texts"] == len(set(texts))
    assert d["retry_policy"] == {"max_restarts": 3, "max_task_retries": 3}


@pytest.mark.integration
def test_ray_filled_cache_serves_local_warm_run_with_zero_misses(minilm_runs):
    _, remote_stats, warm_stats = minilm_runs["stats"]
    texts = minilm_runs["texts"]
    assert remote_stats.misses == len(set(texts)) and remote_stats.hits == 0
    assert warm_stats.misses == 0 and warm_stats.hits == len(set(texts))
    np.testing.assert_array_equal(minilm_runs["warm"].get("text", texts),
                                  minilm_runs["remote"].get("text", texts))


# -- faults ---------------------------------------------------------------------------
def exit_once_texts(n=400):
    texts = [f"text number {i} " + "x" * (i % 37) for i in range(n)]
    texts[n // 2] = TRIGGER
    return texts


def test_actor_killed_mid_encode_is_restarted_and_the_result_is_complete(ray_local, tmp_path):
    texts = exit_once_texts()
    ray_local.write_text("armed")
    engine = ray_engine()
    cache = EmbeddingCache(tmp_path / "cache")
    vectors, stats = embed(encoder("py:ray_helpers:ExitOnce"), {"text": texts}, cache,
                           chunk_size=40, engine=engine)
    assert not ray_local.exists()  # a worker took the marker and died mid-encode
    assert stats.misses == len(texts)
    np.testing.assert_array_equal(vectors.get("text", texts), hashed_vectors(texts))
    d = engine.describe("enc")
    assert d["encoded_on"] == "ray" and d["texts"] == len(texts)
    # the cache holds every vector exactly as encoded
    warm, warm_stats = embed(encoder("py:ray_helpers:ExitOnce"), {"text": texts}, cache)
    assert warm_stats.misses == 0
    np.testing.assert_array_equal(warm.get("text", texts), hashed_vectors(texts))


def test_interrupted_run_keeps_what_reached_the_cache(ray_local, tmp_path):
    """Ctrl-C while blocks stream back: the blocks already yielded are in the cache, the
    Ray job is stopped, and the next run encodes only the rest."""
    texts = [f"sentence {i}" for i in range(600)]
    engine = ray_engine()

    class CtrlCAfterTwo:
        name = "ray"

        def encode_blocks(self, enc, texts, *, role, block_size):
            for i, block in enumerate(engine.encode_blocks(enc, texts, role=role,
                                                           block_size=block_size)):
                yield block
                if i == 1:
                    raise KeyboardInterrupt

        def describe(self):
            return engine.describe()

    cache = EmbeddingCache(tmp_path / "cache")
    with pytest.raises(KeyboardInterrupt):
        embed(encoder("random?dim=8&seed=3"), {"text": texts}, cache, chunk_size=100,
              engine=CtrlCAfterTwo())
    vectors, stats = embed(encoder("random?dim=8&seed=3"), {"text": texts}, cache,
                           chunk_size=100, engine=engine)
    assert stats.hits == 200 and stats.misses == 400
    np.testing.assert_array_equal(
        vectors.get("text", texts),
        encoder("random?dim=8&seed=3").encode(texts, role="text"))


def test_encoder_error_on_a_worker_fails_the_run_with_its_message(ray_local):
    with pytest.raises(EncoderError, match="returned 5 vectors for 4 texts|4 texts"):
        list(ray_engine().encode_blocks(encoder("py:helpers:wrong_rows"),
                                        [f"t{i}" for i in range(4)], role="text",
                                        block_size=4))


def test_py_encoder_not_importable_on_workers_is_a_user_error(ray_local, tmp_path,
                                                              monkeypatch):
    (tmp_path / "driver_only_mod.py").write_text(
        "import numpy as np\ndef enc(texts):\n    return np.ones((len(texts), 3))\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the driver imports it, workers cannot
    enc = encoder("py:driver_only_mod:enc")
    with pytest.raises(UserError, match="cannot be built on the Ray workers") as err:
        list(ray_engine().encode_blocks(enc, ["a", "b"], role="text", block_size=2))
    assert "driver_only_mod" in str(err.value) and err.value.exit_code == 2


# -- what stays on the driver, addresses, installation --------------------------------
def test_http_and_tfidf_lsa_are_encoded_on_the_driver():
    engine = ray_engine()
    texts = [f"document about topic {i % 7} number {i}" for i in range(40)]
    lsa = encoder("tfidf-lsa?dim=4", "lsa")
    lsa.prepare(texts)
    vectors, stats = embed(lsa, {"text": texts}, None, engine=engine)
    np.testing.assert_array_equal(vectors.get("text", texts), lsa.encode(texts, role="text"))
    d = engine.describe("lsa")
    assert d["encoded_on"] == "driver" and "tfidf-lsa" in d["note"] and d["actors"] == 0
    http = encoder("http:http://127.0.0.1:9/v1?model=m", "api")
    assert "http" in recipe_for(http) and not engine.encodes_remotely(http)
    assert engine.encodes_remotely(encoder("minilm"))
    assert not engine._started  # nothing above needed Ray


def test_unreachable_cluster_is_a_user_error_naming_the_address():
    engine = RayEngine(ExecutionConfig(engine="ray", address="127.0.0.1:1"))
    with pytest.raises(UserError, match="127.0.0.1:1") as err:
        list(engine.encode_blocks(encoder("random?dim=4"), ["a"], role="text",
                                  block_size=1))
    assert err.value.exit_code == 2
    with pytest.raises(UserError, match="127.0.0.1:1"):  # remembered, not retried
        engine.start()
    with pytest.raises(UserError, match="not 'auto', HOST:PORT"):
        RayEngine(ExecutionConfig(engine="ray", address="nowhere")).start()


def test_missing_ray_is_a_user_error_with_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)
    with pytest.raises(UserError, match=r"pip install 'evalharness\[ray\]'") as err:
        RayEngine(ExecutionConfig(engine="ray"))
    assert err.value.exit_code == 2


# -- pieces without Ray workers ---------------------------------------------------------
def test_complete_ranges_reassembles_out_of_order_rows():
    n, size = 10, 4  # ranges [0,4) [4,8) [8,10)
    vec = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    pending: dict = {}
    got = []
    for pos in ([9, 8, 5], [1, 0, 3, 2], [7, 4, 6]):
        pos = np.array(pos)
        got += list(_complete_ranges(pos, vec[pos], size, n, pending))
    assert [(s, e) for s, e, _ in got] == [(8, 10), (0, 4), (4, 8)]
    for s, e, v in got:
        np.testing.assert_array_equal(v, vec[s:e])
    assert pending == {}


def test_recipes_rebuild_spec_and_variant_encoders_with_equal_fingerprints():
    from evalharness.encoders.pool import EncoderPool
    from evalharness.encoders.variants import embedding_source

    specs = {"rnd": parse_encoder_entry("rnd", "random?dim=8&seed=2&query_prefix=q: "),
             "rnd128": parse_encoder_entry("rnd128", {"base": "rnd", "truncate_dim": 4}),
             "ml": parse_encoder_entry("ml", "minilm"),
             "ml16": parse_encoder_entry("ml16", {"base": "ml", "dtype": "bfloat16"})}
    pool = EncoderPool(specs)
    for eid in specs:
        source = embedding_source(pool.build(eid))
        recipe = recipe_for(source)
        assert isinstance(recipe, WorkerRecipe)
        import pickle

        rebuilt = build_from_recipe(pickle.loads(pickle.dumps(recipe)))
        assert rebuilt.fingerprint() == source.fingerprint() == recipe.fingerprint
        assert rebuilt.name == eid
    rnd = embedding_source(pool.build("rnd"))
    texts = ["a", "b c"]
    np.testing.assert_array_equal(build_from_recipe(recipe_for(rnd)).encode(texts, role="query"),
                                  rnd.encode(texts, role="query"))


def gpu_batching(o):
    """(device, batch_size, batch_tokens) an actor holding a GPU encodes with."""
    if o.device == "auto":  # resolved when the model loads (encoders/device.py)
        b = o.batching("cuda")
        return "cuda", b["batch_size"], b["batch_tokens"]
    return o.device, o.batch_size, o.batch_tokens


def test_gpu_actors_get_the_accelerator_defaults_unless_the_user_chose():
    from evalharness.encoders.base import GPU_BATCH_SIZE, GPU_BATCH_TOKENS, TorchOptions

    assert gpu_batching(_gpu_options(TorchOptions())) == ("cuda", GPU_BATCH_SIZE,
                                                          GPU_BATCH_TOKENS)
    o = _gpu_options(TorchOptions(batch_size=16, normalize=True))
    assert gpu_batching(o)[:2] == ("cuda", 16) and o.normalize
    assert _gpu_options(TorchOptions(device="cpu")).device == "cpu"  # chosen: kept
