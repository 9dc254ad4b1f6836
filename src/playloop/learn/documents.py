"""What the vector index holds: the text embedded and the payload kept for each point.

Pure functions from events and catalog entries to ``Doc(id, text, payload)``; the indexer
(``playloop.learn.indexer``) feeds them to the vector layer. Point ids are deterministic, so
indexing the same event twice overwrites one point:

- ``failures``: one point per failure event (a step that failed or timed out, a failed loop
  item, an ``execution.failed`` with no step), id = the event id. Text: the error type and
  message, the step, its tool and the key context (HTTP method and host, the SQL verb, ...).
- ``playbooks``: one point per catalog path (its latest version), id = a hash of the path.
  Text: name, path, description, step names with their tools and descriptions.
- ``decisions``: one point per ``decision.made``, id = the event id. Text: the prompt, the
  action and the comment.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from playloop.engine.events import Event

__all__ = [
    "DECISIONS",
    "FAILURES",
    "PLAYBOOKS",
    "Doc",
    "decision_doc",
    "failure_doc",
    "failure_query",
    "failure_text",
    "indexed_failure",
    "outline",
    "playbook_doc",
    "playbook_point_id",
    "resolution_summary",
]

FAILURES = "failures"
PLAYBOOKS = "playbooks"
DECISIONS = "decisions"

#: embedded text is cut here (the model reads 256 tokens; error messages can be huge)
MAX_TEXT = 2_000
#: a failure's message kept in the payload (what `similar` shows)
MAX_ERROR = 1_000
_ID_MASK = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Doc:
    id: int
    text: str
    payload: dict[str, Any] = field(default_factory=dict)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def indexed_failure(event: Event) -> bool:
    """A failure the index holds: a step's (or loop item's) failure or timeout, and an
    execution's failure only when no step failed (a step's failure already says it)."""
    if event.event_type in ("step.failed", "step.timed_out"):
        return True
    if event.event_type == "loop.item":
        return event.status in ("failed", "timed_out")
    return event.event_type == "execution.failed" and not event.step_name


def _context_hints(context: Any) -> list[str]:
    """Short, meaningful bits of a step's rendered context: a URL's method and host, a
    command's first word, a table name. Never whole values (they may be big or private)."""
    if not isinstance(context, Mapping):
        return []
    hints: list[str] = []
    config = context.get("config") if isinstance(context.get("config"), Mapping) else context
    assert isinstance(config, Mapping)
    for key in ("method", "url", "endpoint", "host", "table", "database", "path"):
        value = config.get(key)
        if isinstance(value, str) and value:
            if key == "url":
                value = re.sub(r"[?#].*$", "", value)  # no query strings (tokens live there)
            hints.append(f"{key} {_clip(value, 120)}")
    for key in ("command", "query", "sql"):
        value = config.get(key)
        if isinstance(value, str) and value.strip():
            hints.append(f"{key} {value.strip().split()[0]}")
    return hints


def failure_text(
    *,
    error_type: str | None,
    message: str,
    step: str | None,
    tool: str | None,
    error_class: str | None = None,
    details: Mapping[str, Any] | None = None,
    context: Any = None,
) -> str:
    """The text embedded for a failure (and asked with, when a step fails): the error,
    where it happened and the key context, ``" | "``-separated."""
    parts = [f"{error_type or 'Error'}: {message.strip()}"]
    if step:
        parts.append(f"step {step}")
    if tool:
        parts.append(f"tool {tool}")
    if error_class:
        parts.append(f"class {error_class}")
    for key in ("status_code", "errno", "sqlstate"):
        if details and details.get(key) is not None:
            parts.append(f"{key} {details[key]}")
    parts.extend(_context_hints(context))
    return _clip(" | ".join(parts), MAX_TEXT)


