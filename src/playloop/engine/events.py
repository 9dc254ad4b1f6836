"""Event types, their envelope and one payload model per type.

An ``Event`` is one row of ``noetl.event``. Each ``event_type`` has exactly one payload model
naming the envelope fields that type must carry; ``validate`` rejects unknown types and
missing fields at append time, and ``state.fold`` rejects unknown types when folding.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict


class UnknownEventType(ValueError):
    """The event type is not one playloop knows."""


class InvalidEvent(ValueError):
    """The event lacks a field its type requires."""


@dataclass(slots=True)
class Event:
    execution_id: int
    seq: int
    event_type: str
    playbook_path: str = ""
    playbook_version: str | None = None
    event_id: int = 0
    parent_execution_id: int | None = None
    parent_event_id: int | None = None
    step_name: str | None = None
    status: str | None = None
    attempt: int | None = None
    iteration: int | None = None
    duration_ms: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    context: Any = None
    result: Any = None
    meta: dict[str, Any] | None = None
    actor: str | None = None
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["event_id"] = str(self.event_id)
        data["execution_id"] = str(self.execution_id)
        if self.parent_execution_id is not None:
            data["parent_execution_id"] = str(self.parent_execution_id)
        if self.parent_event_id is not None:
            data["parent_event_id"] = str(self.parent_event_id)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        values = dict(data)
        for key in ("event_id", "execution_id", "parent_execution_id", "parent_event_id"):
            if values.get(key) is not None:
                values[key] = int(values[key])
        return cls(**values)


# --- payload models: one per event type -------------------------------------------------


class Payload(BaseModel):
    """The envelope fields an event type carries; ``required`` must be non-null."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    required: ClassVar[tuple[str, ...]] = ()
    status: str | None = None
    meta: dict[str, Any] | None = None


class ExecutionStarted(Payload):
    required = ("status",)
    context: dict[str, Any] | None = None  # {"workload": ..., "entry": ...}


class ExecutionFinished(Payload):
    required = ("status",)
    step_name: str | None = None
    result: Any = None


class ExecutionFailed(Payload):
    required = ("status", "error_message")
    step_name: str | None = None
    error_type: str | None = None
    error_message: str | None = None


class ExecutionCancelled(Payload):
    required = ("status",)
    actor: str | None = None


class ExecutionPaused(Payload):
    required = ("status",)


class ExecutionResumed(Payload):
    required = ("status",)


class StepStarted(Payload):
    required = ("step_name", "status")
    attempt: int | None = None
    iteration: int | None = None
    context: Any = None


class StepFinished(Payload):
    required = ("step_name", "status")
    result: Any = None
    duration_ms: int | None = None


class StepFailed(Payload):
    required = ("step_name", "status", "error_type")
    attempt: int | None = None
    iteration: int | None = None
    error_type: str | None = None
    error_message: str | None = None
    duration_ms: int | None = None


class StepTimedOut(StepFailed):
    pass


class StepRetrying(Payload):
    required = ("step_name", "attempt")
    attempt: int | None = None
    iteration: int | None = None


class StepSkipped(Payload):
    required = ("step_name",)


class LoopItem(Payload):
    required = ("step_name", "iteration", "status")
    iteration: int | None = None
    result: Any = None


class LoopDone(Payload):
    required = ("step_name",)


class DecisionRequested(Payload):
    """A person is asked: ``meta`` = {decision_id, prompt, options, approvers, deadline, ...}."""

    required = ("step_name", "meta")
    step_name: str | None = None


class DecisionMade(Payload):
    """Who decided what: ``meta`` = {decision_id, action, values, comment, time_to_decide_ms}."""

    required = ("step_name", "actor", "meta")
    step_name: str | None = None
    actor: str | None = None


class DecisionNotice(Payload):
    """A reminder, an escalation or an expiry of a pending decision (``meta.decision_id``)."""

    required = ("step_name", "meta")
    step_name: str | None = None


class DecisionNotified(Payload):
    """A worker sent a decision request to its ``notify`` URL (``decision.notified``), or
    failed to (``decision.notify_failed``: ``error_type``, ``error_message``, and
    ``meta.retry_in`` or ``meta.gave_up``); ``meta`` = {decision_id, attempt, url, ...}."""

    required = ("step_name", "meta")
    step_name: str | None = None
    attempt: int | None = None


class CallbackReceived(Payload):
    """An external service called a step's callback URL; ``result`` is the body."""

    required = ("step_name", "meta")
    step_name: str | None = None
    result: Any = None


class FeedbackReceived(Payload):
    """A downstream outcome: ``meta`` = {label, score, metrics, comment}, any time later."""

    required = ("meta",)
    actor: str | None = None
    step_name: str | None = None


class ResolutionRecorded(Payload):
    """What fixed a failure: ``meta`` = {failure: {execution_id, seq, event_id}, kind, note}."""

    required = ("meta",)
    actor: str | None = None


