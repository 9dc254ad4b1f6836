"""Which event resolved a failure: pure functions over lists of events.

A failure is a ``step.failed``, ``step.timed_out`` or ``execution.failed`` event, or a loop
item that failed or timed out (a loop's attempts fail item by item, so a flaky item that
succeeds on retry is a failure with a ``retry`` resolution too). What resolved it:

- ``retry``: a later attempt of the same step (and loop item) that succeeded, same execution;
- ``decision``: a person's ``decision.made`` after it, same execution (when it came before any
  successful retry: a decision after the step had already recovered fixed nothing);
- ``later_run``: the first later execution of the same playbook in which the step finished,
  with what changed between the two runs (workload keys, playbook version);
- ``manual``: a note recorded by hand.

Resolutions are recorded as ``resolution.recorded`` events in the failure's execution, so
they are data like any other event; ``meta.failure`` names the failure (ids as strings:
JSON readers lose digits of 64-bit numbers), ``meta.resolved_by`` the event that fixed it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from playloop.engine.events import Event

Kind = Literal["retry", "decision", "later_run", "manual"]
KINDS: tuple[Kind, ...] = ("retry", "decision", "later_run", "manual")
#: the kinds ``record_resolutions`` derives; each is recorded at most once per failure
AUTOMATIC: frozenset[str] = frozenset({"retry", "decision", "later_run"})
FAILURE_TYPES = frozenset({"step.failed", "step.timed_out", "execution.failed"})
#: the actor of resolutions derived from events (a decision's is the person who decided)
AUTO_ACTOR = "playloop"


def is_failure(event: Event) -> bool:
    if event.event_type in FAILURE_TYPES:
        return True
    return event.event_type == "loop.item" and event.status in ("failed", "timed_out")


def failures(events: Iterable[Event]) -> list[Event]:
    return [e for e in events if is_failure(e)]


def ref(event: Event) -> dict[str, Any]:
    """How a resolution names an event."""
    return {
        "execution_id": str(event.execution_id),
        "seq": event.seq,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "step_name": event.step_name,
    }


def failure_ref(event: Event) -> dict[str, Any]:
    return {
        **ref(event),
        "iteration": event.iteration,
        "attempt": event.attempt,
        "error_type": event.error_type,
    }


def as_int(value: Any) -> int | None:
    """An id read back from JSON: a number or a string of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class Resolution:
    """What resolved ``failure``; ``meta()`` is the ``resolution.recorded`` event's meta."""

    failure: Event
    kind: Kind
    note: str
    by: Event | None = None
    actor: str = AUTO_ACTOR
    changed: Mapping[str, Any] | None = None

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "failure": failure_ref(self.failure),
            "kind": self.kind,
            "note": self.note,
        }
        if self.by is not None:
            meta["resolved_by"] = ref(self.by)
        if self.changed is not None:
            meta["changed"] = dict(self.changed)
        return meta


def resolved_key(event: Event) -> tuple[int, str] | None:
    """``(failure event_id, kind)`` of a ``resolution.recorded`` event; None for others."""
    if event.event_type != "resolution.recorded" or not isinstance(event.meta, dict):
        return None
    failure = event.meta.get("failure")
    event_id = as_int(failure.get("event_id")) if isinstance(failure, dict) else None
    kind = event.meta.get("kind")
    if event_id is None or not isinstance(kind, str):
        return None
    return event_id, kind


def recorded(events: Iterable[Event]) -> set[tuple[int, str]]:
    """The ``(failure event_id, kind)`` pairs already recorded among these events."""
    return {key for e in events if (key := resolved_key(e)) is not None}


def pending(resolutions: Iterable[Resolution], events: Iterable[Event]) -> list[Resolution]:
    """The resolutions not yet recorded in ``events`` (and no pair twice)."""
    seen = recorded(events)
    out = []
    for r in resolutions:
        key = (r.failure.event_id, r.kind)
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