def failure_query(
    *,
    error_type: str | None,
    message: str,
    step: str | None,
    tool: str | None,
    config: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> str:
    """The text to look for when a step fails (the shape ``failure_doc`` indexes)."""
    return failure_text(
        error_type=error_type,
        message=message,
        step=step,
        tool=tool,
        details=details,
        context={"config": dict(config)} if config else None,
    )


def failure_doc(event: Event, *, tool: str | None = None, resolutions: Sequence[Event] = ()) -> Doc:
    """The ``failures`` point of a failure event, with its resolutions in the payload."""
    message = (event.error_message or "").strip()
    meta = event.meta or {}
    details = meta.get("details") if isinstance(meta.get("details"), Mapping) else None
    error_class = meta.get("error_class") if isinstance(meta.get("error_class"), str) else None
    text = failure_text(
        error_type=event.error_type or event.event_type,
        message=message,
        step=event.step_name,
        tool=tool,
        error_class=error_class,
        details=details,
        context=event.context,
    )
    payload: dict[str, Any] = {
        "playbook": event.playbook_path,
        "playbook_version": event.playbook_version,
        "step": event.step_name,
        "tool": tool,
        "execution_id": str(event.execution_id),
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "error_type": event.error_type,
        "error": _clip(message, MAX_ERROR),
        "status": event.status,
        "attempt": event.attempt,
        "iteration": event.iteration,
        "created_at": event.created_at,
        "resolution": resolution_summary(resolutions),
        "resolved": bool(resolutions),
    }
    if error_class:
        payload["error_class"] = error_class
    return Doc(event.event_id, text, payload)


def resolution_summary(resolutions: Sequence[Event]) -> list[dict[str, Any]]:
    """The resolutions a failure point carries: kind, note, who, when (oldest first)."""
    out = []
    for r in resolutions:
        meta = r.meta or {}
        out.append(
            {
                "kind": meta.get("kind"),
                "note": meta.get("note"),
                "actor": r.actor,
                "event_id": str(r.event_id),
                "created_at": r.created_at,
            }
        )
    return out


def playbook_point_id(path: str) -> int:
    """A catalog path's point id: 63 bits of its sha256 (stable across processes)."""
    digest = hashlib.sha256(path.encode()).digest()
    return int.from_bytes(digest[:8], "big") & _ID_MASK or 1


def playbook_doc(
    *,
    path: str,
    version: int,
    content: str,
    source_file: str | None = None,
    created_at: str | None = None,
) -> Doc:
    """The ``playbooks`` point of a catalog entry: what it does, in words and steps."""
    name, description, steps = outline(content)
    lines = [f"{name or path} ({path})"]
    if description:
        lines.append(description)
    for step_name, kind, step_description in steps:
        line = f"step {step_name}: {kind}"
        if step_description:
            line += f" - {step_description}"
        lines.append(line)
    payload = {
        "path": path,
        "name": name or path,
        "version": version,
        "description": _clip(description, MAX_ERROR),
        "steps": [s[0] for s in steps],
        "tools": sorted({s[1] for s in steps if s[1]}),
        "source_file": source_file,
        "created_at": created_at,
    }
    return Doc(playbook_point_id(path), _clip("\n".join(lines), MAX_TEXT), payload)


def outline(content: str) -> tuple[str, str, list[tuple[str, str, str]]]:
    """(name, description, [(step, tool kind, description)]) of a playbook's YAML, read
    leniently: a catalog entry was valid when registered, but this must never fail."""
    import yaml

    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError:
        return "", "", []
    if not isinstance(doc, Mapping):
        return "", "", []
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    name = str(metadata.get("name") or "")
    description = str(metadata.get("description") or doc.get("description") or "")
    steps: list[tuple[str, str, str]] = []
    workflow = doc.get("workflow")
    if isinstance(workflow, Sequence) and not isinstance(workflow, str):
        for step in workflow:
            if not isinstance(step, Mapping) or not step.get("step"):
                continue
            tool = step.get("tool")
            kind = ""
            if isinstance(tool, Mapping):
                kind = str(tool.get("kind") or "")
            elif isinstance(tool, str):
                kind = tool
            steps.append(
                (str(step["step"]), kind, str(step.get("desc") or step.get("description") or ""))
            )
    return name, description.strip(), steps


def decision_doc(event: Event, *, prompt: str | None) -> Doc:
    """The ``decisions`` point of a ``decision.made`` event."""
    meta = event.meta or {}
    action = str(meta.get("action") or "")
    comment = str(meta.get("comment") or "")
    parts = []
    if prompt:
        parts.append(prompt)
    parts.append(f"decision: {action}")
    if comment:
        parts.append(f"comment: {comment}")
    if event.step_name:
        parts.append(f"step {event.step_name}")
    payload = {
        "playbook": event.playbook_path,
        "step": event.step_name,
        "execution_id": str(event.execution_id),
        "event_id": str(event.event_id),
        "decision_id": meta.get("decision_id"),
        "prompt": _clip(prompt or "", MAX_ERROR),
        "action": action,
        "comment": _clip(comment, MAX_ERROR),
        "actor": event.actor,
        "created_at": event.created_at,
    }
    return Doc(event.event_id, _clip(" | ".join(parts), MAX_TEXT), payload)
