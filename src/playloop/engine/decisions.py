"""Human decision points inside ``decide``: request, decide, remind, escalate, expire.

An ``approval`` step emits ``decision.requested`` instead of queuing a worker command; its
deadline, reminders and escalation are timer commands. The execution is ``paused`` while
nothing runs but decisions wait, and holds no worker. A person's answer arrives as a
``Decide`` signal; it is checked here (pending, allowed action, allowed person, form
values) and a refusal raises ``DecisionRefused`` before any event is emitted.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from playloop.dsl.durations import parse_duration
from playloop.engine.commands import Command
from playloop.engine.signals import Callback, Decide, Outcome

if TYPE_CHECKING:
    from playloop.engine.decide import _Decider
    from playloop.engine.state import ExecutionState

DECISION_KINDS = frozenset({"approval"})
TIMER_KINDS = ("deadline", "remind", "escalate")
_FORM_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
}


class DecisionRefused(Exception):
    """A decision request that cannot be applied; ``status`` is the HTTP status it maps to."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _seconds(value: Any) -> float | None:
    return None if value in (None, "") else parse_duration(value)


def request_decision(d: _Decider, name: str, config: dict[str, Any], started_seq: int) -> None:
    from playloop.engine.decide import iso

    s = d.state
    decision_id = f"{s.execution_id}-{started_seq}"
    timeout = _seconds(config.get("timeout"))
    deadline = d.now + timeout if timeout else None
    meta = {
        "decision_id": decision_id,
        "prompt": config.get("prompt", "Approve?"),
        "options": list(config.get("options") or ["approve", "reject"]),
        "form": dict(config.get("form") or {}),
        "approvers": list(config.get("approvers") or []),
        "self_approval": bool(config.get("self_approval", True)),
        "on_timeout": config.get("on_timeout", "fail"),
        "timeout_s": timeout,
        "deadline": iso(deadline) if deadline else None,
        "escalate_to": list(config.get("escalate_to") or []),
        "requested_by": s.started_by,
    }
    if config.get("notify"):
        meta["notify"] = config["notify"]
    d.emit("decision.requested", step_name=name, status="waiting", meta=meta)
    if deadline:
        _timer(d, name, "deadline", decision_id, deadline)
    remind = _seconds(config.get("remind_every"))
    if remind:
        _timer(d, name, "remind", decision_id, d.now + remind, every=remind)
    escalate_after = _seconds(config.get("escalate_after"))
    if escalate_after and meta["escalate_to"]:
        _timer(d, name, "escalate", decision_id, d.now + escalate_after)


def _timer(d: _Decider, step: str, kind: str, decision_id: str, when: float, **extra: Any) -> None:
    d.out.commands.append(
        Command(
            execution_id=d.state.execution_id,
            kind=kind,  # type: ignore[arg-type]  # one of TIMER_KINDS
            step=step,
            attempt=d.state.steps[step].attempt,
            payload={"decision": decision_id, **extra},
            not_before=when,
        )
    )


def decide_request(d: _Decider, signal: Decide) -> None:
    request = d.state.decisions.get(signal.decision_id)
    if request is None:
        raise DecisionRefused(404, f"no decision {signal.decision_id}")
    if request["status"] != "pending":
        raise DecisionRefused(409, f"decision {signal.decision_id} is already {request['status']}")
    if signal.action not in request["options"]:
        allowed = ", ".join(request["options"])
        raise DecisionRefused(422, f"action '{signal.action}' is not one of: {allowed}")
    approvers = request.get("approvers") or []
    if approvers and signal.actor not in approvers:
        raise DecisionRefused(
            403, f"'{signal.actor}' is not among the approvers: {', '.join(approvers)}"
        )
    if not request.get("self_approval", True) and signal.actor == request.get("requested_by"):
        raise DecisionRefused(
            403, f"'{signal.actor}' started this execution and may not approve it"
        )
    form = request.get("form") or {}
    values = dict(signal.values)
    for key, value in values.items():
        if form and key not in form:
            raise DecisionRefused(
                422, f"value '{key}' is not a field of the form: {', '.join(form)}"
            )
        kinds = _FORM_TYPES.get(str(form.get(key, "")))
        if kinds and (
            not isinstance(value, kinds) or (bool not in kinds and isinstance(value, bool))
        ):
            raise DecisionRefused(
                422, f"value '{key}' must be a {form[key]}, not {type(value).__name__}"
            )
    make_decision(d, request, signal.action, values, signal.comment, signal.actor)


def make_decision(
    d: _Decider,
    request: dict[str, Any],
    action: str,
    values: dict[str, Any],
    comment: str | None,
    actor: str,
) -> None:
    s = d.state
    if s.status == "paused":
        d.emit("execution.resumed", status="running", actor=actor)
    requested = datetime.fromisoformat(request["requested_at"]).timestamp()
    waited_ms = max(0, int((d.now - requested) * 1000))
    step = str(request["step"])
    d.emit(
        "decision.made",
        step_name=step,
        status="completed",
        actor=actor,
        meta={
            "decision_id": request["decision_id"],
            "action": action,
            "values": values,
            "comment": comment,
            "time_to_decide_ms": waited_ms,
        },
    )
    result = dict(s.last_decision or {})
    d._finish_step(step, result, waited_ms, {})


