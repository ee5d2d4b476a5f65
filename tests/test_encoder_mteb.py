"""mteb:MODEL_NAME encoders, loaded offline from the embedded MiniLM weights."""

from __future__ import annotations

import numpy as np
import pytest

from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_spec_string
from evalharness.encoders.weights import minilm_path
from evalharness.errors import UserError

NAME = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = ["A man is playing a guitar.", "The weather is cold today.",
         "Stocks fell sharply on Monday.", "how do vaccines work"]


@pytest.fixture(scope="module")
def mteb_minilm():
    enc = build_encoder(parse_spec_string("m", f"mteb:{NAME}?path={minilm_path()}"))
    enc.load()
    return enc


def test_mteb_model_matches_sentence_transformers(mteb_minilm, minilm):
    for role in ("text", "query", "document"):
        got = mteb_minilm.encode(TEXTS, role=role)
        want = minilm.encode(TEXTS, role=role)
        assert got.shape == (4, 384) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert mteb_minilm.dim == 384
    # all-MiniLM-L6-v2 has no prompts: every role shares one cache table
    assert mteb_minilm.role_key("query") == mteb_minilm.role_key("text") == "any"


def test_mteb_fingerprint_names_model_weights_and_options(mteb_minilm):
    fp = mteb_minilm.fingerprint()
    other_task = build_encoder(parse_spec_string(
        "m", f"mteb:{NAME}?path={minilm_path()}&task=SICK-R"))
    prefixed = build_encoder(parse_spec_string(
        "m", f"mteb:{NAME}?path={minilm_path()}&query_prefix=query: "))
    no_path = build_encoder(parse_spec_string("m", f"mteb:{NAME}"))
    fps = {fp, other_task.fingerprint(), prefixed.fingerprint(), no_path.fingerprint()}
    assert len(fps) == 4
    # stable across instances
    assert build_encoder(parse_spec_string(
        "m", f"mteb:{NAME}?path={minilm_path()}")).fingerprint() == fp


def test_unknown_registry_name_is_a_user_error():
    with pytest.raises(UserError, match="not a model of mteb's registry") as exc:
        build_encoder(parse_spec_string("m", "mteb:sentence-transformers/all-MiniLM-L6-v3"))
    assert "all-MiniLM-L6-v2" in str(exc.value)  # mteb's own "did you mean"


def test_missing_path_is_a_user_error():
    with pytest.raises(UserError, match="does not exist"):
        build_encoder(parse_spec_string("m", f"mteb:{NAME}?path=/nonexistent/model"))


def test_bf16_variant_of_an_mteb_model(mteb_minilm):
    """Model settings reach the SentenceTransformer inside mteb's wrapper, on a copy."""
    import torch

    from evalharness.encoders.spec import parse_encoder_entry
    from evalharness.encoders.variants import build_variant

    v = build_variant(parse_encoder_entry("m16", {"base": "m", "dtype": "bfloat16"}), mteb_minilm)
    v.load()
    assert next(v.source.model.model.parameters()).dtype == torch.bfloat16
    assert next(mteb_minilm.model.model.parameters()).dtype == torch.float32
    a, b = v.encode(TEXTS, role="text"), mteb_minilm.encode(TEXTS, role="text")
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99
