"""The pure core: given a flow, a state and a signal, decide the next events and commands.

``decide`` does no I/O. It advances ``state`` by folding every event it emits (so the
caller's state stays equal to ``fold`` of the stored events) and returns the new events
and commands for the shell to append and enqueue in one transaction. Time comes in as
an argument and retry jitter is seeded from the attempt's identity, so a replay of the
same history and signal yields the same events.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from playloop.decisions.callbacks import PLACEHOLDER as CALLBACK_PLACEHOLDER
from playloop.dsl.durations import parse_duration
from playloop.dsl.flow import Arc, Flow, FlowStep, PolicyRule, RetryPolicy
from playloop.dsl.render import TemplateError, render, truthy
from playloop.engine.commands import Command
from playloop.engine.decisions import (
    DECISION_KINDS,
    TIMER_KINDS,
    callback_arrived,
    decide_request,
    decision_timer,
    maybe_pause,
    notify_outcome,
    refuse_after_end,
    request_decision,
    wait_for_callback,
)
from playloop.engine.events import Event
from playloop.engine.signals import (
    Callback,
    Cancel,
    Decide,
    Outcome,
    Record,
    Signal,
    Start,
    TimerFired,
)
from playloop.engine.state import ExecutionState
from playloop.learn import retry as learned_retry
from playloop.learn.errors import classify
from playloop.learn.snapshot import EMPTY, Snapshot
from playloop.learn.timeouts import choose_timeout
from playloop.secrets.redact import REDACTOR
from playloop.tools.registry import tool_class
from playloop.workload import deep_merge


@dataclass(slots=True)
class Decision:
    events: list[Event] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    #: the execution ended: every command it still has queued is to be dropped
    drop_commands: bool = False
    #: steps decided: their request's timers and notify retries still queued are to go
    decided_steps: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Verdict:
    action: str  # ok | retry | fail | continue | jump
    delay: float = 0.0
    to: str | None = None
    reason: str = ""
    #: a learned choice's evidence (``learn.retry``), recorded in the events
    evidence: Mapping[str, Any] | None = None


_SCRUBBED = ("context", "result", "error_message", "meta")


def decide(
    flow: Flow,
    state: ExecutionState,
    signal: Signal,
    now: float,
    stats: Snapshot | None = None,
) -> Decision:
    """``stats``: the statistics learned policies read (``retry: auto``, ``timeout: auto``);
    None: none yet (their defaults apply). Read only, like ``now`` an input."""
    return _Decider(flow, state, now, stats or EMPTY).run(signal)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")


class _Decider:
    def __init__(self, flow: Flow, state: ExecutionState, now: float, stats: Snapshot) -> None:
        self.flow = flow
        self.state = state
        self.now = now
        self.stats = stats
        self.created_at = iso(now)
        self.out = Decision()
        self.actor: str | None = None

    # --- entry -------------------------------------------------------------------------

    def run(self, signal: Signal) -> Decision:
        s = self.state
        if isinstance(signal, Record):
            self.emit(signal.event_type, **dict(signal.fields))
            return self.out
        if isinstance(signal, Decide | Callback) and s.terminal:
            refuse_after_end(
                s, signal.decision_id if isinstance(signal, Decide) else signal.callback_id
            )
        if isinstance(signal, Start):
            self._start(signal)
        elif s.terminal:
            return self.out
        elif isinstance(signal, Outcome):
            self.actor = signal.actor
            self._outcome(signal)
        elif isinstance(signal, TimerFired):
            self._timer(signal.command)
        elif isinstance(signal, Decide):
            self.actor = signal.actor
            decide_request(self, signal)
        elif isinstance(signal, Callback):
            callback_arrived(self, signal)
        elif isinstance(signal, Cancel):
            self.emit(
                "execution.cancelled",
                status="cancelled",
                actor=signal.actor,
                meta={"reason": signal.reason} if signal.reason else None,
            )
            self.out.drop_commands = True
            return self.out
        if s.status == "running":
            self._settle()
        return self.out

    def emit(self, event_type: str, **fields: Any) -> Event:
        s = self.state
        fields.setdefault("playbook_path", s.playbook_path or self.flow.path)
        fields.setdefault("playbook_version", s.playbook_version or self.flow.version)
        fields.setdefault("parent_execution_id", s.parent_execution_id)
        if self.actor is not None:
            fields.setdefault("actor", self.actor)
        for key in _SCRUBBED:  # secrets never reach the event log (nor this state)
            if fields.get(key) is not None:
                fields[key] = REDACTOR.redact(fields[key])
        event = Event(
            execution_id=s.execution_id,
            seq=s.last_seq + 1,
            event_type=event_type,
            created_at=self.created_at,
            **fields,
        )
        s.apply(event)
        self.out.events.append(event)
        return event

    # --- signals -----------------------------------------------------------------------

    def _start(self, signal: Start) -> None:
        s = self.state
        workload = deep_merge(self.flow.workload, signal.workload)
        parent = dict(signal.parent) if signal.parent else None
        self.emit(
            "execution.started",
            status="running",
            playbook_path=self.flow.path,
            playbook_version=self.flow.version,
            parent_execution_id=(parent or {}).get("execution_id", signal.parent_execution_id),
            parent_event_id=(parent or {}).get("event_id"),
            actor=signal.actor,
            context={"workload": workload, "entry": self.flow.entry},
            meta={"parent": parent} if parent else None,
        )
        s.arrivals.setdefault(self.flow.entry, []).append({})

    def _outcome(self, o: Outcome) -> None:
        cmd = o.command
        if cmd.kind == "notify":
            notify_outcome(self, cmd, o)
            return
        st = self.state.steps.get(cmd.step)
        if st is None:
            return
        if cmd.iteration is None:
            if st.status != "running" or st.attempt != cmd.attempt or st.items is not None:
                return  # stale: a late report for an attempt that is over
            self._step_outcome(cmd, o)
        else:
            if cmd.iteration not in st.loop_running:
                return
            if st.loop_attempt.get(cmd.iteration) != cmd.attempt:
                return
            self._iteration_outcome(cmd, o)

    def _timer(self, cmd: Command) -> None:
        if cmd.kind in TIMER_KINDS:
            decision_timer(self, cmd)
            return
        st = self.state.steps.get(cmd.step)
        if st is None:
            return
        if cmd.iteration is None:
            if st.status == "waiting" and cmd.attempt == st.attempt + 1:
                self._dispatch(cmd.step, cmd.attempt, None)
        elif cmd.iteration in st.loop_waiting:
            self._dispatch(cmd.step, cmd.attempt, cmd.iteration)

    # --- steps -------------------------------------------------------------------------

    def context(self, args: Mapping[str, Any]) -> dict[str, Any]:
        s = self.state
        ctx: dict[str, Any] = dict(s.results)
        ctx["workload"] = s.workload
        ctx["vars"] = s.vars
        ctx["args"] = args
        ctx["execution_id"] = str(s.execution_id)
        ctx["decision"] = s.last_decision
        ctx["current_user"] = (s.last_decision or {}).get("decided_by") or s.started_by
        ctx["playbook"] = {
            "path": s.playbook_path,
            "name": self.flow.name,
            "version": s.playbook_version,
        }
        return ctx

    def _loop_context(self, name: str, iteration: int) -> dict[str, Any]:
        step = self.flow.steps[name]
        st = self.state.steps[name]
        items = st.items or []
        ctx = self.context(st.args)
        item = items[iteration]
        iterator = step.loop.iterator if step.loop else "item"
        ctx[iterator] = item
        ctx["iter"] = {iterator: item, "item": item, "index": iteration}
        ctx["loop"] = {
            "index": iteration + 1,
            "index0": iteration,
            "length": len(items),
            "first": iteration == 0,
            "last": iteration == len(items) - 1,
        }
        return ctx

    def _start_step(self, name: str, args: dict[str, Any]) -> None:
        step = self.flow.steps[name]
        if step.args:
            try:
                args = {**render(dict(step.args), self.context(args), step=name), **args}
            except TemplateError as exc:
                self._fail_before_run(name, "TemplateError", str(exc), args)
                return
        if step.loop is None:
            self._dispatch(name, 1, None, args=args)
            return
        try:
            items = render(step.loop.items, self.context(args), step=name)
        except TemplateError as exc:
            self._fail_before_run(name, "TemplateError", str(exc), args)
            return
        if not isinstance(items, list | tuple):
            self._fail_before_run(
                name,
                "LoopError",
                f"step '{name}': loop 'in' rendered to {type(items).__name__}, not a list",
                args,
            )
            return
        self.emit(
            "step.started",
            step_name=name,
            status="running",
            attempt=1,
            context={"args": args, "items": list(items)},
            meta={"loop": len(items)},
        )
        if not items:
            self.emit("loop.done", step_name=name, meta={"count": 0})
            self._finish_step(name, [], 0, {})
        else:
            self._fill_loop(name)

    def _fill_loop(self, name: str) -> None:
        step = self.flow.steps[name]
        st = self.state.steps[name]
        items = st.items or []
        assert step.loop is not None
        limit = 1 if step.loop.mode == "sequential" else (step.loop.max_in_flight or len(items))
        while (
            st.status == "running"
            and len(st.loop_running) + len(st.loop_waiting) < limit
            and st.loop_next < len(items)
        ):
            self._dispatch(name, 1, st.loop_next)

    def _dispatch(
        self, name: str, attempt: int, iteration: int | None, args: dict[str, Any] | None = None
    ) -> None:
        """Render the step's tool call and queue it (one attempt of a step or iteration)."""
        step = self.flow.steps[name]
        st = self.state.steps.get(name)
        if args is None:
            args = st.args if st else {}
        ctx = self.context(args) if iteration is None else self._loop_context(name, iteration)
        waits = step.tool.config.get("wait") == "callback"
        if waits:
            ctx["callback_url"] = CALLBACK_PLACEHOLDER  # the worker puts the signed URL in
        raw = tool_class(step.tool.kind).raw_fields
        try:
            inputs = render(dict(step.tool.input), ctx, step=name)
            if inputs and any(k not in raw for k in step.tool.config):
                ctx = {**ctx, **inputs}  # a tool's config may use its own input bindings
            public = {
                k: render(v, ctx, step=name) for k, v in step.tool.config.items() if k not in raw
            }
        except TemplateError as exc:
            if iteration is None and attempt == 1:
                self._fail_before_run(name, "TemplateError", str(exc), args)
            else:
                self.emit(
                    "step.failed",
                    step_name=name,
                    status="failed",
                    attempt=attempt,
                    iteration=iteration,
                    error_type="TemplateError",
                    error_message=str(exc),
                )
                self._fail_execution(name, "TemplateError", str(exc))
            return
        context: dict[str, Any] = {}
        if inputs:
            context["input"] = inputs
        if public:
            context["config"] = public
        timeout = step.timeout
        learned: dict[str, Any] | None = None
        if step.timeout_auto is not None:
            timeout, evidence = choose_timeout(
                self.stats, playbook=self._playbook(), step=name, bounds=step.timeout_auto
            )
            learned = {"timeout": evidence}
        if iteration is None:
            if attempt == 1:
                context["args"] = args
            event = self.emit(
                "step.started",
                step_name=name,
                status="running",
                attempt=attempt,
                context=context or None,
                meta=learned,
            )
        else:
            event = self.emit(
                "loop.item",
                step_name=name,
                status="running",
                attempt=attempt,
                iteration=iteration,
                context=context or None,
                meta=learned,
            )
        if step.tool.kind in DECISION_KINDS and iteration is None:
            request_decision(self, name, public, event.seq)
            return
        config = dict(public)
        for key in raw:
            if key in step.tool.config:
                config[key] = step.tool.config[key]
        self.out.commands.append(
            Command(
                execution_id=self.state.execution_id,
                kind="run",
                step=name,
                attempt=attempt,
                iteration=iteration,
                payload={
                    "tool": step.tool.kind,
                    "config": config,
                    "input": inputs,
                    "timeout": timeout,
                    **(self._callback(event.seq, public) if waits else {}),
                },
                pool=step.pool,
                started_event_id=event.seq,
            )
        )

    def _callback(self, seq: int, config: Mapping[str, Any]) -> dict[str, Any]:
        wait = config.get("wait_timeout") or "24h"
        return {
            "callback": {
                "id": f"{self.state.execution_id}-{seq}",
                "expires": self.now + parse_duration(wait),
            }
        }

    def _fail_before_run(
        self, name: str, error_type: str, message: str, args: dict[str, Any]
    ) -> None:
        self.emit(
            "step.started", step_name=name, status="running", attempt=1, context={"args": args}
        )
        self.emit(
            "step.failed",
            step_name=name,
            status="failed",
            attempt=1,
            error_type=error_type,
            error_message=message,
        )
        self._fail_execution(name, error_type, message)

    def _fail_execution(self, name: str, error_type: str | None, message: str | None) -> None:
        self.emit(
            "execution.failed",
            status="failed",
            step_name=name,
            error_type=error_type,
            error_message=message or error_type or "failed",
        )
        self.out.drop_commands = True

    # --- outcomes ----------------------------------------------------------------------

    def _policy_context(self, name: str, iteration: int | None, o: Outcome) -> dict[str, Any]:
        st = self.state.steps[name]
        ctx = self.context(st.args) if iteration is None else self._loop_context(name, iteration)
        error = (
            None
            if o.ok
            else {
                "type": o.error_type,
                "message": o.error_message,
                "retry_after": o.retry_after,
                "timed_out": o.timed_out,
            }
        )
        ctx["output"] = o.result
        ctx["result"] = o.result
        ctx["error"] = error
        ctx["outcome"] = {"status": "ok" if o.ok else "error", "result": o.result, "error": error}
        ctx["attempt"] = o.command.attempt
        return ctx

    def _verdict(self, step: FlowStep, o: Outcome, ctx: dict[str, Any]) -> _Verdict:
        attempt = o.command.attempt
        for rule in step.rules:
            matched = (not o.ok) if rule.when is None else truthy(rule.when, ctx, step=step.name)
            if not matched:
                continue
            if rule.do == "retry":
                limit = rule.attempts if rule.attempts is not None else 3
                if rule.mode == "learned" and not o.ok:
                    return self._learned(step, o, limit, rule.delay or 1.0, rule.max_delay)
                if attempt < limit:
                    return _Verdict("retry", self._delay(rule, o, attempt), reason="policy")
                return _Verdict("ok" if o.ok else "fail", reason="policy attempts exhausted")
            if rule.do == "jump":
                return _Verdict("jump", to=rule.to, reason="policy")
            return _Verdict(rule.do, reason="policy")
        if o.ok:
            return _Verdict("ok")
        retry = step.retry
        if retry and retry.auto:
            return self._learned(step, o, retry.attempts, retry.delay, retry.max_delay)
        if retry and attempt < retry.attempts and _matches(retry.on, o.error_type or ""):
            return _Verdict("retry", self._delay(retry, o, attempt), reason="retry")
        return _Verdict("fail")

    def _playbook(self) -> str:
        return self.state.playbook_path or self.flow.path

    def _learned(
        self,
        step: FlowStep,
        o: Outcome,
        max_attempts: int,
        first_delay: float,
        max_delay: float | None,
    ) -> _Verdict:
        choice = learned_retry.choose(
            self.stats,
            playbook=self._playbook(),
            step=step.name,
            error_class=_error_class(o),
            attempt=o.command.attempt,
            max_attempts=max_attempts,
            first_delay=first_delay,
            max_delay=max_delay,
            retry_after=o.retry_after,
        )
        if choice.retry:
            return _Verdict("retry", choice.delay, reason="learned", evidence=choice.evidence)
        reason = str(choice.evidence.get("reason") or "learned: no retry")
        return _Verdict("fail", reason=reason, evidence=choice.evidence)

    def _failure_meta(self, o: Outcome, verdict: _Verdict) -> dict[str, Any]:
        """A failure event's meta: what the worker reported, the error class, and the
        evidence of a learned choice not to retry."""
        meta = dict(o.meta)
        meta["error_class"] = _error_class(o)
        if verdict.evidence is not None and verdict.action != "retry":
            meta["evidence"] = dict(verdict.evidence)
        return meta

    def _delay(self, policy: RetryPolicy | PolicyRule, o: Outcome, attempt: int) -> float:
        delay = policy.delay
        if policy.backoff == "linear":
            delay = policy.delay * attempt
        elif policy.backoff == "exponential":
            delay = policy.delay * (2 ** (attempt - 1))
        if policy.jitter:
            seed = zlib.crc32(f"{o.command.key}".encode())
            r = random.Random(seed).random()
            delay *= 1 - policy.jitter + 2 * policy.jitter * r
        if policy.max_delay is not None:
            delay = min(delay, policy.max_delay)
        if o.retry_after is not None:
            delay = max(delay, o.retry_after)
        return max(delay, 0.0)

    def _step_outcome(self, cmd: Command, o: Outcome) -> None:
        name = cmd.step
        if o.ok and cmd.payload.get("callback"):
            wait_for_callback(self, cmd, o)
            return
        step = self.flow.steps[name]
        try:
            verdict = self._verdict(step, o, self._policy_context(name, None, o))
        except TemplateError as exc:
            verdict = _Verdict("fail", reason=str(exc))
        if not o.ok:
            self.emit(
                "step.timed_out" if o.timed_out else "step.failed",
                step_name=name,
                status="timed_out" if o.timed_out else "failed",
                attempt=cmd.attempt,
                error_type=o.error_type,
                error_message=o.error_message,
                duration_ms=o.duration_ms,
                meta=self._failure_meta(o, verdict),
            )
            self._anomalies(name, cmd.attempt, o)
        if verdict.action == "retry":
            self._retry(name, cmd.attempt + 1, None, verdict, o)
        elif verdict.action == "fail":
            if o.ok:
                message = verdict.reason or "policy rule decided to fail"
                self.emit(
                    "step.failed",
                    step_name=name,
                    status="failed",
                    attempt=cmd.attempt,
                    error_type="PolicyFailed",
                    error_message=message,
                    duration_ms=o.duration_ms,
                )
                self._fail_execution(name, "PolicyFailed", message)
            else:
                self._fail_execution(name, o.error_type, o.error_message)
        else:
            result = (
                o.result if o.ok else {"error": {"type": o.error_type, "message": o.error_message}}
            )
            extra = dict(o.meta)
            if verdict.action != "ok":
                extra["via"] = verdict.action
            if o.ok:
                self._anomalies(name, cmd.attempt, o)
            self._finish_step(name, result, o.duration_ms, extra, jump_to=verdict.to)

    def _anomalies(self, name: str, attempt: int, o: Outcome) -> None:
        """Record what the shell's advisor found in this outcome (``Outcome.anomalies``)."""
        for found in o.anomalies:
            self.emit("anomaly.detected", step_name=name, attempt=attempt, meta=dict(found))

    def _iteration_outcome(self, cmd: Command, o: Outcome) -> None:
        name = cmd.step
        i = cmd.iteration
        assert i is not None
        step = self.flow.steps[name]
        try:
            verdict = self._verdict(step, o, self._policy_context(name, i, o))
        except TemplateError as exc:
            verdict = _Verdict("fail", reason=str(exc))
        if o.ok and verdict.action in ("ok", "continue", "jump"):
            self._iteration_done(name, i, o.result, o.duration_ms)
            return
        if not o.ok:
            self.emit(
                "loop.item",
                step_name=name,
                status="timed_out" if o.timed_out else "failed",
                attempt=cmd.attempt,
                iteration=i,
                error_type=o.error_type,
                error_message=o.error_message,
                duration_ms=o.duration_ms,
                meta=self._failure_meta(o, verdict),
            )
        if verdict.action == "retry":
            self._retry(name, cmd.attempt + 1, i, verdict, o)
        elif verdict.action in ("continue", "jump"):
            self._iteration_done(
                name,
                i,
                {"error": {"type": o.error_type, "message": o.error_message}},
                o.duration_ms,
            )
        else:
            error_type = o.error_type if not o.ok else "PolicyFailed"
            message = (
                o.error_message if not o.ok else (verdict.reason or "policy rule decided to fail")
            )
            self.emit(
                "step.failed",
                step_name=name,
                status="timed_out" if o.timed_out else "failed",
                attempt=cmd.attempt,
                iteration=i,
                error_type=error_type,
                error_message=message,
                meta=self._failure_meta(o, verdict) if not o.ok else None,
            )
            self._fail_execution(name, error_type, message)

    def _iteration_done(self, name: str, i: int, result: Any, duration_ms: int | None) -> None:
        self.emit(
            "loop.item",
            step_name=name,
            status="completed",
            iteration=i,
            result=result,
            attempt=self.state.steps[name].loop_attempt.get(i, 1),
            duration_ms=duration_ms,
        )
        st = self.state.steps[name]
        items = st.items or []
        if len(st.loop_results) == len(items):
            self.emit("loop.done", step_name=name, meta={"count": len(items)})
            results = [st.loop_results[k] for k in range(len(items))]
            self._finish_step(name, results, self._elapsed_ms(st.started_at), {})
        else:
            self._fill_loop(name)

    def _elapsed_ms(self, started_at: str | None) -> int | None:
        if not started_at:
            return None
        return max(0, int((self.now - datetime.fromisoformat(started_at).timestamp()) * 1000))

    def _retry(
        self, name: str, attempt: int, iteration: int | None, v: _Verdict, o: Outcome
    ) -> None:
        meta: dict[str, Any] = {"delay": round(v.delay, 3), "reason": v.reason}
        if o.error_type:
            meta["error_type"] = o.error_type
        if o.retry_after is not None:
            meta["retry_after"] = o.retry_after
        if v.delay > 0:
            meta["not_before"] = iso(self.now + v.delay)
        if v.evidence is not None:
            meta["evidence"] = dict(v.evidence)
        self.emit(
            "step.retrying",
            step_name=name,
            status="waiting",
            attempt=attempt,
            iteration=iteration,
            meta=meta,
        )
        if v.delay <= 0:
            self._dispatch(name, attempt, iteration)
            return
        self.out.commands.append(
            Command(
                execution_id=self.state.execution_id,
                kind="timer",
                step=name,
                attempt=attempt,
                iteration=iteration,
                not_before=self.now + v.delay,
            )
        )

    def _finish_step(
        self,
        name: str,
        result: Any,
        duration_ms: int | None,
        extra: dict[str, Any],
        jump_to: str | None = None,
    ) -> None:
        step = self.flow.steps[name]
        anomaly = _routed_anomaly(step, self.state.steps[name].anomalies)
        if jump_to is not None:
            targets: list[tuple[Arc, dict[str, Any]]] = [(Arc(step=jump_to), {})]
            sets: dict[str, Any] = {}
        elif anomaly is not None and step.on_anomaly is not None:
            # on_anomaly replaces ``next``; the target receives the anomaly as ``args.anomaly``
            targets, sets = [(Arc(step=step.on_anomaly.step), {"anomaly": anomaly})], {}
            extra = {**extra, "on_anomaly": anomaly["kind"]}
        else:
            try:
                targets, sets = self._route(step, result)
            except TemplateError as exc:
                self.emit(
                    "step.failed",
                    step_name=name,
                    status="failed",
                    attempt=self.state.steps[name].attempt,
                    error_type="TemplateError",
                    error_message=str(exc),
                )
                self._fail_execution(name, "TemplateError", str(exc))
                return
        meta = dict(extra)
        if targets:
            meta["next"] = [
                {"step": arc.step, "args": args} if args else {"step": arc.step}
                for arc, args in targets
            ]
        if sets:
            meta["set"] = sets
        self.emit(
            "step.finished",
            step_name=name,
            status="completed",
            attempt=self.state.steps[name].attempt,
            result=result,
            duration_ms=duration_ms,
            meta=meta or None,
        )

    def _route(
        self, step: FlowStep, result: Any
    ) -> tuple[list[tuple[Arc, dict[str, Any]]], dict[str, Any]]:
        arcs = step.next.arcs
        if not arcs:
            return [], {}
        ctx = self.context(self.state.steps[step.name].args)
        ctx[step.name] = result
        ctx["result"] = result
        ctx["anomaly"] = strongest(self.state.steps[step.name].anomalies)
        chosen: list[Arc] = []
        if step.next.mode == "inclusive":
            chosen = [
                a
                for a in arcs
                if not a.is_else and (a.when is None or truthy(a.when, ctx, step=step.name))
            ]
        else:
            block: tuple[str | None, int] | None = None
            for arc in arcs:
                if arc.is_else:
                    continue
                key = (arc.when, arc.line)
                if block is not None:
                    # arcs of one seed-form ``then:`` block share their ``when`` and its line
                    if key == block and arc.line > 0:
                        chosen.append(arc)
                        continue
                    break
                if arc.when is None or truthy(arc.when, ctx, step=step.name):
                    block = key
                    chosen.append(arc)
        if not chosen:
            chosen = [a for a in arcs if a.is_else]
        targets = [
            (arc, render(dict(arc.args), ctx, step=step.name) if arc.args else {}) for arc in chosen
        ]
        sets: dict[str, Any] = {}
        for arc in chosen:
            if arc.set:
                sets.update(render(dict(arc.set), ctx, step=step.name))
        return targets, sets

    # --- progress ----------------------------------------------------------------------

    def _settle(self) -> None:
        """Start every step whose arrivals are complete; finish the execution when idle."""
        s = self.state
        while s.status == "running" and s.arrivals:
            started = False
            for name in list(s.arrivals):
                if s.status != "running":
                    return
                if name in s.active or (self.flow.is_join(name) and self._join_blocked(name)):
                    continue
                self._start_step(name, _merge(s.arrivals.get(name, [])))
                started = True
            if not started:
                if s.active:
                    break
                # nothing runs and every waiting join blocks another: start the first one
                name = next(iter(s.arrivals))
                self._start_step(name, _merge(s.arrivals.get(name, [])))
        if s.status == "running" and not s.active and not s.arrivals:
            last = s.last_finished
            self.emit(
                "execution.finished",
                status="completed",
                step_name=last,
                result=s.results.get(last) if last else None,
            )
            self.out.drop_commands = True  # only stale timers can be left (reminders, deadlines)
        else:
            maybe_pause(self)

    def _join_blocked(self, name: str) -> bool:
        """A join waits while any other live branch (running, or about to start) can reach it."""
        reaches = self.flow.reaches
        for other in self.state.active:
            if other != name and name in reaches.get(other, ()):
                return True
        for other in self.state.arrivals:
            if other != name and other not in self.state.active and name in reaches.get(other, ()):
                return True
        return False


def strongest(anomalies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The anomaly furthest beyond its threshold (``anomaly`` in ``next`` templates)."""
    if not anomalies:
        return None
    return max(anomalies, key=lambda a: float(a["score"]) / (float(a["threshold"]) or 1.0))


def _routed_anomaly(step: FlowStep, anomalies: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The anomaly that sends the step to its ``on_anomaly`` target, if any."""
    route = step.on_anomaly
    if route is None:
        return None
    return strongest([a for a in anomalies if not route.kinds or a["kind"] in route.kinds])


def _merge(arrivals: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for args in arrivals:
        merged.update(args)
    return merged


def _error_class(o: Outcome) -> str:
    details = o.meta.get("details")
    return classify(
        o.error_type,
        o.error_message,
        details if isinstance(details, Mapping) else None,
        timed_out=o.timed_out,
    )


def _matches(on: tuple[str, ...], error_type: str) -> bool:
    if not on:
        return True
    for want in on:
        if want.lower() in ("timeout", "timeouterror") and error_type == "TimeoutError":
            return True
        if error_type == want or error_type.startswith(want + "."):
            return True
    return False
