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


# A suite has hundreds of values; YAML aliases can make a few hundred bytes expand to
# billions of them (the "billion laughs" alias bomb). Expansion stops at this many values.
MAX_NODES = 100_000


class _Loader(yaml.SafeLoader):
    pass


class _Budget:
    """Values constructed so far (aliases expand their node again each time)."""

    def __init__(self, source: str):
        self.left = MAX_NODES
        self.source = source
        self.loader = _Loader("")

    def spend(self, node: yaml.Node) -> None:
        self.left -= 1
        if self.left < 0:
            raise UserError(f"the YAML expands to more than {MAX_NODES:,} values (nested "
                            "aliases: '&name' / '*name')", source=self.source,
                            line=node.start_mark.line + 1,
                            hint="a suite file needs far fewer values; write the repeated "
                                 "parts out, or reference them fewer times")


def _construct(node: yaml.Node, path: tuple, locs: Locations, source: str,
               budget: _Budget | None = None) -> Any:
    budget = budget or _Budget(source)
    budget.spend(node)
    locs.setdefault(path, node.start_mark.line + 1)  # a mapping value: its key's line
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
            out[key] = _construct(value_node, path + (key,), locs, source, budget)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, path + (i,), locs, source, budget)
                for i, v in enumerate(node.value)]
    return _scalar(node, budget.loader)


def _scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader | None = None) -> Any:
    return (loader or _Loader("")).construct_object(node, deep=True)


def parse_yaml(text: str, source: str) -> tuple[Any, Locations]:
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or str(exc)
        raise UserError(f"YAML syntax error: {problem}", source=source, line=line,
                        hint="check indentation, colons and quotes on that line") from None
    except yaml.YAMLError as exc:  # e.g. control characters (yaml's ReaderError)
        raise UserError(f"YAML error: {exc}", source=source,
                        hint="a suite file is UTF-8 YAML text") from None
    except RecursionError:
        raise UserError("the YAML is nested too deeply", source=source) from None
    locs: Locations = {}
    if node is None:
        return None, locs
    try:
        return _construct(node, (), locs, source), locs
    except RecursionError:
        raise UserError("the YAML is nested too deeply, or an alias ('*name') refers to a "
                        "value that contains it", source=source) from None


def decode_utf8(data: bytes, source: str) -> str:
    """``data`` as text, or a UserError naming the line and byte that is not UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset "
                        f"{exc.start} cannot be decoded)", source=source, line=line,
                        hint="suite and threshold files are YAML text encoded as UTF-8; is "
                             "this the right file?") from None


def load_yaml(path: str | Path) -> tuple[Any, Locations]:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UserError("file not found", source=str(p)) from None
    except IsADirectoryError:
        raise UserError("is a folder, not a file", source=str(p)) from None
    except OSError as exc:
        raise UserError(f"cannot read file: {exc.strerror}", source=str(p)) from None
    return parse_yaml(decode_utf8(data, str(p)), str(p))


def line_of(locs: Locations, path: tuple) -> int | None:
    """The line of the deepest known prefix of ``path``."""
    path = tuple(path)
    while path:
        if path in locs:
            return locs[path]
        path = path[:-1]
    return locs.get(())
