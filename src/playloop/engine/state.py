"""Execution state as a pure fold over the execution's events.

Each event type is applied by one ``_apply_<type>`` handler; an unknown type is an error.
``decide`` advances a state by folding the events it emits, so the state the orchestrator
holds always equals ``fold`` of the stored events (a property the tests check).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from playloop.engine.events import PAYLOADS, Event, UnknownEventType

ACTIVE_STEP = frozenset({"running", "waiting"})


@dataclass(slots=True)
class StepState:
    status: str = "pending"
    attempt: int = 0
    attempts: int = 0
    runs: int = 0
    started_at: str | None = None
    duration_ms: int | None = None
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    #: ``anomaly.detected`` metas of the step's current run (cleared when it runs again)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    # loop steps
    items: list[Any] | None = None
    loop_results: dict[int, Any] = field(default_factory=dict)
    loop_attempt: dict[int, int] = field(default_factory=dict)
    loop_running: set[int] = field(default_factory=set)
    loop_waiting: set[int] = field(default_factory=set)
    loop_next: int = 0


@dataclass(slots=True)
class ExecutionState:
    execution_id: int
    playbook_path: str = ""
    playbook_version: str | None = None
    parent_execution_id: int | None = None
    parent_event_id: int | None = None
    parent: dict[str, Any] | None = None
    status: str = "pending"
    workload: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    entry: str | None = None
    last_seq: int = 0
    event_count: int = 0
    started_at: str | None = None
    ended_at: str | None = None
    result: Any = None
    result_step: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    failed_step: str | None = None
    last_finished: str | None = None
    steps: dict[str, StepState] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    arrivals: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    active: set[str] = field(default_factory=set)
    started_by: str | None = None
    #: decision_id -> the request's meta plus ``status``, ``step``, ``requested_at``
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_decision: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def step(self, name: str) -> StepState:
        found = self.steps.get(name)
        if found is None:
            found = self.steps[name] = StepState()
        return found

    def apply(self, event: Event) -> None:
        """Fold one event into this state."""
        handler = _HANDLERS.get(event.event_type)
        if handler is None:
            if event.event_type in PAYLOADS:
                handler = _apply_recorded
            else:
                raise UnknownEventType(f"cannot fold unknown event type '{event.event_type}'")
        if event.seq != self.last_seq + 1 and self.last_seq:
            raise ValueError(
                f"execution {self.execution_id}: event seq {event.seq} after {self.last_seq}"
            )
        self.last_seq = event.seq
        self.event_count += 1
        handler(self, event)


def fold(events: Iterable[Event], state: ExecutionState | None = None) -> ExecutionState:
    """Build (or advance) an execution's state from its events, in ``seq`` order."""
    for event in events:
        if state is None:
            state = ExecutionState(execution_id=event.execution_id)
        state.apply(event)
    if state is None:
        raise ValueError("no events to fold")
    return state


# --- handlers ----------------------------------------------------------------------------


def _apply_execution_started(s: ExecutionState, e: Event) -> None:
    ctx = e.context or {}
    s.status = "running"
    s.playbook_path = e.playbook_path
    s.playbook_version = e.playbook_version
    s.parent_execution_id = e.parent_execution_id
    s.parent_event_id = e.parent_event_id
    s.parent = (e.meta or {}).get("parent")
    s.workload = dict(ctx.get("workload") or {})
    s.entry = ctx.get("entry")
    s.started_at = e.created_at
    s.started_by = e.actor


def _apply_execution_finished(s: ExecutionState, e: Event) -> None:
    s.status = "completed"
    s.result = e.result
    s.result_step = e.step_name
    s.ended_at = e.created_at


def _apply_execution_failed(s: ExecutionState, e: Event) -> None:
    s.status = "failed"
    s.error_type = e.error_type
    s.error_message = e.error_message
    s.failed_step = e.step_name
    s.ended_at = e.created_at
    s.active.clear()


def _apply_execution_cancelled(s: ExecutionState, e: Event) -> None:
    s.status = "cancelled"
    s.ended_at = e.created_at
    s.active.clear()


def _apply_execution_paused(s: ExecutionState, e: Event) -> None:
    s.status = "paused"


def _apply_execution_resumed(s: ExecutionState, e: Event) -> None:
    s.status = "running"


def _apply_step_started(s: ExecutionState, e: Event) -> None:
    name = e.step_name or ""
    st = s.step(name)
    ctx = e.context if isinstance(e.context, dict) else {}
    attempt = e.attempt or 1
    if attempt == 1:
        st.runs += 1
        st.args = dict(ctx.get("args") or {})
        st.error_type = st.error_message = None
        st.duration_ms = None
        st.anomalies = []
        s.arrivals.pop(name, None)
        if "items" in ctx:
            st.items = list(ctx["items"])
            st.loop_results = {}
            st.loop_attempt = {}
            st.loop_running = set()
            st.loop_waiting = set()
            st.loop_next = 0
        else:
            st.items = None
    st.status = "running"
    st.attempt = attempt
    st.attempts += 1
    st.started_at = e.created_at
    s.active.add(name)


