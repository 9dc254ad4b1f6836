"""Repair a composed draft from the loader's problems, field by field.

A problem names a step and a field. A step taken from the catalog is replaced by its
pattern-library fallback; otherwise the named field is dropped when the step can live
without it (``retry``, ``timeout``, ``loop``, a tool option), and a ``next`` arc to an
unknown step is removed. Anything else cannot be repaired: the draft is rejected.
"""

from __future__ import annotations

import copy
from typing import Any

from playloop.dsl.errors import Problem

__all__ = ["repair"]

#: fields a step keeps working without (dropping one loses a nicety, not the step)
_OPTIONAL = ("retry", "timeout", "loop", "desc", "description", "args", "pool")
#: tool fields that are needed: never dropped
_ESSENTIAL = ("kind", "code", "url", "cmds", "database", "command", "query", "path", "prompt")


def repair(
    document: dict[str, Any], problems: list[Problem], fallbacks: dict[str, dict[str, Any]]
) -> list[str] | None:
    """Fix ``document`` in place; the list of what was done, or None if a problem cannot
    be fixed."""
    steps = {s.get("step"): s for s in document.get("workflow") or [] if isinstance(s, dict)}
    done: list[str] = []
    for problem in problems:
        step = steps.get(problem.step) if problem.step else None
        if step is None:
            return None
        name = str(problem.step)
        if name in fallbacks:
            arcs = step.get("next")
            step.clear()
            step.update(copy.deepcopy(fallbacks.pop(name)))
            if arcs is not None:
                step["next"] = arcs
            done.append(
                f"step '{name}': replaced the catalog step by a pattern ({problem.message})"
            )
            continue
        fixed = _drop_field(step, problem.field or "")
        if fixed is None:
            return None
        done.append(f"step '{name}': {fixed} ({problem.message})")
    return done


def _drop_field(step: dict[str, Any], field: str) -> str | None:
    head = field.split(".", 1)[0].split("[", 1)[0]
    if head in _OPTIONAL and head in step:
        del step[head]
        return f"dropped '{head}'"
    if head == "tool" and field.count(".") == 1:
        key = field.split(".", 1)[1]
        tool = step.get("tool")
        if isinstance(tool, dict) and key in tool and key not in _ESSENTIAL:
            del tool[key]
            return f"dropped 'tool.{key}'"
    if head == "next" and field.startswith("next[") and isinstance(step.get("next"), list):
        index = int(field[5 : field.index("]")])
        if index < len(step["next"]):
            del step["next"][index]
            if not step["next"]:
                del step["next"]
            return f"dropped the arc {field}"
    return None