def decision_timer(d: _Decider, cmd: Command) -> None:
    from playloop.engine.decide import iso

    request = d.state.decisions.get(str(cmd.payload.get("decision")))
    if request is None or request["status"] != "pending":
        return  # decided meanwhile: a stale timer
    step = str(request["step"])
    decision_id = request["decision_id"]
    if cmd.kind == "remind":
        every = float(cmd.payload.get("every") or 0)
        d.emit("decision.reminded", step_name=step, meta={"decision_id": decision_id})
        if every:
            _timer(d, step, "remind", decision_id, d.now + every, every=every)
        return
    if cmd.kind == "escalate" or (
        request["on_timeout"] == "escalate" and not request.get("escalated")
    ):
        approvers = list(
            dict.fromkeys([*request.get("approvers", []), *request.get("escalate_to", [])])
        )
        fields: dict[str, Any] = {"decision_id": decision_id, "approvers": approvers}
        if cmd.kind == "deadline" and request.get("timeout_s"):
            deadline = d.now + float(request["timeout_s"])
            fields["deadline"] = iso(deadline)
            d.emit("decision.escalated", step_name=step, meta=fields)
            _timer(d, step, "deadline", decision_id, deadline)
        else:
            d.emit("decision.escalated", step_name=step, meta=fields)
        return
    # the deadline passed
    on_timeout = request["on_timeout"]
    d.emit(
        "decision.expired",
        step_name=step,
        meta={"decision_id": decision_id, "on_timeout": on_timeout},
    )
    if on_timeout in request["options"] or on_timeout in ("approve", "reject"):
        make_decision(d, request, on_timeout, {}, "the deadline passed", "system:deadline")
        return
    if d.state.status == "paused":
        d.emit("execution.resumed", status="running", actor="system:deadline")
    message = f"decision {decision_id} expired with nobody deciding"
    d.emit(
        "step.failed", step_name=step, status="failed", attempt=d.state.steps[step].attempt,
        error_type="DecisionExpired", error_message=message,
    )  # fmt: skip
    d._fail_execution(step, "DecisionExpired", message)


def refuse_after_end(state: ExecutionState, request_id: str) -> None:
    """A decision or callback for an execution that has ended: 404 or 409, never an event."""
    request = state.decisions.get(request_id)
    if request is None:
        raise DecisionRefused(404, f"no decision {request_id}")
    status = (
        request["status"]
        if request["status"] != "pending"
        else f"closed (the execution {state.status})"
    )
    raise DecisionRefused(409, f"decision {request_id} is already {status}")


def maybe_pause(d: _Decider) -> None:
    """Pause when nothing runs and at least one decision waits."""
    s = d.state
    if s.status != "running" or s.arrivals or not s.active:
        return
    waiting = {str(r["step"]) for r in s.decisions.values() if r["status"] == "pending"}
    if waiting and s.active <= waiting:
        d.emit("execution.paused", status="paused", meta={"waiting_for": sorted(waiting)})


def wait_for_callback(d: _Decider, cmd: Command, o: Outcome) -> None:
    """The request went out: wait (paused, holding nothing) for the service to call back."""
    from playloop.engine.decide import iso

    callback = cmd.payload["callback"]
    response = o.result if isinstance(o.result, dict) else {}
    meta = {
        "decision_id": callback["id"],
        "kind": "callback",
        "prompt": f"waiting for a call to step '{cmd.step}''s callback URL",
        "options": ["callback"],
        "approvers": [],
        "self_approval": True,
        "on_timeout": "fail",
        "deadline": iso(callback["expires"]),
        "response_status": response.get("status_code"),
    }
    d.emit("decision.requested", step_name=cmd.step, status="waiting", meta=meta)
    _timer(d, cmd.step, "deadline", callback["id"], float(callback["expires"]))


def callback_arrived(d: _Decider, signal: Callback) -> None:
    request = d.state.decisions.get(signal.callback_id)
    if request is None or request.get("kind") != "callback":
        raise DecisionRefused(404, f"no callback {signal.callback_id}")
    if request["status"] != "pending":
        raise DecisionRefused(
            409, f"callback {signal.callback_id} was already used ({request['status']})"
        )
    if d.state.status == "paused":
        d.emit("execution.resumed", status="running", actor="callback")
    requested = datetime.fromisoformat(request["requested_at"]).timestamp()
    waited_ms = max(0, int((d.now - requested) * 1000))
    step = str(request["step"])
    d.emit(
        "callback.received", step_name=step, status="completed", result=signal.body,
        meta={"callback_id": signal.callback_id, "waited_ms": waited_ms},
    )  # fmt: skip
    d._finish_step(step, signal.body, waited_ms, {})
