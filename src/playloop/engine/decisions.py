"""Human decision points inside ``decide``: request, decide, remind, escalate, expire.

An ``approval`` step emits ``decision.requested`` instead of queuing a worker command; its
deadline, reminders and escalation are timer commands. The execution is ``paused`` while
nothing runs but decisions wait, and holds no worker. A person's answer arrives as a
``Decide`` signal; it is checked here (pending, allowed action, allowed person, form
values) and a refusal raises ``DecisionRefused`` before any event is emitted.

With ``notify`` the request is also a ``notify`` command: a worker POSTs it, with the
decision's signed ``callback_url``, to a service and reports back (``decision.notified``,
or ``decision.notify_failed`` and another attempt after a backoff); the pause never waits
for it. A call to that URL is a decision like ``POST /api/decisions/{id}``, checked alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from playloop.decisions.callbacks import PLACEHOLDER as CALLBACK_PLACEHOLDER
from playloop.dsl.durations import parse_duration
from playloop.dsl.render import TemplateError, render
from playloop.engine.commands import Command
from playloop.engine.signals import Callback, Decide, Outcome
from playloop.tools.approval import NotifyConfig

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
#: seconds before the second notify attempt; doubled each time, at most NOTIFY_MAX_DELAY
NOTIFY_BACKOFF = 2.0
NOTIFY_MAX_DELAY = 300.0
#: what a decision's callback body may hold
_CALLBACK_KEYS = frozenset({"action", "values", "comment", "decided_by"})


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
    notify = _notify_request(d, name, meta, timeout)
    if notify is None and d.state.status != "running":
        return  # the notify template failed the step
    if notify is not None:
        meta["notify"] = {"url": notify["notify"]["url"], "method": notify["notify"]["method"]}
        meta["callback_expires"] = iso(notify["callback"]["expires"])
    d.emit("decision.requested", step_name=name, status="waiting", meta=meta)
    if notify is not None:
        _notify_command(d, name, notify, attempt=1, when=None)
    if deadline:
        _timer(d, name, "deadline", decision_id, deadline)
    remind = _seconds(config.get("remind_every"))
    if remind:
        _timer(d, name, "remind", decision_id, d.now + remind, every=remind)
    escalate_after = _seconds(config.get("escalate_after"))
    if escalate_after and meta["escalate_to"]:
        _timer(d, name, "escalate", decision_id, d.now + escalate_after)


def _notify_request(
    d: _Decider, name: str, meta: dict[str, Any], timeout: float | None
) -> dict[str, Any] | None:
    """The ``notify`` command's payload, rendered; None without ``notify`` (or when its
    template fails, which fails the step)."""
    raw = d.flow.steps[name].tool.config.get("notify")
    if not raw:
        return None
    s = d.state
    on_timeout = meta["on_timeout"]
    request = {
        "decision_id": meta["decision_id"],
        "execution_id": str(s.execution_id),
        "playbook_path": s.playbook_path or d.flow.path,
        "step": name,
        "prompt": meta["prompt"],
        "options": meta["options"],
        "form": meta["form"],
        "approvers": meta["approvers"],
        "deadline": meta["deadline"],
        "callback_url": CALLBACK_PLACEHOLDER,  # the worker puts the signed URL in
    }
    ctx = {**d.context(s.steps[name].args), **request, "request": request}
    try:
        rendered = render(raw, ctx, step=name)
        config = NotifyConfig.model_validate(rendered)
        # the URL must outlive the decision: its deadline (twice, when it may escalate)
        valid = (
            timeout * (2 if on_timeout == "escalate" else 1)
            if timeout
            else parse_duration(config.callback_expires)
        )
    except (TemplateError, ValidationError, ValueError) as exc:
        templated = isinstance(exc, TemplateError)
        message = str(exc) if templated else f"step '{name}': notify: {exc}"
        error_type = "TemplateError" if templated else "ConfigError"
        d.emit(
            "step.failed", step_name=name, status="failed", attempt=s.steps[name].attempt,
            error_type=error_type, error_message=message,
        )  # fmt: skip
        d._fail_execution(name, error_type, message)
        return None
    notify = config.model_dump()
    notify["method"] = config.method.upper()
    if notify["body"] is None:
        notify["body"] = request
    return {
        "notify": notify,
        "decision": meta["decision_id"],
        "callback": {"id": meta["decision_id"], "expires": d.now + valid},
    }


def _notify_command(
    d: _Decider, step: str, payload: dict[str, Any], *, attempt: int, when: float | None
) -> None:
    d.out.commands.append(
        Command(
            execution_id=d.state.execution_id,
            kind="notify",
            step=step,
            attempt=attempt,
            payload=payload,
            not_before=when,
            pool=d.flow.steps[step].pool,
        )
    )


def notify_outcome(d: _Decider, cmd: Command, o: Outcome) -> None:
    """A worker's report on a ``notify`` command: record it; retry a failure with backoff."""
    from playloop.engine.decide import iso

    decision_id = str(cmd.payload.get("decision"))
    request = d.state.decisions.get(decision_id)
    if request is None:
        return
    step = str(request["step"])
    notify = cmd.payload.get("notify") or {}
    meta: dict[str, Any] = {"decision_id": decision_id, "attempt": cmd.attempt}
    meta["url"] = notify.get("url")
    if o.ok:
        result = o.result if isinstance(o.result, dict) else {}
        meta["status_code"] = result.get("status_code")
        d.emit(
            "decision.notified", step_name=step, attempt=cmd.attempt, duration_ms=o.duration_ms,
            meta=meta,
        )  # fmt: skip
        return
    attempts = int(notify.get("attempts") or 1)
    again = request["status"] == "pending" and cmd.attempt < attempts
    delay = 0.0
    if again:
        delay = min(NOTIFY_MAX_DELAY, NOTIFY_BACKOFF * 2 ** (cmd.attempt - 1))
        if o.retry_after is not None:
            delay = min(NOTIFY_MAX_DELAY, max(delay, o.retry_after))
        meta["retry_in"] = delay
        meta["not_before"] = iso(d.now + delay)
    else:
        meta["gave_up"] = request["status"] == "pending"
    d.emit(
        "decision.notify_failed", step_name=step, attempt=cmd.attempt, error_type=o.error_type,
        error_message=o.error_message, duration_ms=o.duration_ms, meta=meta,
    )  # fmt: skip
    if again:
        _notify_command(d, step, dict(cmd.payload), attempt=cmd.attempt + 1, when=d.now + delay)


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