class AnomalyBaseline(BaseModel):
    """The baseline an anomaly was judged against: a robust centre, spread and sample size.

    For a duration or a result field: the median and the scaled MAD (1.4826 x the median
    absolute deviation, a robust standard deviation) of ``n`` past values. For a failure
    rate: the long-run failure rate, the binomial standard deviation of a window's rate at
    that rate, and the ``n`` attempts before the window.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    median: float
    mad: float
    n: int


class Anomaly(BaseModel):
    """What ``anomaly.detected`` says (its ``meta``): a step's outcome outside its baseline.

    ``score`` is a robust z-score (duration, result_drift) or ``-log10`` of the binomial
    tail probability of the window's failures (failure_rate); the anomaly holds when it
    exceeds ``threshold``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["duration", "failure_rate", "result_drift"]
    step: str
    metric: str
    value: float
    baseline: AnomalyBaseline
    score: float
    threshold: float
    evidence: dict[str, Any] = {}


class AnomalyDetected(Payload):
    """A step's duration, failure rate or a numeric result field left its baseline:
    ``meta`` is an ``Anomaly``; ``attempt`` the attempt judged."""

    required = ("step_name", "meta")
    step_name: str | None = None
    attempt: int | None = None
    meta: Anomaly | None = None  # type: ignore[assignment]


PAYLOADS: dict[str, type[Payload]] = {
    "execution.started": ExecutionStarted,
    "execution.finished": ExecutionFinished,
    "execution.failed": ExecutionFailed,
    "execution.cancelled": ExecutionCancelled,
    "execution.paused": ExecutionPaused,
    "execution.resumed": ExecutionResumed,
    "step.started": StepStarted,
    "step.finished": StepFinished,
    "step.failed": StepFailed,
    "step.retrying": StepRetrying,
    "step.skipped": StepSkipped,
    "step.timed_out": StepTimedOut,
    "loop.item": LoopItem,
    "loop.done": LoopDone,
    "decision.requested": DecisionRequested,
    "decision.reminded": DecisionNotice,
    "decision.escalated": DecisionNotice,
    "decision.made": DecisionMade,
    "decision.expired": DecisionNotice,
    "decision.notified": DecisionNotified,
    "decision.notify_failed": DecisionNotified,
    "callback.received": CallbackReceived,
    "feedback.received": FeedbackReceived,
    "anomaly.detected": AnomalyDetected,
    "resolution.recorded": ResolutionRecorded,
}

TERMINAL_EXECUTION = frozenset({"execution.finished", "execution.failed", "execution.cancelled"})


def validate(event: Event) -> None:
    """Reject unknown types and events missing a field their type requires (fast path)."""
    model = PAYLOADS.get(event.event_type)
    if model is None:
        raise UnknownEventType(f"unknown event type '{event.event_type}'")
    for name in model.required:
        if getattr(event, name) is None:
            raise InvalidEvent(f"{event.event_type} event lacks '{name}'")


def payload(event: Event) -> Payload:
    """The typed payload of an event (validated)."""
    validate(event)
    model = PAYLOADS[event.event_type]
    return model.model_validate({name: getattr(event, name) for name in model.model_fields})


# --- identifiers and clocks --------------------------------------------------------------

_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass
class _IdGenerator:
    """64-bit time-ordered ids: 41 bits of ms since 2024, 10 bits of node, 12 bits sequence."""

    node: int = field(default_factory=lambda: (os.getpid() ^ int.from_bytes(os.urandom(2))) & 0x3FF)
    last_ms: int = 0
    counter: int = 0
    adopted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self) -> int:
        with self.lock:
            now = int(time.time() * 1000) - _EPOCH_MS
            if now <= self.last_ms:
                self.counter += 1
                if self.counter >= 4096:
                    self.last_ms += 1
                    self.counter = 0
                now = self.last_ms
            else:
                self.last_ms = now
                self.counter = 0
            return (now << 22) | (self.node << 12) | self.counter

    def adopt(self, node: int) -> bool:
        """Use ``node`` (taken from the store, unique among the processes that share it)
        instead of the random one; only the first adoption counts. True if adopted."""
        with self.lock:
            if self.adopted:
                return False
            self.node = node & 0x3FF
            self.adopted = True
            return True


_ids = _IdGenerator()


def new_id() -> int:
    return _ids.next()


def adopt_node(node: int) -> bool:
    """Make this process's ids with the node number its store handed out.

    A random node (the fallback) lets two of six processes share one about once in seventy
    starts, and two such processes make the same id in the same millisecond. The first
    store a process opens decides: a process that opens several databases keeps its first
    node (ids need to be unique only within one database).
    """
    return _ids.adopt(node)


def node_adopted() -> bool:
    return _ids.adopted


def id_at(ts: float) -> int:
    """The least event id made at or after the time ``ts`` (seconds since the epoch)."""
    return max(0, int(ts * 1000) - _EPOCH_MS) << 22


def utcnow() -> str:
    """Timestamps are ISO-8601 UTC with microseconds: they sort as text in SQLite."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
