"""The learning layer's reads: named queries of ``store/sql/<dialect>/queries_learn.sql``.

They run through the store's ``_fetch`` primitive (``playloop.store.generic.fetch``), so
the learning layer adds no method to the store classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from playloop.engine.events import Event
from playloop.store.base import EventStore
from playloop.store.generic import fetch
from playloop.store.sqlstore import SqlStore

_COLUMNS = 20  # an event row: see SqlStore.event_row


def _sql(store: EventStore) -> SqlStore:
    if not isinstance(store, SqlStore):
        raise TypeError(f"{type(store).__name__} is not a SQL store")
    return store


def _events(store: EventStore, name: str, params: Mapping[str, Any]) -> list[Event]:
    sql = _sql(store)
    return [sql.event_from_row(r) for r in fetch(sql, name, params)]


def event_by_id(store: EventStore, event_id: int) -> Event | None:
    found = _events(store, "event_by_id", {"event_id": event_id})
    return found[0] if found else None


def failure_rows(
    store: EventStore, *, playbook: str | None, unresolved: bool, limit: int
) -> list[tuple[Event, Event | None]]:
    """The newest ``limit`` failures, each with its resolution events (one row per pair)."""
    sql = _sql(store)
    params = {"playbook": playbook, "unresolved": unresolved, "limit": limit}
    out: list[tuple[Event, Event | None]] = []
    for row in fetch(sql, "learn_failures", params):
        failure = sql.event_from_row(row[:_COLUMNS])
        resolution = sql.event_from_row(row[_COLUMNS:]) if row[_COLUMNS] is not None else None
        out.append((failure, resolution))
    return out


def open_failures(
    store: EventStore,
    *,
    playbook: str | None = None,
    before: str | None = None,
    not_execution: int | None = None,
    limit: int = 200,
) -> list[Event]:
    """Failures with no automatic resolution recorded yet, newest first."""
    params = {
        "playbook": playbook,
        "before": before,
        "execution_id": not_execution,
        "limit": limit,
    }
    return _events(store, "learn_open_failures", params)


def first_success_after(
    store: EventStore, *, playbook: str, step: str | None, after: str, not_execution: int
) -> Event | None:
    """The first ``step.finished`` of ``step`` (``execution.finished`` when None) in a run of
    ``playbook`` started after ``after``, other than ``not_execution``."""
    params = {
        "playbook": playbook,
        "event_type": "step.finished" if step is not None else "execution.finished",
        "step": step,
        "after": after,
        "execution_id": not_execution,
    }
    found = _events(store, "learn_first_success_after", params)
    return found[0] if found else None
