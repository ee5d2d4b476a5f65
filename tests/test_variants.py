"""Encoder variants: parsing, output quantisation vs sentence-transformers, model variants
(bf16 parity on STS-B, dynamic int8), sharing of the base, retention in results.json."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from evalharness.embeddings.planner import Vectors, embed
from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_encoder_entry, parse_spec_string
from evalharness.encoders.pool import EncoderPool
from evalharness.encoders.spec import VariantOptions, check_bases
from evalharness.encoders.transforms import apply_output, binarize, truncate
from evalharness.encoders.variants import build_variant, embedding_source
from evalharness.errors import UserError
from evalharness.retention import compute_retention, retention_ratio
from evalharness.runner import RunOptions, run_suite
from evalharness.suite import load_suite
from helpers import make_sts, write_suite


def _specs(entries: dict):
    return {eid: parse_encoder_entry(eid, raw) for eid, raw in entries.items()}


# -- parsing --------------------------------------------------------------------------
def test_variant_mapping_parses_to_a_variant_spec():
    spec = parse_encoder_entry("bf16", {"base": "minilm", "dtype": "bfloat16"})
    assert spec.type == "variant" and spec.target == "minilm"
    assert spec.options == {"dtype": "bfloat16"}
    assert spec.spec_string() == "variant:minilm?dtype=bfloat16"


@pytest.mark.parametrize("raw,message", [
    ({"base": "m", "dtyp": "bfloat16"}, "unknown option 'dtyp'"),
    ({"base": "m"}, "needs at least one of"),
    ({"base": "m", "dtype": "bfloat16", "quantize": "dynamic-int8"}, "float32 weights"),
    ({"base": "m", "type": "st"}, "either 'type' or 'base'"),
    ({"base": "m", "embedding": "int4"}, "option 'embedding'"),
    ({"base": "m", "truncate_dim": 0}, "option 'truncate_dim'"),
])
def test_variant_mapping_errors(raw, message):
    with pytest.raises(UserError, match=message):
        parse_encoder_entry("v", raw)


def test_unknown_option_suggests_the_close_name():
    with pytest.raises(UserError) as exc:
        parse_encoder_entry("v", {"base": "m", "dtyp": "bfloat16"})
    assert "did you mean 'dtype'" in str(exc.value)


def test_check_bases():
    check_bases(_specs({"m": "minilm", "v": {"base": "m", "dtype": "bfloat16"}}))
    with pytest.raises(UserError, match="base 'mini'.*not an encoder"):
        check_bases(_specs({"minilm": "minilm", "v": {"base": "mini", "embedding": "int8"}}))
    with pytest.raises(UserError, match="another variant"):
        check_bases(_specs({"m": "minilm", "v": {"base": "m", "embedding": "int8"},
                            "w": {"base": "v", "truncate_dim": 8}}))
    with pytest.raises(UserError, match="need a torch encoder"):
        check_bases(_specs({"r": "random?dim=8", "v": {"base": "r", "quantize": "dynamic-int8"}}))
    # output settings work on any base
    check_bases(_specs({"r": "random?dim=8", "v": {"base": "r", "embedding": "binary"}}))


# -- output settings vs sentence-transformers -----------------------------------------
def test_int8_matches_sentence_transformers_with_the_runs_embeddings_as_calibration():
    from sentence_transformers.quantization import quantize_embeddings

    rng = np.random.default_rng(0)
    a = rng.standard_normal((150, 16)).astype(np.float32)
    b = rng.standard_normal((60, 16)).astype(np.float32) * 1.5
    got_a, got_b = apply_output([a, b], VariantOptions(embedding="int8"))
    calib = np.concatenate([a, b])
    want_a = quantize_embeddings(a, "int8", calibration_embeddings=calib)
    want_b = quantize_embeddings(b, "int8", calibration_embeddings=calib)
    np.testing.assert_array_equal(got_a, want_a.astype(np.float32))
    np.testing.assert_array_equal(got_b, want_b.astype(np.float32))
    assert got_a.min() >= -128 and got_a.max() <= 127


def test_binary_cosine_is_affine_in_hamming_distance():
    from sentence_transformers.quantization import quantize_embeddings

    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 64)).astype(np.float32)
    pm = apply_output([x], VariantOptions(embedding="binary"))[0]
    assert set(np.unique(pm)) == {-1.0, 1.0}
    # Hamming distances from sentence-transformers' packed bits
    bits = np.unpackbits(quantize_embeddings(x, "ubinary"), axis=1)[:, :64]
    ham = (bits[:, None, :] != bits[None, :, :]).sum(-1)
    cos = (pm @ pm.T) / 64
    np.testing.assert_allclose(cos, 1 - 2 * ham / 64, atol=1e-6)
    np.testing.assert_array_equal(binarize(np.array([[0.0, -0.0, 1e-9, -3]])),
                                  [[-1, -1, 1, -1]])


def test_truncate_matches_sentence_transformers_and_renormalises():
    from sentence_transformers.util import truncate_embeddings

    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 32)).astype(np.float32)
    got = truncate(x, 12)
    want = truncate_embeddings(x, 12)
    want = want / np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)
    # truncation happens before quantisation
    both = apply_output([x], VariantOptions(truncate_dim=12, embedding="binary"))[0]
    np.testing.assert_array_equal(both, binarize(x[:, :12]))


def test_postprocess_keeps_text_lookup_and_calibrates_across_roles():
    base = build_encoder(parse_spec_string("r", "random?dim=8&seed=0&query_prefix=q: "))
    v = build_variant(parse_encoder_entry("v", {"base": "r", "embedding": "int8"}), base)
    v.load()
    wanted = {"query": [f"q{i}" for i in range(120)], "document": [f"d{i}" for i in range(30)]}
    vectors, _ = embed(embedding_source(v), wanted, None)
    out = v.postprocess(vectors)
    q, d = vectors.get("query", wanted["query"]), vectors.get("document", wanted["document"])
    want = apply_output([q, d], VariantOptions(embedding="int8"))
    np.testing.assert_array_equal(out.get("query", wanted["query"]), want[0])
    np.testing.assert_array_equal(out.get("document", wanted["document"][::-1]), want[1][::-1])
    assert isinstance(out, Vectors) and out.dim == 8


# -- fingerprints and sharing ---------------------------------------------------------
def test_fingerprints_include_base_and_settings():
    base = build_encoder(parse_spec_string("r", "random?dim=8&seed=0"))
    other = build_encoder(parse_spec_string("r", "random?dim=8&seed=1"))
    mk = lambda b, **o: build_variant(parse_encoder_entry("v", {"base": "r", **o}), b)  # noqa: E731
    fps = {base.fingerprint(), mk(base, embedding="int8").fingerprint(),
           mk(base, embedding="binary").fingerprint(), mk(base, truncate_dim=4).fingerprint(),
           mk(other, embedding="int8").fingerprint()}
    assert len(fps) == 5
    assert mk(base, embedding="int8").fingerprint() == mk(base, embedding="int8").fingerprint()
    # output-only variants read the base's cache entries; model variants have their own
    assert embedding_source(mk(base, embedding="int8")).fingerprint() == base.fingerprint()


def test_pool_loads_the_base_once_and_shares_it(minilm):
    specs = _specs({"v1": {"base": "m", "embedding": "int8"}, "m": "minilm",
                    "v2": {"base": "m", "truncate_dim": 64}})
    pool = EncoderPool(specs)
    v1 = pool.build("v1")
    base = pool.build("m")
    assert v1.base is base
    pool.release("v1")
    pool.release("m")
    assert "m" in pool.shared  # v2 still needs it
    assert pool.build("v2").base is base
    pool.release("v2")
    assert not pool.shared


# -- model settings on the real MiniLM ------------------------------------------------
def test_dynamic_int8_variant_is_close_and_leaves_the_base_untouched(minilm, tmp_cache):
    import torch

    texts = ["A man is playing a guitar.", "Stocks fell sharply.", "The cat sleeps.",
             "How do vaccines work?", "Two dogs run on the beach."]
    before = minilm.encode(texts, role="text")
    v = build_variant(parse_encoder_entry("q", {"base": "minilm",
                                                "quantize": "dynamic-int8"}), minilm)
    v.load()
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    mods = list(v.source.model.modules())
    assert sum(isinstance(m, DynamicLinear) for m in mods) == 37  # 6 layers x 6 + pooler
    assert not any(type(m) is torch.nn.Linear for m in mods)
    assert all(p.dtype == torch.float32 for p in minilm.model.parameters())
    got, _ = embed(embedding_source(v), {"text": texts}, tmp_cache)
    q = got.get("text", texts)
    cos = (q * before).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(before, axis=1)
    assert cos.min() > 0.9  # per-tensor int8 weights: close, not identical (0.93 seen)
    assert not np.allclose(q, before, atol=1e-6)  # it did run the quantised model
    np.testing.assert_allclose(minilm.encode(texts, role="text"), before, atol=1e-6)
    assert embedding_source(v).fingerprint() != minilm.fingerprint()


@pytest.mark.integration
def test_bf16_stsb_spearman_within_0002_of_fp32(shared_data, minilm, minilm_embed, test_cache):
    """Acceptance: the bf16 copy of MiniLM on the full STS-B test set."""
    from evalharness.data.local import load_pairs

    data = load_pairs(shared_data / "stsb", "test", "stsb")
    texts = list(dict.fromkeys(data.sentence1 + data.sentence2))
    fp32 = minilm_embed(texts)
    v = build_variant(parse_encoder_entry("bf16", {"base": "minilm", "dtype": "bfloat16"}),
                      minilm)
    v.load()
    vectors, _ = embed(embedding_source(v), {"text": texts}, test_cache)  # cached after once

    def spearman(get):
        a, b = get(data.sentence1), get(data.sentence2)
        cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        return spearmanr(data.scores, cos).statistic

    index = {t: i for i, t in enumerate(texts)}
    s32 = spearman(lambda ts: fp32[[index[t] for t in ts]])
    s16 = spearman(lambda ts: vectors.get("text", ts))
    print(f"STS-B test: fp32 {s32:.5f}  bf16 {s16:.5f}  delta {s16 - s32:+.5f}")
    assert abs(s16 - s32) < 0.002
    assert s32 > 0.8


# -- runner: retention in results.json ------------------------------------------------
def test_run_records_retention_for_every_variant(tmp_path):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", """\
suite: variants
bootstrap: 20
encoders:
  rnd: random?dim=32&seed=0
  rnd_int8: {base: rnd, embedding: int8}
  rnd_bin: {base: rnd, embedding: binary}
  rnd_16: {base: rnd, truncate_dim: 16}
