"""device: auto (encoders/device.py): CUDA, then MPS, then CPU, with the availability checks
mocked; batch defaults follow the resolved device; fingerprints do not depend on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalharness.encoders import device as dev
from evalharness.encoders.base import (CPU_BATCH_SIZE, CPU_BATCH_TOKENS, GPU_BATCH_SIZE,
                                       GPU_BATCH_TOKENS, TorchOptions)
from evalharness.encoders.pool import build_encoder
from evalharness.encoders.spec import parse_encoder_entry, parse_spec_string
from evalharness.errors import UserError


@pytest.fixture
def machine(monkeypatch):
    """Pretend torch sees these accelerators: machine(cuda=2, mps=False)."""

    def set_(cuda: int = 0, mps: bool = False):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"Fake GPU {i}")
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)

    return set_


@pytest.mark.parametrize("cuda,mps,expected", [(1, True, "cuda"), (0, True, "mps"),
                                               (0, False, "cpu"), (2, False, "cuda")])
def test_auto_prefers_cuda_then_mps_then_cpu(machine, cuda, mps, expected):
    machine(cuda=cuda, mps=mps)
    assert dev.resolve_device("auto") == expected
    assert dev.resolve_device(None) == expected


def test_explicit_devices_are_checked(machine):
    machine(cuda=0, mps=False)
    assert dev.resolve_device("cpu") == "cpu"
    with pytest.raises(UserError, match="no CUDA device") as e:
        dev.resolve_device("cuda", field="encoders.m.device")
    assert "encoders.m.device" in str(e.value) and "auto" in str(e.value)
    with pytest.raises(UserError, match="MPS is not available"):
        dev.resolve_device("mps")
    machine(cuda=2)
    assert dev.resolve_device("CUDA:1") == "cuda:1"
    with pytest.raises(UserError, match="sees 2 CUDA device"):
        dev.resolve_device("cuda:2")


def test_a_broken_cuda_install_counts_as_none(monkeypatch):
    def boom():
        raise RuntimeError("driver too old")

    monkeypatch.setattr(torch.cuda, "is_available", boom)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert dev.resolve_device("auto") == "cpu"


def test_device_option_syntax_is_checked_at_validate_without_torch_work():
    assert TorchOptions().device == "auto"
    assert TorchOptions(device=" Cuda:0 ").device == "cuda:0"
    for bad in ("gpu", "cuda:x", "auto:1", ""):
        with pytest.raises(ValueError, match="'device' parameter"):
            TorchOptions(device=bad)
    with pytest.raises(UserError, match="device"):
        parse_encoder_entry("m", "st:some/model?device=gpu")


def test_batch_defaults_follow_the_resolved_device():
    auto = TorchOptions()
    # before the model loads: the CPU defaults (what validate and the CPU show)
    assert (auto.batch_size, auto.batch_tokens) == (CPU_BATCH_SIZE, CPU_BATCH_TOKENS)
    on_gpu = auto.for_device("cuda")
    assert (on_gpu.batch_size, on_gpu.batch_tokens) == (GPU_BATCH_SIZE, GPU_BATCH_TOKENS)
    on_cpu = auto.for_device("cpu")
    assert (on_cpu.batch_size, on_cpu.batch_tokens) == (CPU_BATCH_SIZE, CPU_BATCH_TOKENS)
    assert auto.batching("mps") == {"batch_size": GPU_BATCH_SIZE,
                                    "batch_tokens": GPU_BATCH_TOKENS}
    # what the user gave stays, on any device
    given = TorchOptions(batch_size=8, batch_tokens=None)
    assert given.for_device("cpu").batch_tokens is None
    assert given.for_device("cuda").batch_size == 8
    assert TorchOptions(batch_tokens=512).for_device("cuda").batch_tokens == 512
    # a copy with explicit settings (the latency check's one-batch timing) keeps them
    timed = auto.model_copy(update={"batch_size": 100, "batch_tokens": None})
    assert timed.batching("cpu") == {"batch_size": 100, "batch_tokens": None}
    # an explicit device: its defaults at once (as before)
    assert TorchOptions(device="cuda").batch_tokens == GPU_BATCH_TOKENS
    assert TorchOptions(device="cpu").batch_tokens == CPU_BATCH_TOKENS


def test_planned_device_needs_no_torch_where_the_answer_is_certain(monkeypatch, machine):
    import sys

    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.setattr(dev, "accelerator_possible", lambda: False)
    assert dev.planned_device("auto") == "cpu"
    assert "torch" not in sys.modules  # not imported for it
    assert dev.planned_device("cuda:1") == "cuda:1"  # explicit: as given (checked at load)
    monkeypatch.setitem(sys.modules, "torch", torch)
    machine(cuda=1)
    assert dev.planned_device("auto") == "cuda"


def test_fingerprint_does_not_depend_on_the_device():
    """Vectors cached by CPU users stay valid: device is not part of the fingerprint."""
    fps = {build_encoder(parse_spec_string("m", spec)).fingerprint()
           for spec in ("minilm", "minilm?device=cpu", "minilm?device=auto",
                        "minilm?device=cuda")}
    assert len(fps) == 1


class _FakeST:
    """Stands in for sentence_transformers.SentenceTransformer (records its device)."""

    made: list = []

    def __init__(self, path, **kwargs):
        self.kwargs = kwargs
        self.max_seq_length = 16
        self.tokenizer = None
        _FakeST.made.append(self)

    def to(self, *_):
        return self

    def eval(self):
        return self

    def get_embedding_dimension(self):
        return 4


def test_st_encoder_loads_on_the_resolved_device(machine, monkeypatch):
    import sentence_transformers

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", _FakeST)
    machine(cuda=1)
    enc = build_encoder(parse_spec_string("m", "minilm"))
    assert enc.torch_device is None and not _FakeST.made  # nothing loaded yet ...
    assert enc.device == "cuda:0 (Fake GPU 0)"  # ... but where it would run is known
    enc.load()
    assert _FakeST.made[-1].kwargs["device"] == "cuda"
    assert enc.torch_device == "cuda" and enc.device == "cuda:0 (Fake GPU 0)"
    assert (enc.options.batch_size, enc.options.batch_tokens) == \
        (GPU_BATCH_SIZE, GPU_BATCH_TOKENS)
    d = enc.describe()
    assert d["device"] == "cuda:0 (Fake GPU 0)" and d["dtype"] == "float32"

    machine(cuda=0, mps=True)
    enc = build_encoder(parse_spec_string("m", "minilm?batch_size=7"))
    enc.load()
    assert _FakeST.made[-1].kwargs["device"] == "mps" and enc.device == "mps"
    assert (enc.options.batch_size, enc.options.batch_tokens) == (7, GPU_BATCH_TOKENS)


def test_hf_encoder_moves_model_and_batches_to_the_resolved_device(machine, monkeypatch,
                                                                    tmp_path):
    import transformers

    moved = []

    class Model:
        config = type("C", (), {"hidden_size": 4})()

        def to(self, where):
            moved.append(where)
            return self

        def eval(self):
            return self

    class Tok:
        model_max_length = 32

    monkeypatch.setattr(transformers.AutoModel, "from_pretrained",
                        classmethod(lambda cls, *a, **k: Model()))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained",
                        classmethod(lambda cls, *a, **k: Tok()))
    machine(cuda=1)
    (tmp_path / "m").mkdir()
    enc = build_encoder(parse_encoder_entry("h", {"type": "hf", "model": str(tmp_path / "m")}))
    enc.load()
    assert moved == ["cuda"] and enc.device == "cuda:0 (Fake GPU 0)"
    assert enc.options.batch_tokens == GPU_BATCH_TOKENS
    assert enc.describe()["device"].startswith("cuda")


def test_minilm_on_this_machine_runs_on_the_cpu(minilm):
    """On a machine without an accelerator auto is the CPU, with the CPU's batches."""
    if torch.cuda.is_available() or dev.mps_available():
        pytest.skip("an accelerator is present")
    assert minilm.options.device == "auto" and minilm.torch_device == "cpu"
    assert minilm.device == "cpu" and minilm.options.batch_tokens == CPU_BATCH_TOKENS
    explicit = build_encoder(parse_spec_string("c", "minilm?device=cpu"))
    texts = ["a short one", "another sentence, a little longer than the first"]
    np.testing.assert_allclose(minilm.encode(texts, role="text"),
                               explicit.encode(texts, role="text"), atol=1e-6)
