"""The registry and the component declarations: one type name per component (registry key
== class ``type`` == config literal), metrics declared once with their direction, lazy
entry points."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from evalharness import registry
from evalharness.checks.base import Check, CheckConfig, TextsCheck
from evalharness.components import Component, ComponentConfig, config_type
from evalharness.results import Metric
from evalharness.tasks.base import Task

# the smallest valid config of each built-in type (default: type and dataset)
EXTRA = {"drift": {"dataset": "stsb", "other": {"split": "train"}},
         "mteb": {"task": "STSBenchmark"}}
BUILTIN = [("task", name) for name in registry.TASKS.builtin] + \
          [("check", name) for name in registry.CHECKS.builtin]


def config_of(cls, name, **fields):
    data = {"type": name, **EXTRA.get(name, {"dataset": "stsb"}), **fields}
    return cls.Config.model_validate(data)


@pytest.mark.parametrize("kind,name", BUILTIN)
def test_registry_key_equals_class_type_equals_config_literal(kind, name):
    cls = registry.resolve(kind, name)
    field = cls.Config.model_fields["type"]
    assert typing.get_origin(field.annotation) is typing.Literal
    assert typing.get_args(field.annotation) == (name,)
    assert cls.type == name == config_type(cls.Config) == field.default
    assert cls.kind == kind
    assert issubclass(cls, Task if kind == "task" else Check)
    assert config_of(cls, name).type == name


@pytest.mark.parametrize("kind,name", BUILTIN)
def test_every_listed_metric_has_a_declared_direction(kind, name):
    cls = registry.resolve(kind, name)
    assert cls.direction(cls.main_metric) is not None
    if name == "mteb":  # names from mteb's task metadata (slow to load): see test_mteb_task
        return
    configs = [config_of(cls, name)]
    if name == "robustness":  # names depend on the layout
        configs += [config_of(cls, name, source="pairs"), config_of(cls, name, source="labelled")]
    for cfg in configs:
        names = cls.metric_names(cfg)
        assert names and len(set(names)) == len(names)
        for metric in names:
            assert isinstance(cls.higher_is_better(metric), bool), metric
            assert "{" not in metric


def test_directions_of_patterned_names():
    rob = registry.resolve("check", "robustness")
    cfg = config_of(rob, "robustness", source="pairs", perturbations=["synonym", "typo"])
    names = rob.metric_names(cfg)
    assert {"synonym_fluctuation", "typo_sts_drop", "clean_sts_spearman"} <= set(names)
    assert not rob.higher_is_better("synonym_fluctuation")
    assert rob.higher_is_better("synonym_mean_cosine")
    assert not rob.higher_is_better("typo_sts_drop")
    assert rob.higher_is_better("mean_cosine") and not rob.higher_is_better("fluctuation")
    ann = registry.resolve("check", "ann")
    names = ann.metric_names(config_of(ann, "ann", k=5, backends=["hnsw"]))
    assert names == ["exact_ndcg_at_10", "hnsw_recall_at_5", "hnsw_ndcg_at_10",
                     "hnsw_build_seconds", "hnsw_query_seconds"]
    assert [ann.higher_is_better(n) for n in names] == [True, True, True, False, False]
    lat = registry.resolve("check", "latency")
    assert lat.higher_is_better("texts_per_second_b8") and not lat.higher_is_better("p95_ms_b8")
    ret = registry.resolve("task", "retrieval")
    assert ret.metric_names(config_of(ret, "retrieval", k_values=[10]))[0] == "ndcg_at_10"
    assert ret.higher_is_better("recall_at_1000")
    assert ret.direction("not_a_metric") is None
    with pytest.raises(KeyError, match="declares no metric 'not_a_metric'"):
        ret.higher_is_better("not_a_metric")


# the declaration rules, enforced when a class is defined ---------------------------------

class _Cfg(ComponentConfig):
    type: typing.Literal["toy"] = "toy"


def test_type_comes_from_the_config_literal():
    class Toy(Task):
        Config = _Cfg
        metrics = {"score": True}
        main_metric = "score"

    assert Toy.type == "toy" and Toy.kind == "task"


def test_a_class_type_that_disagrees_with_its_config_is_refused():
    with pytest.raises(TypeError, match="type is 'toys' but its Config's type literal is 'toy'"):
        class Toy(Task):  # noqa: F841
            type = "toys"
            Config = _Cfg
            metrics = {"score": True}
            main_metric = "score"


def test_a_component_without_kind_metrics_or_main_metric_is_refused():
    with pytest.raises(TypeError, match="has no kind"):
        class NoKind(Component):  # noqa: F841
            Config = _Cfg
            metrics = {"score": True}
            main_metric = "score"
    with pytest.raises(TypeError, match="declares no metrics"):
        class NoMetrics(Task):  # noqa: F841
            Config = _Cfg
            main_metric = "score"
    with pytest.raises(TypeError, match="main_metric 'other' is not one of its declared"):
        class BadMain(Task):  # noqa: F841
            Config = _Cfg
            metrics = {"score": True}
            main_metric = "other"
    with pytest.raises(TypeError, match="override metric_names"):
        class Patterned(Task):  # noqa: F841
            Config = _Cfg
            metrics = {"score_at_{k}": True}
            main_metric = "score_at_10"


class _CheckCfg(CheckConfig):
    type: typing.Literal["toy-check"] = "toy-check"


class _ToyCheck(TextsCheck):
    Config = _CheckCfg
    metrics = {"spread": False, "size": True}
    main_metric = "spread"

    def load(self, resolver) -> None:
        self.dataset_name = "toy"

    def evaluate(self, vectors, encoder):
        return self.result({"spread": Metric(value=float(np.std(vectors)), n=3),
                            "size": Metric(value=3.0, n=3)})


def test_result_takes_each_direction_from_the_declaration():
    comp = _ToyCheck("t", _CheckCfg(dataset="x"), resolver=None)
    res = comp.evaluate(np.array([1.0, 2.0, 4.0]), None)
    assert res.kind == "check" and res.type == "toy-check" and res.main_metric == "spread"
    assert res.metrics["spread"].higher_is_better is False
    assert res.metrics["size"].higher_is_better is True
    with pytest.raises(KeyError, match="declares no metric 'surprise'"):
        comp.result({"surprise": Metric(value=1.0)})


def test_ann_is_a_check():
    from evalharness.checks.ann import AnnCheck

    assert issubclass(AnnCheck, Check) and not issubclass(AnnCheck, TextsCheck)
    assert AnnCheck.kind == "check"


# the registry ---------------------------------------------------------------------------

def test_unknown_names_get_a_suggestion():
    from evalharness.errors import UserError

    with pytest.raises(UserError, match="unknown check type 'uniformty'") as exc:
        registry.resolve("check", "uniformty", source="s.yaml", line=3, field="checks.u.type")
    assert exc.value.hint == "did you mean 'uniformity'?" and exc.value.line == 3
    with pytest.raises(UserError) as exc:
        registry.resolve("task", "zzzzzz")
    assert exc.value.hint.startswith("known task types: classification, clustering")


def test_built_in_names_never_read_the_entry_points(tmp_path, monkeypatch):
    """--help, validate and run of built-in types stay fast: no scan of the installed
    packages unless a name is not built in."""
    from evalharness.cli import main

    def boom(kind):
        raise AssertionError(f"entry points of {kind}s were read")

    monkeypatch.setattr(registry, "plugins", boom)
    assert registry.resolve("task", "sts").type == "sts"
    assert "random" in registry.ENCODERS
    assert main(["validate", str(registry_suite(tmp_path))]) == 0
    with pytest.raises(AssertionError, match="entry points of tasks were read"):
        registry.resolve("task", "not-built-in")


def registry_suite(tmp_path):
    from helpers import write_suite

    return write_suite(tmp_path / "s.yaml", """\
suite: builtins
encoders:
  rnd: random?dim=8
  lsa: {type: tfidf-lsa, dim: 4}
tasks:
  sts: {type: sts, dataset: stsb}
  news: {type: classification, dataset: agnews}
checks:
  geo: {type: uniformity, dataset: stsb}
  rob: {type: robustness, dataset: stsb, perturbations: [typo]}
thresholds:
  - {metric: rob.typo_fluctuation, max: 0.5}
""")


def test_help_does_not_import_the_registry():
    import subprocess
    import sys

    code = ("import sys; from evalharness.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('evalharness.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    assert "evalharness.registry" not in out and "evalharness.components" not in out


def test_cross_encoder_hook_and_error_result_are_declared_on_the_base():
    comp = _ToyCheck("t", _CheckCfg(dataset="x"), resolver=None)
    assert comp.other_encoder is None
    res = comp.error_result("it broke", traceback="tb")
    assert (res.type, res.kind, res.error, res.traceback, res.metrics) == \
        ("toy-check", "check", "it broke", "tb", {})
    from evalharness.checks.drift import DriftCheck

    assert isinstance(DriftCheck.other_encoder, property)
    assert DriftCheck.evaluate_pair is not Component.evaluate_pair
