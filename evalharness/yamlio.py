"""YAML loading that remembers where every value came from (file and line).

``load_yaml(path)`` returns ``(data, locations)`` where ``locations`` maps a key path
(tuple of keys / list indices) to the 1-based line of that value, so validation
errors can point at the exact line of a suite file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evalharness.errors import UserError

Locations = dict[tuple, int]


class _Loader(yaml.SafeLoader):
    pass


def _construct(node: yaml.Node, path: tuple, locs: Locations, source: str) -> Any:
    locs[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise UserError("mapping keys must be plain scalars", source=source,
                                line=key_node.start_mark.line + 1)
            key = _scalar(key_node)
            if key in out:
                raise UserError(f"duplicate key '{key}'", source=source,
                                line=key_node.start_mark.line + 1)
            locs[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), locs, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, path + (i,), locs, source) for i, v in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = _Loader("")
    return loader.construct_object(node, deep=True)


def parse_yaml(text: str, source: str) -> tuple[Any, Locations]:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise UserError(f"YAML syntax error: {problem}", source=source, line=line,
                        hint="check indentation, colons and quotes on that line") from None
    except yaml.YAMLError as exc:  # pragma: no cover - defensive
        raise UserError(f"YAML error: {exc}", source=source) from None
    locs: Locations = {}
    if node is None:
        return None, locs
    return _construct(node, (), locs, source), locs


def load_yaml(path: str | Path) -> tuple[Any, Locations]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError("file not found", source=str(p)) from None
    except OSError as exc:
        raise UserError(f"cannot read file: {exc.strerror}", source=str(p)) from None
    return parse_yaml(text, str(p))


def line_of(locs: Locations, path: tuple) -> int | None:
    """The line of the deepest known prefix of ``path``."""
    path = tuple(path)
    while path:
        if path in locs:
            return locs[path]
        path = path[:-1]
    return locs.get(())
