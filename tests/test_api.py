"""The Python API: evaluate(suite path | dict | Suite, encoders=spec | object | callable)."""

from __future__ import annotations

import numpy as np
import pytest

import evalharness
from evalharness.encoders.random import RandomEncoder
from helpers import make_sts

SUITE = {"suite": "api", "bootstrap": 50, "seed": 1,
         "encoders": {"r": "random?dim=16&seed=3"},
         "tasks": {"sts": {"type": "sts", "dataset": "tinysts"}},
         "thresholds": [{"metric": "sts.cosine_spearman", "min": -1.0}]}


def test_evaluate_a_dict_suite_writes_nothing_and_gives_a_dataframe(tmp_path, monkeypatch):
    make_sts(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    res = evalharness.evaluate(SUITE, data_dir=tmp_path / "data", no_cache=True)
    assert res.passed and res.exit_code == 0 and res.folder is None
    assert not (tmp_path / "reports").exists()
    df = res.to_dataframe()
    row = df[(df.encoder == "r") & (df.address == "sts.cosine_spearman")].iloc[0]
    m = res.metric("r", "sts.cosine_spearman")
    assert row.value == m.value and row.ci_low == m.ci[0] and row.n == m.n and row.main
    assert set(df.columns) >= {"encoder", "metric", "value", "ci_low", "ci_high", "n"}


def test_callable_and_object_encoders_equal_the_spec_encoder(tmp_path):
    make_sts(tmp_path / "data")
    ref = RandomEncoder("x", None, RandomEncoder.Options(dim=16, seed=3))

    def fn(texts):
        return ref.encode(texts, role="text")

    class Obj:
        def encode(self, texts):
            return ref.encode(texts, role="text")

    res = evalharness.evaluate(SUITE, data_dir=tmp_path / "data",
                               cache_dir=tmp_path / "cache",
                               encoders={"fn": fn, "obj": Obj()}, output=tmp_path / "run")
    vals = {e: res.metric(e, "sts.cosine_spearman").value for e in ("r", "fn", "obj")}
    assert vals["fn"] == vals["r"] == vals["obj"]
    assert (tmp_path / "run" / "results.json").exists()
    assert res.encoders["fn"].spec == "object:function"
    # a callable has no fingerprint of its behaviour: never served from the cache
    again = evalharness.evaluate(SUITE, data_dir=tmp_path / "data",
                                 cache_dir=tmp_path / "cache", encoders={"fn": fn})
    assert again.encoders["fn"].cache["hits"] == 0
    assert again.encoders["r"].cache["misses"] == 0


def test_a_sentence_transformer_like_module_is_fingerprinted_by_its_weights():
    torch = pytest.importorskip("torch")
    from evalharness.encoders.in_memory import ObjectEncoder

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def encode(self, texts, convert_to_numpy=True, show_progress_bar=False, batch_size=32):
            x = torch.tensor([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts])
            return self.lin(x).detach().numpy()

    torch.manual_seed(0)
    a = Tiny()
    b = Tiny()
    b.load_state_dict(a.state_dict())
    fa, fb = ObjectEncoder("a", a).fingerprint(), ObjectEncoder("b", b).fingerprint()
    assert fa == fb
    with torch.no_grad():
        b.lin.weight[0, 0] += 1e-3
    assert ObjectEncoder("b", b).fingerprint() != fa
    out = ObjectEncoder("a", a).encode(["abc", "eee"], role="text")
    assert out.shape == (2, 3) and np.isfinite(out).all()


def test_bad_suite_argument_is_a_user_error():
    from evalharness.errors import UserError

    with pytest.raises(UserError, match="suite must be a path"):
        evalharness.evaluate(42)