# --- within one execution -----------------------------------------------------------------


def _clean_success(event: Event) -> bool:
    """Finished by succeeding, not by a policy's ``continue`` or ``jump`` over an error."""
    return not (event.meta or {}).get("via")


def _retried(event: Event, failure: Event) -> bool:
    """``event`` is a later attempt of the failed step (or loop item) that succeeded."""
    if event.seq <= failure.seq or event.step_name != failure.step_name:
        return False
    if (event.attempt or 0) <= (failure.attempt or 0):
        return False  # same attempt: a policy carried on past the error
    if event.event_type == "step.finished":
        return _clean_success(event)
    return (
        event.event_type == "loop.item"
        and event.status == "completed"
        and failure.iteration is not None
        and event.iteration == failure.iteration
    )


def _where(failure: Event) -> str:
    step = f"step '{failure.step_name}'"
    return step if failure.iteration is None else f"{step} item {failure.iteration}"


def _retry(failure: Event, success: Event) -> Resolution:
    note = f"attempt {success.attempt} of {_where(failure)} succeeded"
    return Resolution(failure, "retry", note, by=success)


def _decision(failure: Event, decision: Event) -> Resolution:
    meta = decision.meta or {}
    who = decision.actor or "someone"
    note = f"{meta.get('action') or 'decided'} by {who}"
    if meta.get("comment"):
        note += f": {meta['comment']}"
    return Resolution(failure, "decision", note, by=decision, actor=decision.actor or AUTO_ACTOR)


def in_execution(events: Sequence[Event]) -> list[Resolution]:
    """Retry and decision resolutions of an execution's failures, from its own events."""
    out: list[Resolution] = []
    for failure in failures(events):
        later = [e for e in events if e.seq > failure.seq]
        success = next((e for e in later if _retried(e, failure)), None)
        decision = next((e for e in later if e.event_type == "decision.made"), None)
        if decision is not None and (success is None or decision.seq < success.seq):
            out.append(_decision(failure, decision))
        if success is not None:
            out.append(_retry(failure, success))
    return out


# --- across executions --------------------------------------------------------------------


def started(events: Iterable[Event]) -> Event | None:
    return next((e for e in events if e.event_type == "execution.started"), None)


def at(event: Event) -> datetime:
    """When an event was created (stores give ISO text; offsets may differ by backend)."""
    return datetime.fromisoformat(event.created_at)


def workload_of(start: Event) -> dict[str, Any]:
    context = start.context if isinstance(start.context, dict) else {}
    workload = context.get("workload")
    return dict(workload) if isinstance(workload, dict) else {}


def workload_diff(
    before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = ""
) -> dict[str, dict[str, Any]]:
    """Changed keys by dotted path: ``{"a.b": {"before": 1, "after": 2}}``; a key only one
    side has lacks the other side's entry."""
    diff: dict[str, dict[str, Any]] = {}
    for key in sorted(set(before) | set(after), key=str):
        path = f"{prefix}{key}"
        if key not in after:
            diff[path] = {"before": before[key]}
        elif key not in before:
            diff[path] = {"after": after[key]}
        elif isinstance(before[key], Mapping) and isinstance(after[key], Mapping):
            diff.update(workload_diff(before[key], after[key], f"{path}."))
        elif before[key] != after[key] or type(before[key]) is not type(after[key]):
            diff[path] = {"before": before[key], "after": after[key]}
    return diff


def changes(first: Event, then: Event) -> dict[str, Any]:
    """What differs between two runs' ``execution.started`` events."""
    changed: dict[str, Any] = {}
    diff = workload_diff(workload_of(first), workload_of(then))
    if diff:
        changed["workload"] = diff
    if first.playbook_version != then.playbook_version:
        changed["playbook_version"] = {
            "before": first.playbook_version,
            "after": then.playbook_version,
        }
    return changed


