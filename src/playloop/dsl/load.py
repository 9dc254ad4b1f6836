"""Load a playbook: YAML text -> a validated, normalised ``Flow``.

The YAML loader is PyYAML's safe loader (libyaml when available) with three changes:
it records where every mapping key, value and list item starts (for ``file:line:col``
errors), it reports a key given twice in one mapping instead of keeping the last, and
it leaves timestamps as strings: workloads, results and events are JSON, and a value
must read back from the event log the same as it was when the execution ran. A mapping
*key* spelled ``on``/``off``/``yes``/``no`` stays that string (YAML 1.1 would make it a
boolean, which breaks ``retry: {on: [...]}``); values keep YAML 1.1 meaning.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

from playloop.dsl.errors import Marks, PlaybookError, Pos, Problem, SourceMap
from playloop.dsl.flow import Flow
from playloop.dsl.normalize import normalize

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

__all__ = ["load_file", "load_text", "parse_yaml"]

_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def load_file(path: str | os.PathLike[str]) -> Flow:
    """Load and validate a playbook file; ``OSError`` if it cannot be read."""
    name = os.fspath(path)
    raw = Path(name).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _position(raw[: exc.start].decode("utf-8", "replace"), None)
        problem = Problem(name, line, col, None, None, f"not UTF-8 text: {exc.reason}")
        raise PlaybookError([problem]) from None
    return _load(text, name, name)


def load_text(text: str, filename: str = "<string>") -> Flow:
    """Load and validate playbook text; ``filename`` names it in errors.

    ``Flow.source_file`` is ``filename`` unless it is a pseudo name like ``<string>``.
    """
    return _load(text, filename, None if filename.startswith("<") else filename)


def _load(text: str, filename: str, source_file: str | None) -> Flow:
    source = parse_yaml(text, filename)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return normalize(source, content_hash=digest, source_file=source_file)


def parse_yaml(text: str, filename: str = "<string>") -> SourceMap:
    """Parse one YAML document, keeping where everything is; bad YAML -> ``PlaybookError``."""
    loader = _Loader(text)
    try:
        root = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "cannot parse"
        context = f" ({exc.context})" if exc.problem and exc.context else ""
        raise PlaybookError(
            [Problem(filename, line, col, None, None, f"invalid YAML: {what}{context}")]
        ) from None
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position)
        problem = Problem(filename, line, col, None, None, f"invalid YAML: {exc.reason}")
        raise PlaybookError([problem]) from None
    finally:
        loader.dispose()
    return SourceMap(filename, root, loader.marks, loader.duplicate_keys)


def _position(text: str, index: int | None) -> Pos:
    before = text if index is None else text[:index]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


def _pos(mark: Any) -> Pos:
    return mark.line + 1, mark.column + 1


class _Loader(_SafeLoader):
    """A safe loader that records the marks of every container it builds."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.marks: dict[int, Marks] = {}
        self.duplicate_keys: list[tuple[dict[Any, Any], Any]] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE)
    loader.flatten_mapping(node)
    merged = len(node.value) - own  # flatten_mapping puts merged (<<) pairs first
    data: dict[Any, Any] = {}
    where: dict[Any, tuple[Pos, Pos]] = {}
    own_keys: set[Any] = set()
    for index, (key_node, value_node) in enumerate(node.value):
        key = _construct_key(loader, key_node, node)
        if index >= merged:  # a key of this mapping, not one merged in from an anchor
            if key in own_keys:
                loader.duplicate_keys.append((data, key))
            own_keys.add(key)
        data[key] = loader.construct_object(value_node, deep=True)
        where[key] = (_pos(key_node.start_mark), _pos(value_node.start_mark))
    loader.marks[id(data)] = (_pos(node.start_mark), where)
    return data


def _construct_key(loader: _Loader, key_node: yaml.Node, node: yaml.MappingNode) -> Any:
    if key_node.tag == _BOOL and str(key_node.value).lower() not in ("true", "false"):
        return key_node.value
    key = loader.construct_object(key_node, deep=True)
    try:
        hash(key)
    except TypeError:
        raise yaml.constructor.ConstructorError(
            "while constructing a mapping",
            node.start_mark,
            "found a key that is not a scalar",
            key_node.start_mark,
        ) from None
    return key


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> list[Any]:
    items = [loader.construct_object(child, deep=True) for child in node.value]
    loader.marks[id(items)] = (_pos(node.start_mark), [_pos(c.start_mark) for c in node.value])
    return items


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}
