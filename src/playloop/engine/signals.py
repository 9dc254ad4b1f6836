"""What can happen to an execution: the inputs of ``decide``.

Events record what happened; signals are what the shell observed and asks the core to
turn into events: a start, a worker's outcome for a command, a due timer, a cancel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from playloop.engine.commands import Command


@dataclass(frozen=True, slots=True)
class Start:
    """Begin an execution. ``parent`` links a child to the step waiting for it;
    ``parent_execution_id`` alone only records lineage (NoETL's execute request)."""

    workload: Mapping[str, Any] = field(default_factory=dict)
    actor: str | None = None
    parent: Mapping[str, Any] | None = None
    parent_execution_id: int | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """A worker's report on a ``run`` command."""

    command: Command
    ok: bool
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    retry_after: float | None = None
    timed_out: bool = False
    duration_ms: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    #: the worker that ran the command; recorded as the ``actor`` of the events it causes
    actor: str | None = None
    #: anomalies the shell's advisor found in this outcome (``events.Anomaly`` dicts):
    #: data, so ``decide`` stays pure and a replay decides the same
    anomalies: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class TimerFired:
    command: Command


@dataclass(frozen=True, slots=True)
class Cancel:
    actor: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """Append one event that changes no step: feedback, a resolution, a note. Allowed on
    executions that have ended (feedback arrives days later)."""

    event_type: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decide:
    """A person's answer to a pending decision (``decision_id`` = "<execution>-<seq>")."""

    decision_id: str
    action: str
    actor: str
    values: Mapping[str, Any] = field(default_factory=dict)
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Callback:
    """An external service called a waiting step's callback URL (already verified)."""

    callback_id: str
    body: Any = None


Signal = Start | Outcome | TimerFired | Cancel | Record | Decide | Callback
