"""execution.runtime_env reaches ray.init (so py: encoders import on cluster workers);
the local Ray keeps the driver's PYTHONPATH next to the user's env_vars."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from evalharness.embeddings import ray_engine  # noqa: E402
from evalharness.embeddings.engines import ExecutionConfig  # noqa: E402
from evalharness.suite import build_suite  # noqa: E402


class FakeRay:
    def __init__(self):
        self.calls = []

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.calls.append(kwargs)


def _engine(monkeypatch, **cfg):
    engine = ray_engine.RayEngine(ExecutionConfig(engine="ray", **cfg))
    fake = FakeRay()
    monkeypatch.setattr(engine, "_ray", fake)
    monkeypatch.setattr(ray_engine, "check_reachable", lambda address: None)
    return engine, fake


def test_runtime_env_is_passed_to_a_cluster(monkeypatch):
    env = {"pip": ["mypkg==1.0"], "env_vars": {"A": "1"}}
    engine, fake = _engine(monkeypatch, address="ray://head:10001", runtime_env=env)
    engine.start()
    assert fake.calls[0]["address"] == "ray://head:10001"
    assert fake.calls[0]["runtime_env"] == env


def test_local_ray_merges_user_env_vars_with_the_driver_path(monkeypatch):
    engine, fake = _engine(monkeypatch, runtime_env={"env_vars": {"A": "1"},
                                                     "working_dir": "."})
    engine.start()
    env = fake.calls[0]["runtime_env"]
    assert env["working_dir"] == "." and env["env_vars"]["A"] == "1"
    assert "PYTHONPATH" in env["env_vars"]


def test_suite_execution_block_accepts_runtime_env():
    suite = build_suite({"suite": "s", "encoders": {"r": "random?dim=4"},
                         "tasks": {"t": {"type": "sts", "dataset": "x"}},
                         "execution": {"engine": "ray", "address": "auto",
                                       "runtime_env": {"pip": ["mypkg"]}}})
    assert suite.execution.runtime_env == {"pip": ["mypkg"]}