def decide_request(d: _Decider, signal: Decide, *, via: str | None = None) -> None:
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
    make_decision(d, request, signal.action, values, signal.comment, signal.actor, via=via)


def make_decision(
    d: _Decider,
    request: dict[str, Any],
    action: str,
    values: dict[str, Any],
    comment: str | None,
    actor: str,
    *,
    via: str | None = None,
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
            **({"via": via} if via else {}),
        },
    )
    d.out.decided_steps.append(step)  # before _finish_step: the step may ask again
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


def _callback_decision(d: _Decider, signal: Callback) -> None:
    """A service called a decision's callback URL: its body is a decision, checked like one."""
    body = signal.body
    if not isinstance(body, dict):
        raise DecisionRefused(
            422,
            "a decision callback's body is a JSON object: {action, values, comment, decided_by}",
        )
    unknown = sorted(set(body) - _CALLBACK_KEYS)
    if unknown:
        raise DecisionRefused(
            422, f"unknown field(s) {', '.join(unknown)}: a decision callback holds "
            "action, values, comment and decided_by",
        )  # fmt: skip
    action, values = body.get("action"), body.get("values") or {}
    comment, actor = body.get("comment"), body.get("decided_by")
    if not isinstance(action, str) or not action:
        raise DecisionRefused(422, "'action' is required: one of the request's options")
    if not isinstance(actor, str) or not actor.strip() or len(actor) > 200 or "\x00" in actor:
        raise DecisionRefused(422, "'decided_by' is required: who decided (a user name)")
    if not isinstance(values, dict):
        raise DecisionRefused(422, "'values' must be an object of the form's values")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 10_000):
        raise DecisionRefused(422, "'comment' must be text (at most 10,000 characters)")
    d.actor = actor
    decide_request(d, Decide(signal.callback_id, action, actor, values, comment), via="callback")


def callback_arrived(d: _Decider, signal: Callback) -> None:
    request = d.state.decisions.get(signal.callback_id)
    if request is not None and request.get("kind") != "callback":
        _callback_decision(d, signal)
        return
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