def _apply_step_finished(s: ExecutionState, e: Event) -> None:
    name = e.step_name or ""
    st = s.step(name)
    st.status = "completed"
    st.result = e.result
    st.duration_ms = e.duration_ms
    s.results[name] = e.result
    s.active.discard(name)
    s.last_finished = name
    meta = e.meta or {}
    for target in meta.get("next", ()):
        s.arrivals.setdefault(target["step"], []).append(target.get("args") or {})
    if meta.get("set"):
        s.vars.update(meta["set"])


def _apply_step_failed(s: ExecutionState, e: Event) -> None:
    st = s.step(e.step_name or "")
    if e.iteration is not None and st.items is not None:
        st.loop_running.discard(e.iteration)
    st.status = e.status or "failed"
    st.error_type = e.error_type
    st.error_message = e.error_message
    st.duration_ms = e.duration_ms
    s.active.discard(e.step_name or "")


def _apply_step_retrying(s: ExecutionState, e: Event) -> None:
    name = e.step_name or ""
    st = s.step(name)
    if e.iteration is not None and st.items is not None:
        st.loop_waiting.add(e.iteration)
        st.status = "running"
    else:
        st.status = "waiting"
    s.active.add(name)


def _apply_step_skipped(s: ExecutionState, e: Event) -> None:
    name = e.step_name or ""
    s.step(name).status = "skipped"
    s.arrivals.pop(name, None)
    s.active.discard(name)


def _apply_loop_item(s: ExecutionState, e: Event) -> None:
    st = s.step(e.step_name or "")
    i = e.iteration if e.iteration is not None else -1
    if e.status == "running":
        st.loop_running.add(i)
        st.loop_waiting.discard(i)
        st.loop_attempt[i] = e.attempt or 1
        st.loop_next = max(st.loop_next, i + 1)
    elif e.status == "completed":
        st.loop_running.discard(i)
        st.loop_results[i] = e.result
    else:
        st.loop_running.discard(i)


def _apply_decision_requested(s: ExecutionState, e: Event) -> None:
    meta = dict(e.meta or {})
    meta.update(status="pending", step=e.step_name, requested_at=e.created_at)
    s.decisions[str(meta["decision_id"])] = meta
    st = s.step(e.step_name or "")
    st.status = "waiting"
    s.active.add(e.step_name or "")


def _apply_decision_made(s: ExecutionState, e: Event) -> None:
    meta = e.meta or {}
    request = s.decisions.get(str(meta.get("decision_id")))
    if request is not None:
        request["status"] = "decided"
    s.last_decision = {
        "decision_id": meta.get("decision_id"),
        "action": meta.get("action"),
        "values": meta.get("values") or {},
        "comment": meta.get("comment"),
        "decided_by": e.actor,
        "decided_at": e.created_at,
    }
    s.vars["approval_action"] = meta.get("action")
    s.vars["approval_comment"] = meta.get("comment")


def _apply_callback_received(s: ExecutionState, e: Event) -> None:
    request = s.decisions.get(str((e.meta or {}).get("callback_id")))
    if request is not None:
        request["status"] = "decided"


def _apply_decision_notice(s: ExecutionState, e: Event) -> None:
    meta = e.meta or {}
    request = s.decisions.get(str(meta.get("decision_id")))
    if request is None:
        return
    if e.event_type == "decision.expired":
        request["status"] = "expired"
    elif e.event_type == "decision.escalated":
        request["approvers"] = meta.get("approvers", request.get("approvers"))
        request["deadline"] = meta.get("deadline", request.get("deadline"))
        request["escalated"] = True


def _apply_anomaly_detected(s: ExecutionState, e: Event) -> None:
    s.step(e.step_name or "").anomalies.append(dict(e.meta or {}))


def _apply_recorded(s: ExecutionState, e: Event) -> None:
    """Known event types that do not change execution state (yet)."""


_HANDLERS: dict[str, Callable[[ExecutionState, Event], None]] = {
    "execution.started": _apply_execution_started,
    "execution.finished": _apply_execution_finished,
    "execution.failed": _apply_execution_failed,
    "execution.cancelled": _apply_execution_cancelled,
    "execution.paused": _apply_execution_paused,
    "execution.resumed": _apply_execution_resumed,
    "step.started": _apply_step_started,
    "step.finished": _apply_step_finished,
    "step.failed": _apply_step_failed,
    "step.timed_out": _apply_step_failed,
    "step.retrying": _apply_step_retrying,
    "step.skipped": _apply_step_skipped,
    "loop.item": _apply_loop_item,
    "loop.done": _apply_recorded,
    "decision.requested": _apply_decision_requested,
    "decision.made": _apply_decision_made,
    "decision.expired": _apply_decision_notice,
    "decision.escalated": _apply_decision_notice,
    "decision.reminded": _apply_decision_notice,
    "callback.received": _apply_callback_received,
    "anomaly.detected": _apply_anomaly_detected,
}
