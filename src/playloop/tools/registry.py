"""Tool kinds by name, from the ``playloop.tools`` entry point group (built-ins included)."""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points

from playloop.tools.base import Tool

GROUP = "playloop.tools"


class UnknownToolKind(LookupError):
    """No tool of this kind is registered."""

    def __init__(self, kind: str, known: list[str]) -> None:
        hint = difflib.get_close_matches(kind, known, n=1)
        suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
        super().__init__(f"unknown tool kind '{kind}'{suffix}; known: {', '.join(known)}")
        self.kind = kind


class DuplicateToolKind(RuntimeError):
    """Two registered tools claim the same kind."""


@cache
def _tools() -> dict[str, type[Tool]]:
    found: dict[str, type[Tool]] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Tool)):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a playloop Tool class")
        kind = cls.kind or ep.name
        if kind in found and found[kind] is not cls:
            raise DuplicateToolKind(
                f"tool kind '{kind}' registered twice: {found[kind].__module__} and {cls.__module__}"
            )
        found[kind] = cls
    return found


def kinds() -> list[str]:
    return sorted(_tools())


def tool_class(kind: str) -> type[Tool]:
    tools = _tools()
    try:
        return tools[kind]
    except KeyError:
        raise UnknownToolKind(kind, sorted(tools)) from None


@cache
def tool(kind: str) -> Tool:
    """The shared instance of a kind (tools keep no per-run state)."""
    return tool_class(kind)()
