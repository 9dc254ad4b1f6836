"""What is wrong with a playbook, and where: ``file:line:col: step 'x': field 'y': message``.

Every check reports a ``Problem`` through a ``Reporter`` instead of raising, so one load
lists every problem at once. Problems are addressed by a *path* into the parsed document
(``('workflow', 3, 'retry', 'attempts')``), the same shape as a pydantic error location;
the ``SourceMap`` built by the YAML loader turns a path into a line and column.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = [
    "PlaybookError",
    "Pos",
    "Problem",
    "Reporter",
    "SourceMap",
    "did_you_mean",
    "format_path",
]

Pos = tuple[int, int]
"""A 1-based (line, column)."""

Path = tuple[Any, ...]
#: marks of one container: its start, and per key (key position, value position) or per item
Marks = tuple[Pos, dict[Any, tuple[Pos, Pos]] | list[Pos]]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a playbook, at a place in its file."""

    file: str
    line: int
    col: int
    step: str | None
    field: str | None
    message: str

    def __str__(self) -> str:
        step = f"step '{self.step}': " if self.step is not None else ""
        name = f"field '{self.field}': " if self.field else ""
        return f"{self.file}:{self.line}:{self.col}: {step}{name}{self.message}"


class PlaybookError(ValueError):
    """The playbook is not valid; ``problems`` lists every problem found, one per line."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def format_path(parts: Sequence[Any]) -> str:
    """``('next', 0, 'then', 1, 'step')`` -> ``next[0].then[1].step``."""
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class Located(NamedTuple):
    path: Path
    value: Pos
    key: Pos
    skipped: tuple[Any, ...]


@dataclass(slots=True)
class SourceMap:
    """The parsed document and where each of its mapping keys, values and list items start."""

    filename: str
    root: Any
    marks: dict[int, Marks] = field(default_factory=dict)
    #: (mapping, key) for each key given twice in one mapping (its marks are the last one's)
    duplicate_keys: list[tuple[dict[Any, Any], Any]] = field(default_factory=list)
    _paths: dict[int, Path] | None = None

    def locate(self, loc: Sequence[Any], *, missing: bool = False) -> Located:
        """Follow ``loc`` from the root as far as the document goes.

        Parts that name no key or index of the node reached are pydantic union labels
        (``'str'``, ``'<when>'``) and are skipped; with ``missing`` the last part is kept
        (a required key that is absent is reported at its mapping).
        """
        node = self.root
        entry = self.marks.get(id(node))
        value = key = entry[0] if entry else (1, 1)
        path: list[Any] = []
        skipped: list[Any] = []
        for i, part in enumerate(loc):
            entry = self.marks.get(id(node))
            if entry is not None and _has(node, part):
                node = node[part]
                where = entry[1]
                if isinstance(where, dict):
                    key, value = where[part]
                else:
                    key = value = where[part]
                path.append(part)
            elif missing and i == len(loc) - 1:
                path.append(part)
            else:
                skipped.append(part)
        return Located(tuple(path), value, key, tuple(skipped))

    def path_of(self, obj: object) -> Path | None:
        """The path of a container of the document (found by identity)."""
        if self._paths is None:
            paths: dict[int, Path] = {}
            stack: list[tuple[Any, Path]] = [(self.root, ())]
            while stack:
                node, path = stack.pop()
                if id(node) in paths:
                    continue
                paths[id(node)] = path
                if isinstance(node, dict):
                    stack.extend((v, (*path, k)) for k, v in node.items() if _container(v))
                elif isinstance(node, list):
                    stack.extend((v, (*path, i)) for i, v in enumerate(node) if _container(v))
            self._paths = paths
        return self._paths.get(id(obj))


def _container(value: Any) -> bool:
    return isinstance(value, dict | list)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        try:
            return part in node
        except TypeError:
            return False
    if isinstance(node, list):
        return isinstance(part, int) and not isinstance(part, bool) and 0 <= part < len(node)
    return False


class Reporter:
    """Collects problems; ``raise_if_any`` raises them all, sorted by position."""

    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, loc: Sequence[Any], message: str, *, at_key: bool = False) -> None:
        """A problem with the value at ``loc`` (with ``at_key``: with the key itself)."""
        self._add(self.source.locate(loc), message, at_key=at_key)

    def add_missing(self, loc: Sequence[Any], message: str) -> None:
        """A problem with a key that is absent: reported at the mapping that lacks it."""
        self._add(self.source.locate(loc, missing=True), message, at_key=False)

    def add_validation_error(self, exc: ValidationError, prefix: Path = ()) -> None:
        """Every error of a pydantic validation of the value at ``prefix``."""
        by_path: dict[Path, list[tuple[Located, ErrorDetails]]] = {}
        for err in exc.errors(include_url=False):
            located = self.source.locate((*prefix, *err["loc"]), missing=err["type"] == "missing")
            by_path.setdefault(located.path, []).append((located, err))
        for errors in by_path.values():
            located, err = errors[0]
            labels = [loc.skipped[-1] for loc, _ in errors if loc.skipped]
            if len(errors) > 1 and len(labels) == len(errors):
                # one value failing every member of a union: say so once
                expected = ", ".join(str(label) for label in labels)
                message = f"expected one of: {expected} (got {_got(err.get('input'))})"
            else:
                message = _message(err)
            self._add(located, message, at_key=err["type"] == "extra_forbidden")

    def error(self) -> PlaybookError:
        """Every problem so far, once each, in file order."""
        unique = {(p.line, p.col, p.step, p.field, p.message): p for p in self.problems}
        return PlaybookError([unique[k] for k in sorted(unique, key=_sort_key)])

    def raise_if_any(self) -> None:
        if self.problems:
            raise self.error()

    def _add(self, located: Located, message: str, *, at_key: bool) -> None:
        line, col = located.key if at_key else located.value
        step, rel = self._split(located.path)
        self.problems.append(
            Problem(self.source.filename, line, col, step, format_path(rel) or None, message)
        )

    def _split(self, path: Path) -> tuple[str | None, Path]:
        """Name the step a path is inside, and the path relative to that step."""
        if len(path) >= 2 and path[0] == "workflow" and isinstance(path[1], int):
            steps = self.source.root.get("workflow")
            raw = steps[path[1]] if _has(steps, path[1]) else None
            if isinstance(raw, dict) and isinstance(raw.get("step"), str):
                return raw["step"], path[2:]
        return None, path


def _sort_key(key: tuple[int, int, str | None, str | None, str]) -> tuple[int, int, str]:
    return key[0], key[1], key[4]


_QUOTED = re.compile(r"'([^']*)'")


def _message(err: ErrorDetails) -> str:
    """pydantic's message, said the way a playbook author reads it."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return f"unknown key '{err['loc'][-1]}'" if err["loc"] else "unknown key"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"must be a mapping (got {_got(value)})"
    if kind == "list_type":
        return f"must be a list (got {_got(value)})"
    if kind == "too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    if kind == "literal_error" and isinstance(value, str):
        hint = did_you_mean(value, _QUOTED.findall(str(ctx.get("expected", ""))))
        return f"{err['msg']} (got {_got(value)}){hint}"
    if isinstance(value, dict | list):
        return err["msg"]
    return f"{err['msg']} (got {_got(value)})"


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