tasks:
  sts: {type: sts, dataset: tinysts}
""")
    out = run_suite(load_suite(suite), RunOptions(data_dir=str(tmp_path / "data"),
                                                  output=str(tmp_path / "run"), no_cache=True,
                                                  log=None))
    assert out.exit_code == 0, out.errors
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(res["retention"]) == {"rnd_int8", "rnd_bin", "rnd_16"}
    base = res["results"]["rnd"]["sts"]["metrics"]["cosine_spearman"]["value"]
    for vid, entry in res["retention"].items():
        assert entry["base"] == "rnd"
        m = entry["metrics"]["sts.cosine_spearman"]
        v = res["results"][vid]["sts"]["metrics"]["cosine_spearman"]["value"]
        assert m == {"variant": v, "base": base, "retention": pytest.approx(v / base)}
        assert res["encoders"][vid]["base"] == "rnd"
        assert res["encoders"][vid]["fingerprint"] != res["encoders"]["rnd"]["fingerprint"]
    assert res["encoders"]["rnd_16"]["dim"] == 16


def test_retention_ratio_edge_cases():
    assert retention_ratio(0.5, 1.0) == 0.5
    assert retention_ratio(None, 1.0) is None and retention_ratio(1.0, 0.0) is None


def test_retention_skips_checks_and_failed_components():
    from evalharness.results import ComponentResult, Metric, RunResults

    def comp(kind, value, error=None):
        return ComponentResult(type="t", kind=kind, main_metric="m", error=error,
                               metrics={"m": Metric(value=value)})

    res = RunResults(suite="s", created="now", results={
        "b": {"task": comp("task", 0.8), "chk": comp("check", 0.5), "bad": comp("task", 0.7)},
        "v": {"task": comp("task", 0.6), "chk": comp("check", 0.4),
              "bad": comp("task", None, error="boom")}})
    specs = _specs({"b": "random?dim=4", "v": {"base": "b", "embedding": "binary"}})
    out = compute_retention(res, specs)["v"]
    assert out["metrics"]["task.m"]["retention"] == pytest.approx(0.75)
    assert "chk.m" not in out["metrics"]
    assert out["metrics"]["bad.m"]["retention"] is None


def test_variant_listed_before_its_fitted_base(tmp_path):
    """The base is built by the first encoder that needs it and fitted on the run's texts."""
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", """\
suite: order
bootstrap: 10
encoders:
  lsa_bin: {base: lsa, embedding: binary}
  lsa: {type: tfidf-lsa, dim: 8}
tasks:
  sts: {type: sts, dataset: tinysts}
""")
    out = run_suite(load_suite(suite), RunOptions(data_dir=str(tmp_path / "data"),
                                                  output=str(tmp_path / "run"), no_cache=True,
                                                  log=None))
    assert out.exit_code == 0, out.errors
    r = out.results.retention["lsa_bin"]["metrics"]["sts.cosine_spearman"]
    assert r["base"] is not None and r["variant"] is not None
    assert r["variant"] != r["base"]
