"""Encoders: spec parsing, fingerprints that change whenever vectors could, output checks,
and the hf encoder matching sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest

from evalharness.encoders.base import check_output
from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_encoder_entry, parse_spec_string
from evalharness.errors import EncoderError, UserError


def enc(text, eid="e"):
    return build_encoder(parse_spec_string(eid, text))


def test_spec_strings():
    s = parse_spec_string("a", "hf:/models/x?pooling=cls&normalize=true&batch_size=8")
    assert (s.type, s.target) == ("hf", "/models/x")
    assert s.options == {"pooling": "cls", "normalize": True, "batch_size": 8}
    s = parse_spec_string("b", "py:my.module:encode")
    assert (s.type, s.target) == ("py", "my.module:encode")
    assert parse_spec_string("c", "tfidf-lsa?dim=64").options == {"dim": 64}
    assert parse_spec_string("d", "minilm").type == "minilm"


def test_mapping_equals_spec_string():
    a = parse_encoder_entry("x", {"type": "random", "dim": 12, "seed": 3})
    b = parse_spec_string("x", "random?dim=12&seed=3")
    assert build_encoder(a).fingerprint() == build_encoder(b).fingerprint()


def test_bad_option_type():
    with pytest.raises(UserError) as info:
        parse_encoder_entry("x", {"type": "random", "dim": "wide"})
    assert "dim" in str(info.value) and "encoders.x" in str(info.value)


def test_random_encoder_deterministic_per_text():
    e = enc("random?dim=8&seed=1")
    a = e.encode(["x", "y", "x"], role="text")
    assert a.shape == (3, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a[0], a[2])
    assert not np.allclose(a[0], a[1])
    assert not np.allclose(enc("random?dim=8&seed=2").encode(["x"], role="text")[0], a[0])


def test_tfidf_lsa_fit_and_fingerprint():
    e = enc("tfidf-lsa?dim=4&seed=0")
    corpus = ["the cat sat", "the dog ran", "a cat ran", "dogs and cats", "stocks fell",
              "markets rose", "the market"]
    e.prepare(corpus)
    fp1 = e.fingerprint()
    v = e.encode(corpus[:3], role="text")
    assert v.shape == (3, 4)
    np.testing.assert_allclose(v, e.encode(corpus[:3], role="text"))
    e2 = enc("tfidf-lsa?dim=4&seed=0")
    e2.prepare(corpus + ["new text"])
    assert e2.fingerprint() != fp1  # a different fitting corpus never shares cached vectors


def test_prefix_changes_fingerprint_and_role_key():
    plain = enc("random?dim=8")
    pref = enc("random?dim=8&query_prefix=query: ")
    assert plain.fingerprint() != pref.fingerprint()
    assert plain.role_key("query") == plain.role_key("document") == "any"
    assert pref.role_key("query") == "query" and pref.role_key("document") == "document"
    np.testing.assert_array_equal(pref.encode(["x"], role="query"),
                                  plain.encode(["query: x"], role="text"))


@pytest.mark.parametrize("change", ["pooling=cls", "dtype=bfloat16", "query_prefix=q: ",
                                    "max_seq_length=128", "normalize=true"])
def test_hf_fingerprint_changes(change):
    base = enc("hf:minilm")
    other = enc(f"hf:minilm?{change}")
    assert base.fingerprint() != other.fingerprint()


@pytest.mark.parametrize("change", ["dtype=bfloat16", "document_prefix=passage: ",
                                    "max_seq_length=64", "normalize=true"])
def test_st_fingerprint_changes(change):
    assert enc("minilm").fingerprint() != enc(f"minilm?{change}").fingerprint()
    assert enc("minilm").fingerprint() == enc("minilm").fingerprint()


def test_hf_default_pooling_from_st_config():
    assert enc("hf:minilm").pooling == "mean"


def test_check_output_errors():
    with pytest.raises(EncoderError, match="NaN or inf.*first bad row: 7"):
        a = np.ones((4, 3))
        a[2, 0] = np.inf
        check_output("m", a, 4, None, offset=5)
    with pytest.raises(EncoderError, match="returned 5 vectors for 4 texts"):
        check_output("m", np.ones((5, 3)), 4, None)
    with pytest.raises(EncoderError, match="dimension changed from 3 to 2"):
        check_output("m", np.ones((4, 2)), 4, 3)
    with pytest.raises(EncoderError, match="2-D"):
        check_output("m", np.ones(4), 4, None)
    with pytest.raises(EncoderError, match="encoder 'm'"):
        check_output("m", [["a"]], 1, None)


def test_python_encoder_function_and_object():
    f = enc("py:helpers:good_fn")
    out = f.encode(["ab", "abc"], role="query")
    assert out.shape == (2, 8)
    o = enc("py:helpers:BadEncoder")
    assert o.encode(["a", "b"], role="text").shape == (2, 4)
    with pytest.raises(UserError, match="cannot import module"):
        enc("py:no_such_module_xyz:f").load()


@pytest.mark.integration
def test_hf_mean_pooling_equals_sentence_transformers(minilm, shared_data):
    from evalharness.data.local import load_pairs

    texts = load_pairs(shared_data / "stsb", "test", "stsb").sentence1[:48]
    texts += ["", "a", "A much longer sentence " * 20]  # empty, tiny and truncated inputs
    st = minilm.encode(texts, role="text")
    hf = enc("hf:minilm?pooling=mean&normalize=true&batch_size=16").encode(texts, role="text")
    np.testing.assert_allclose(hf, st, atol=1e-5)


def test_count_tokens_exact_where_it_decides_truncation(minilm):
    from evalharness.encoders.base import count_tokens

    tok = minilm.model.tokenizer
    texts = ["short text", "word " * 300, "x" * 5000, "supercalifragilistic" * 400, ""]
    full = np.array([len(x) for x in tok(texts, truncation=False)["input_ids"]])
    got = count_tokens(tok, texts, 256, chars_per_token=4)
    np.testing.assert_array_equal(got > 256, full > 256)
    short = [i for i, t in enumerate(texts) if len(t) <= 4 * 258]
    np.testing.assert_array_equal(got[short], full[short])
    assert (got <= full).all()