def describe(changed: Mapping[str, Any]) -> str:
    parts = []
    for path, side in (changed.get("workload") or {}).items():
        parts.append(
            f"workload {path}: {side.get('before', '(unset)')} -> {side.get('after', '(unset)')}"
        )
    version = changed.get("playbook_version")
    if version:
        parts.append(f"playbook version {version['before']} -> {version['after']}")
    return "; ".join(parts) if parts else "nothing changed"


def _success_in(events: Sequence[Event], step: str | None) -> Event | None:
    if step is None:
        return next((e for e in events if e.event_type == "execution.finished"), None)
    return next(
        (
            e
            for e in events
            if e.event_type == "step.finished" and e.step_name == step and _clean_success(e)
        ),
        None,
    )


def later_run(failed: Sequence[Event], later: Sequence[Event]) -> list[Resolution]:
    """Failures of one execution that a later run of the same playbook got past.

    Only failures nothing resolved within their own execution count, and only when the later
    run started after the failure; ``changed`` says what differed between the runs.
    """
    first, then = started(failed), started(later)
    if first is None or then is None or first.execution_id == then.execution_id:
        return []
    if first.playbook_path != then.playbook_path or at(then) <= at(first):
        return []
    fixed_inside = {r.failure.event_id for r in in_execution(failed)}
    changed = changes(first, then)
    out = []
    for failure in failures(failed):
        if failure.event_id in fixed_inside or at(failure) >= at(then):
            continue
        success = _success_in(later, failure.step_name)
        if success is None:
            continue
        what = f"step '{failure.step_name}'" if failure.step_name else "the playbook"
        note = f"{what} succeeded in execution {then.execution_id} ({describe(changed)})"
        out.append(Resolution(failure, "later_run", note, by=success, changed=changed))
    return out


# --- reading recorded resolutions ---------------------------------------------------------


@dataclass(slots=True)
class Linked:
    """A failure and the resolution events recorded for it (oldest first)."""

    failure: Event
    resolutions: list[Event]

    @property
    def resolved(self) -> bool:
        return bool(self.resolutions)

    def to_dict(self) -> dict[str, Any]:
        """The shape ``playloop failures --json`` prints and ``GET /api/failures`` returns."""
        f = self.failure
        return {
            "event_id": str(f.event_id),
            "execution_id": str(f.execution_id),
            "seq": f.seq,
            "playbook_path": f.playbook_path,
            "playbook_version": f.playbook_version,
            "event_type": f.event_type,
            "step_name": f.step_name,
            "iteration": f.iteration,
            "attempt": f.attempt,
            "error_type": f.error_type,
            "error_message": f.error_message,
            "created_at": f.created_at,
            "resolved": self.resolved,
            "resolutions": [_resolution_dict(r) for r in self.resolutions],
        }


def _resolution_dict(event: Event) -> dict[str, Any]:
    meta = event.meta or {}
    return {
        "event_id": str(event.event_id),
        "kind": meta.get("kind"),
        "note": meta.get("note"),
        "actor": event.actor,
        "created_at": event.created_at,
        "resolved_by": meta.get("resolved_by"),
        "changed": meta.get("changed"),
    }


def link(pairs: Iterable[tuple[Event, Event | None]]) -> list[Linked]:
    """Group (failure, resolution or None) rows by failure, keeping their order.

    An automatic kind counts once per failure (the first recorded): two processes that
    recorded the same resolution at the same moment still show it once.
    """
    out: dict[int, Linked] = {}
    seen: set[tuple[int, str]] = set()
    for failure, resolution in pairs:
        entry = out.get(failure.event_id)
        if entry is None:
            entry = out[failure.event_id] = Linked(failure, [])
        if resolution is None:
            continue
        key = resolved_key(resolution)
        if key is not None and key[1] in AUTOMATIC:
            if key in seen:
                continue
            seen.add(key)
        entry.resolutions.append(resolution)
    return list(out.values())
