"""Name -> lazy ``module:object`` registry for encoders, tasks and checks.

Entries are strings so that nothing heavy (torch, sentence-transformers, mteb) is
imported until a suite actually needs it. Unknown names get a "did you mean" hint.

Built-in types are listed below. Other packages add types through Python entry points,
one group per kind (see docs/extending.md)::

    [project.entry-points."evalharness.tasks"]
    my-task = "my_package.tasks:MyTask"

The entry points are read only when a name is not a built-in one or when every name is
asked for (``list``, "did you mean"), so ``--help`` and a suite of built-in types never
scan the installed packages. A built-in name always wins over a plugin of the same name.
For tasks and checks the registry key must equal the class's ``type`` (its config's
``type: Literal[...]``), for built-ins and plugins alike.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

from evalharness.errors import UserError

GROUPS = {"task": "evalharness.tasks", "check": "evalharness.checks",
          "encoder": "evalharness.encoders"}


@functools.cache
def plugins(kind: str) -> dict[str, tuple[str, str | None]]:
    """name -> (``module:object``, distribution name) of the ``evalharness.<kind>s``
    entry points of the installed packages (first one wins on a duplicate name).
    Cached: ``refresh()`` forgets it (tests that put a package on sys.path call it)."""
    from importlib.metadata import entry_points

    out: dict[str, tuple[str, str | None]] = {}
    for ep in entry_points(group=GROUPS[kind]):
        dist = getattr(ep, "dist", None)
        out.setdefault(ep.name, (ep.value, dist.name if dist is not None else None))
    return out


def refresh() -> None:
    """Read the entry points again on the next lookup (after installing a plugin)."""
    plugins.cache_clear()


class Table(Mapping):
    """The built-in ``name -> module:object`` table of one kind, followed by the plugins
    of its entry-point group (read on the first lookup that needs them)."""

    def __init__(self, kind: str, builtin: dict[str, str]):
        self.kind = kind
        self.builtin = builtin

    def __getitem__(self, name: str) -> str:
        if name in self.builtin:
            return self.builtin[name]
        return plugins(self.kind)[name][0]

    def __contains__(self, name) -> bool:
        return name in self.builtin or name in plugins(self.kind)

    def __iter__(self) -> Iterator[str]:
        yield from self.builtin
        yield from (n for n in plugins(self.kind) if n not in self.builtin)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def origin(self, name: str) -> str:
        """Where ``name`` comes from: "evalharness" or the plugin's distribution."""
        if name in self.builtin:
            return "evalharness"
        return plugins(self.kind)[name][1] or "an unnamed distribution"


TASKS = Table("task", {
    "sts": "evalharness.tasks.sts:STSTask",
    "classification": "evalharness.tasks.classification:ClassificationTask",
    "clustering": "evalharness.tasks.clustering:ClusteringTask",
    "retrieval": "evalharness.tasks.retrieval:RetrievalTask",
    "mteb": "evalharness.tasks.mteb_task:MtebTask",
})

CHECKS = Table("check", {
    "uniformity": "evalharness.checks.geometry:UniformityCheck",
    "alignment": "evalharness.checks.geometry:AlignmentCheck",
    "anisotropy": "evalharness.checks.geometry:AnisotropyCheck",
    "spectrum": "evalharness.checks.spectrum:SpectrumCheck",
    "robustness": "evalharness.checks.robustness:RobustnessCheck",
    "separation": "evalharness.checks.separation:SeparationCheck",
    "latency": "evalharness.checks.latency:LatencyCheck",
    "ann": "evalharness.checks.ann:AnnCheck",
    "drift": "evalharness.checks.drift:DriftCheck",
})

ENCODERS = Table("encoder", {
    "st": "evalharness.encoders.sentence_transformer:SentenceTransformerEncoder",
    "minilm": "evalharness.encoders.sentence_transformer:SentenceTransformerEncoder",
    "hf": "evalharness.encoders.hf:HFEncoder",
    "tfidf-lsa": "evalharness.encoders.tfidf_lsa:TfidfLsaEncoder",
    "random": "evalharness.encoders.random:RandomEncoder",
    "py": "evalharness.encoders.python:PythonEncoder",
    "mteb": "evalharness.encoders.mteb_model:MtebEncoder",
    "http": "evalharness.encoders.http:HttpEncoder",
})

KINDS: dict[str, Table] = {"task": TASKS, "check": CHECKS, "encoder": ENCODERS}


def suggest(name: str, choices) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else None


def _importable(target: str) -> bool:
    try:
        return importlib.util.find_spec(target.partition(":")[0]) is not None
    except ImportError:  # a parent package that is missing or fails to import
        return False


def available(kind: str) -> list[str]:
    """The names of ``kind`` whose module can be found, built-in and plugin, sorted."""
    table = KINDS[kind]
    return sorted(name for name in table if _importable(table[name]))


def _unknown(kind: str, name: str, **where) -> UserError:
    names = available(kind)
    hint = suggest(name, names) or f"known {kind} types: {', '.join(names)}"
    return UserError(f"unknown {kind} type '{name}'", hint=hint, **where)


def resolve(kind: str, name: str, *, source: str | None = None, line: int | None = None,
            field: str | None = None) -> Any:
    """The class registered as ``name`` for ``kind`` (imported now)."""
    table = KINDS[kind]
    where = {"source": source, "line": line, "field": field}
    if name not in table:
        raise _unknown(kind, name, **where)
    target = table[name]
    module, _, attr = target.partition(":")
    builtin = name in table.builtin
    if builtin:
        obj = getattr(importlib.import_module(module), attr)
    else:
        try:
            obj = importlib.import_module(module)
            obj = functools.reduce(getattr, attr.split("."), obj) if attr else obj
        except Exception as exc:
            raise _plugin_error(kind, name, target, f"loading it failed: "
                                f"{type(exc).__name__}: {exc}", **where) from exc
    if kind in ("task", "check"):
        _check_component(kind, name, target, obj, builtin, where)
    return obj


def _plugin_error(kind: str, name: str, target: str, why: str, **where) -> UserError:
    dist = KINDS[kind].origin(name)
    return UserError(f"{kind} type '{name}' (entry point '{target}' of {dist}) cannot be "
                     f"used: {why}", hint=f"fix or uninstall the package {dist}; its entry "
                     f"points are in the group '{GROUPS[kind]}'", **where)


# what the runner uses of a task/check class (evalharness.components.Component has all of
# it); checked by shape so that the registry, low in the layers, imports no component code
COMPONENT_MEMBERS = ("kind", "type", "Config", "metrics", "metric_names", "needs", "evaluate")


def _is_component(obj) -> bool:
    return isinstance(obj, type) and all(hasattr(obj, m) for m in COMPONENT_MEMBERS)


def _check_component(kind, name, target, obj, builtin, where) -> None:
    if _is_component(obj) and obj.kind == kind and obj.type == name:
        return
    if not _is_component(obj):
        why = (f"'{target}' is not a {kind} class (subclass evalharness.tasks.base.Task "
               "or evalharness.checks.base.Check)")
    elif obj.kind != kind:
        why = f"'{target}' is a {obj.kind}, registered as a {kind}"
    else:
        why = (f"it is registered as '{name}' but its config's type literal is "
               f"{obj.type!r}; the two must be equal")
    if builtin:
        raise TypeError(f"registry entry {kind} '{name}': {why}")
    raise _plugin_error(kind, name, target, why, **where)
