"""Names a step's templates read, and renaming the steps they read.

The DSL loader checks template syntax, not names: ``{{ summarise.rows }}`` in a step taken
from another playbook would only fail when it runs. The composer uses ``free_names`` to
take only steps whose templates it can satisfy, and ``unknown_references`` to check a whole
draft before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import meta

from playloop.tools import registry

__all__ = ["free_names", "rename_steps", "step_free_names", "unknown_references"]

_ENV = jinja2.Environment(autoescape=False)
_BUILTIN = frozenset(
    {
        "workload",
        "vars",
        "args",
        "execution_id",
        "playbook",
        "iter",
        "loop",
        "now",
        "decision",
        "output",
        "result",
        "error",
        "outcome",
        "attempt",
        "callback_url",
        "current_user",
        "anomaly",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
    }
)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def free_names(value: Any) -> set[str]:
    """Every top-level name the templates in ``value`` read."""
    names: set[str] = set()
    for text in _strings(value):
        try:
            names |= meta.find_undeclared_variables(_ENV.parse(text))
        except jinja2.TemplateSyntaxError:
            continue
    return names


def step_free_names(step: Mapping[str, Any]) -> set[str]:
    """``free_names`` of a step, leaving out its tool's raw (never rendered) fields, such as
    python ``code``."""
    tool = step.get("tool")
    if not isinstance(tool, Mapping):
        return free_names(step)
    try:
        raw = registry.tool_class(str(tool.get("kind"))).raw_fields
    except LookupError:
        raw = frozenset()
    body = {k: v for k, v in step.items() if k != "tool"}
    body["tool"] = {k: v for k, v in tool.items() if k not in raw}
    return free_names(body)


def rename_steps(value: Any, renames: Mapping[str, str]) -> Any:
    """``value`` with ``{{ old.x }}`` read as ``{{ new.x }}`` for each rename."""
    if not renames:
        return value
    if isinstance(value, str):
        if "{{" not in value:
            return value
        return re.sub(r"\{\{.*?\}\}", lambda m: _rename(m.group(0), renames), value, flags=re.S)
    if isinstance(value, dict):
        return {k: rename_steps(v, renames) for k, v in value.items()}
    if isinstance(value, list):
        return [rename_steps(v, renames) for v in value]
    return value


def _rename(expression: str, renames: Mapping[str, str]) -> str:
    for old, new in renames.items():
        expression = re.sub(rf"(?<![\w.]){re.escape(old)}\b", new, expression)
    return expression


def unknown_references(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(step, name)`` for each name a step's templates read that is no step, no tool
    input, no loop iterator and nothing the engine provides."""
    steps = [s for s in document.get("workflow") or [] if isinstance(s, Mapping)]
    step_names = {str(s.get("step")) for s in steps}
    problems: list[tuple[str, str]] = []
    for step in steps:
        raw = step.get("tool")
        tool: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        known = set(_BUILTIN) | step_names | set(tool.get("input") or {})
        loop = step.get("loop")
        if isinstance(loop, Mapping):
            known.add(str(loop.get("iterator", "item")))
        for name in sorted(step_free_names(step) - known):
            problems.append((str(step.get("step")), name))
    return problems
