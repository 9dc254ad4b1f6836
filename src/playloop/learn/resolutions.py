"""Failures linked to what resolved them, recorded as ``resolution.recorded`` events.

``record_resolutions(engine, execution_id)`` derives the automatic resolutions (retry,
decision, later run: see ``playloop.learn.linking``) of one execution's failures and of
earlier runs of its playbook that it may have fixed, and appends those not yet recorded.
``resolve`` records a note by hand; ``list_failures`` reads failures with their resolutions.

Recording is idempotent: one recorder at a time over every process of a database
(``recorder.exclusive``), each checking what is recorded before appending. Servers and
workers record the executions they end (``recorder.ResolutionRecorder``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from playloop.engine.events import TERMINAL_EXECUTION, Event
from playloop.engine.orchestrator import UnknownExecution
from playloop.learn.linking import (
    AUTO_ACTOR,
    Linked,
    Resolution,
    at,
    failures,
    in_execution,
    is_failure,
    later_run,
    link,
    pending,
    recorded,
    started,
)
from playloop.learn.queries import event_by_id, failure_rows, first_success_after, open_failures
from playloop.learn.recorder import exclusive

if TYPE_CHECKING:
    from playloop.runtime import Engine

__all__ = [
    "AUTO_ACTOR",
    "Linked",
    "NotAFailure",
    "Resolution",
    "UnknownEvent",
    "list_failures",
    "record_resolutions",
    "resolve",
]

#: earlier failures a run looks at (newest first) when it may have fixed them
LOOKBACK = 200
MAX_NOTE = 4_000


class UnknownEvent(LookupError):
    """No event with this id is in the store."""


class NotAFailure(ValueError):
    """The event is not a failure (step.failed, step.timed_out, execution.failed or a failed
    loop item), so there is nothing to resolve."""


def record_resolutions(engine: Engine, execution_id: int) -> list[Event]:
    """Append the resolution events this execution's history implies and that are missing.

    Looks at the execution's own failures (a retry or decision after them; a later run when
    it has ended) and at earlier runs of the same playbook with failures of steps this run
    got through. Returns the events appended (none when all are recorded already).
    """
    _not_on_the_loop(engine)
    with exclusive(engine):
        events = engine.events(execution_id)
        if not events:
            raise UnknownExecution(f"no execution {execution_id}")
        appended = _examine(engine, events)
        for earlier in _maybe_fixed_by(engine, events):
            appended += _examine(engine, engine.events(earlier))
        return appended


def resolve(engine: Engine, event_id: int, note: str, *, actor: str) -> Event:
    """Record by hand what resolved the failure ``event_id`` (in the failure's execution)."""
    text = note.strip()
    if not text:
        raise ValueError("the note is empty: say what resolved the failure")
    if "\x00" in text:
        raise ValueError("the note contains a NUL character")
    if len(text) > MAX_NOTE:
        raise ValueError(f"the note is {len(text)} characters long; at most {MAX_NOTE}")
    failure = event_by_id(engine.store, event_id)
    if failure is None:
        raise UnknownEvent(f"no event {event_id}")
    if not is_failure(failure):
        raise NotAFailure(
            f"event {event_id} is a {failure.event_type} event, not a failure: only "
            "step.failed, step.timed_out, execution.failed and failed loop items are resolved"
        )
    manual = Resolution(failure, "manual", text, actor=actor)
    return engine.record(
        failure.execution_id, "resolution.recorded", actor=actor, meta=manual.meta()
    )


def list_failures(
    engine: Engine,
    *,
    playbook: str | None = None,
    unresolved: bool = False,
    limit: int = 50,
    catch_up: bool = True,
) -> list[Linked]:
    """Failures, newest first, with their resolutions.

    With ``catch_up`` the automatic resolutions of the newest unresolved failures are
    recorded first (history from before anything recorded them is linked too).
    """
    if playbook is not None and "\x00" in playbook:
        return []  # no playbook path holds one (PostgreSQL text cannot)
    if catch_up:
        _not_on_the_loop(engine)
        with exclusive(engine):
            shown = open_failures(engine.store, playbook=playbook, limit=limit)
            for execution_id in dict.fromkeys(f.execution_id for f in shown):
                _examine(engine, engine.events(execution_id))
    return link(failure_rows(engine.store, playbook=playbook, unresolved=unresolved, limit=limit))


# --- the work ---------------------------------------------------------------------------


def _not_on_the_loop(engine: Engine) -> None:
    """Recording waits for the engine's loop thread: called from it (an event listener),
    it would wait for itself forever."""
    if getattr(engine, "_thread", None) is threading.current_thread():
        raise RuntimeError(
            "record resolutions from another thread than the engine's loop "
            "(Engine.subscribe listeners run on it)"
        )


def _append(engine: Engine, resolutions: list[Resolution]) -> list[Event]:
    return [
        engine.record(r.failure.execution_id, "resolution.recorded", actor=r.actor, meta=r.meta())
        for r in resolutions
    ]


def _examine(engine: Engine, events: list[Event]) -> list[Event]:
    """Record what resolved one execution's failures: inside it, then in a later run."""
    appended = _append(engine, pending(in_execution(events), events))
    if not any(e.event_type in TERMINAL_EXECUTION for e in events):
        return appended  # still running: a retry may yet fix it
    if appended:
        events = engine.events(events[0].execution_id)
    for later in _later_runs(engine, events):
        found = pending(later_run(events, later), events)
        if found:
            appended += _append(engine, found)
            events = engine.events(events[0].execution_id)
    return appended


def _open(events: list[Event]) -> list[Event]:
    """Failures nothing in their own execution resolved and no later run is recorded for."""
    fixed = {r.failure.event_id for r in in_execution(events)}
    done = recorded(events)
    return [
        f
        for f in failures(events)
        if f.event_id not in fixed and (f.event_id, "later_run") not in done
    ]


def _later_runs(engine: Engine, events: list[Event]) -> list[list[Event]]:
    """The events of the first later runs that got through the failed steps, oldest first."""
    start = started(events)
    if start is None:
        return []
    last: dict[str | None, Event] = {}
    for failure in _open(events):
        last[failure.step_name] = failure  # the step's latest failure: later runs start after
    found: dict[int, list[Event]] = {}
    for step, failure in last.items():
        success = first_success_after(
            engine.store,
            playbook=start.playbook_path,
            step=step,
            after=failure.created_at,
            not_execution=start.execution_id,
        )
        if success is not None and success.execution_id not in found:
            found[success.execution_id] = engine.events(success.execution_id)
    runs = [run for run in found.values() if started(run) is not None]
    return sorted(runs, key=lambda run: at(run[0]))


def _maybe_fixed_by(engine: Engine, events: list[Event]) -> list[int]:
    """Earlier executions of the playbook with open failures of steps this run finished."""
    start = started(events)
    if start is None:
        return []
    finished = {e.step_name for e in events if e.event_type == "step.finished"}
    if any(e.event_type == "execution.finished" for e in events):
        finished.add(None)
    if not finished:
        return []
    candidates = open_failures(
        engine.store,
        playbook=start.playbook_path,
        before=start.created_at,
        not_execution=start.execution_id,
        limit=LOOKBACK,
    )
    wanted = (f.execution_id for f in candidates if f.step_name in finished)
    return list(dict.fromkeys(wanted))
