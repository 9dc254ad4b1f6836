"""The shell around the pure core: lock, fold, decide, append and enqueue atomically.

The orchestrator is the only writer of events. For each signal it brings the execution's
state up to date with the store (another process may have appended), calls ``decide``, and
appends the events and enqueues the commands in the same transaction that completes the
command the signal reports on. Commands it can hand to a local worker at once are leased
in that same transaction, so a step of a chain costs one commit.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from playloop.dsl.flow import Flow
from playloop.engine.commands import WORKER_KINDS, Command
from playloop.engine.decide import decide
from playloop.engine.events import TERMINAL_EXECUTION, Event, new_id
from playloop.engine.signals import Outcome, Signal, Start, TimerFired
from playloop.engine.state import ExecutionState, fold
from playloop.learn.snapshot import Snapshot
from playloop.store.base import EventStore, ExecutionRow, StaleSignal

if TYPE_CHECKING:
    from playloop.learn.stats import StatsCache

#: how long an execution whose optimistic decision failed is decided the careful way
CONTENDED_SECONDS = 10.0
#: a parked command (its step waits for a child execution) is held by this prefix
CHILD_HOLDER = "child:"


class UnknownExecution(LookupError):
    """No execution with this id is in the store."""


@dataclass(frozen=True, slots=True)
class SpawnChild:
    """A worker's report that a ``playbook`` step wants a child execution."""

    command: Command
    path: str
    workload: dict[str, Any]


@dataclass(slots=True)
class Advanced:
    events: list[Event] = field(default_factory=list)
    leased: list[Command] = field(default_factory=list)
    queued: dict[int, int] = field(default_factory=dict)
    timers: list[tuple[int, float]] = field(default_factory=list)
    claimed: int = 0
    finished: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Begun:
    """What one transaction has begun through ``begin_signals``: the executions it locked
    (their cached states brought up to date), the commands it asked to complete, and those
    it did complete (each is used once)."""

    executions: set[int] = field(default_factory=set)
    asked: set[int] = field(default_factory=set)
    completed: set[int] = field(default_factory=set)
    #: execution -> the seq its first optimistic check expects: the batch's events are
    #: written after every check, so a second report for it expects the same seq
    expected: dict[int, int] = field(default_factory=dict)


def make_owner() -> str:
    """A lease owner id: host and pid (so a dead local owner is recognised) and a nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead(owner: str) -> bool:
    """True when the owner ran on this host and its process is gone (kill -9, crash)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


FlowLoader = Callable[[str, str | None], Flow]
ChildResolver = Callable[[Flow, str], Flow]


class Advisor(Protocol):
    """Looks at worker outcomes before ``decide`` and attaches what it finds as data
    (``learn.anomalies.Detector``: ``Outcome.anomalies``). ``prepare`` runs before each
    transaction (reads of its own go there), ``observe`` after each commit."""

    def prepare(self, playbooks: set[str]) -> None: ...
    def advise(self, flow: Flow, state: ExecutionState, outcome: Outcome) -> Outcome: ...
    def observe(self, events: Sequence[Event]) -> None: ...


class Orchestrator:
    def __init__(
        self,
        store: EventStore,
        load_flow: FlowLoader,
        resolve_child: ChildResolver,
        advisor: Advisor | None = None,
    ) -> None:
        self.store = store
        self._load_flow = load_flow
        self._resolve_child = resolve_child
        self.advisor = advisor
        self.states: dict[int, ExecutionState] = {}
        self.flows: dict[int, Flow] = {}
        #: decide first and let the store verify at commit (see ``advance``)
        self.optimistic = store.dialect == "postgres"
        #: begin a batch's reports in one round trip (``begin_signals``); SQLite's exclusive
        #: transaction has nothing to gain, so its hot path skips gathering them
        self.begins_together = store.dialect == "postgres"
        self._contended: dict[int, float] = {}
        #: the statistics learned policies read; refreshed (at most every ``max_age``
        #: seconds, outside any transaction) only once a flow that uses them is loaded
        self.learning: StatsCache | None = None
        #: id(flow) -> (flow, whether it uses a learned policy): asked once per flow
        self._uses_learning: dict[int, tuple[Flow, bool]] = {}
        self._learning_wanted = False

    # --- reads -------------------------------------------------------------------------

    def state(
        self, execution_id: int, *, refresh: bool = True, stored_seq: int | None = None
    ) -> ExecutionState:
        """The execution's state, folded forward from the store when it has moved on.

        ``stored_seq`` is the last seq in the store when the caller already read it.
        """
        state = self.states.get(execution_id)
        if state is None:
            events = self.store.read_events(execution_id)
            if not events:
                raise UnknownExecution(f"no execution {execution_id}")
            state = fold(events)
            self.states[execution_id] = state
        elif refresh:
            stored = self.store.max_seq(execution_id) if stored_seq is None else stored_seq
            if stored != state.last_seq:
                fold(self.store.read_events(execution_id, state.last_seq), state)
        return state

    def flow(self, execution_id: int) -> Flow:
        flow = self.flows.get(execution_id)
        if flow is None:
            state = self.state(execution_id, refresh=False)
            flow = self._load_flow(state.playbook_path, state.playbook_version)
            self._remember(execution_id, flow)
        return flow

    def _remember(self, execution_id: int, flow: Flow) -> None:
        self.flows[execution_id] = flow
        if not self._learning_wanted and uses_learning(flow):
            self._learning_wanted = True

    def _stats(self, flow: Flow) -> Snapshot | None:
        if self.learning is None:
            return None
        known = self._uses_learning.get(id(flow))
        if known is None or known[0] is not flow:
            if len(self._uses_learning) > 1024:
                self._uses_learning.clear()
            known = self._uses_learning[id(flow)] = (flow, uses_learning(flow))
        return self.learning.snapshot() if known[1] else None

    def forget(self, execution_id: int) -> None:
        self.states.pop(execution_id, None)
        self.flows.pop(execution_id, None)
        self._contended.pop(execution_id, None)

    # --- writes ------------------------------------------------------------------------

    def start(
        self,
        flow: Flow,
        workload: dict[str, Any],
        *,
        owner: str,
        capacity: int,
        lease_seconds: float,
        actor: str | None = None,
    ) -> tuple[int, Advanced]:
        execution_id = new_id()
        self.states[execution_id] = ExecutionState(execution_id=execution_id)
        self._remember(execution_id, flow)
        result = self.advance(
            [(execution_id, Start(workload=workload, actor=actor))],
            owner=owner,
            capacity=capacity,
            lease_seconds=lease_seconds,
        )
        return execution_id, result

    def advance(
        self,
        signals: Sequence[tuple[int, Signal | SpawnChild]],
        *,
        owner: str,
        capacity: int,
        lease_seconds: float,
        claim_for: Sequence[int] = (),
        claim_any: bool = False,
        pool: str | None = None,
    ) -> Advanced:
        """Apply signals in one transaction; lease up to ``capacity`` run commands to owner.

        New run commands are leased first; with capacity left, queued commands of the
        executions in ``claim_for`` (or of any execution, with ``claim_any``) are claimed in
        the same transaction, and due timers fire. ``pool`` limits both to one worker pool
        (None: every pool).

        Where the store can check it at commit (PostgreSQL), a signal for an execution whose
        state is cached is decided optimistically: the store verifies, in the same round trip
        as the writes, that the command was still ours and that no other process appended to
        the execution meanwhile. If either failed, nothing was written and the batch is
        decided again the careful way (lock, then read, then decide).
        """
        args = (signals, owner, capacity, lease_seconds, claim_for, claim_any, pool)
        if self.advisor is not None:
            self.advisor.prepare(self._playbooks(signals))
        if self.learning is not None and self._learning_wanted:
            self.learning.refresh_in_background()
        if self.optimistic:
            try:
                return self._observed(self._advance(*args, optimistic=True))
            except StaleSignal:
                # others decide for these executions too (a fan-out over several workers):
                # be careful with them for a while rather than fail optimistically again
                now = time.time()
                if len(self._contended) > 1024:
                    self._contended = {k: v for k, v in self._contended.items() if v > now}
                until = now + CONTENDED_SECONDS
                for execution_id, _ in signals:
                    self._contended[execution_id] = until
        return self._observed(self._advance(*args, optimistic=False))

    def _playbooks(self, signals: Sequence[tuple[int, Signal | SpawnChild]]) -> set[str]:
        """The playbooks of the executions whose outcomes arrive (those already cached)."""
        found = set()
        for execution_id, signal in signals:
            if isinstance(signal, Outcome):
                state = self.states.get(execution_id)
                if state is not None and state.playbook_path:
                    found.add(state.playbook_path)
        return found

    def _observed(self, out: Advanced) -> Advanced:
        if self.advisor is not None and out.events:
            self.advisor.observe(out.events)
        return out

    def _advance(
        self,
        signals: Sequence[tuple[int, Signal | SpawnChild]],
        owner: str,
        capacity: int,
        lease_seconds: float,
        claim_for: Sequence[int],
        claim_any: bool,
        pool: str | None,
        *,
        optimistic: bool,
    ) -> Advanced:
        now = time.time()
        out = Advanced()
        touched: set[int] = set()
        begun = _Begun()
        new_commands: list[Command] = []
        work: deque[tuple[int, Signal | SpawnChild, bool]] = deque((e, s, True) for e, s in signals)
        # executions this batch starts: a failed batch leaves them as new, not unknown
        fresh = [e for e, s in signals if (st := self.states.get(e)) is not None and _is_new(s, st)]
        try:
            with self.store.transaction():
                lease_until = now + lease_seconds
                claimed_once = False
                first = True
                while first or work:
                    first = False
                    self._process(work, owner, now, out, new_commands, touched, begun, optimistic)
                    for cmd in new_commands:
                        if (
                            cmd.lease_owner is None
                            and cmd.kind in WORKER_KINDS
                            and capacity > 0
                            and not cmd.not_before
                            and (pool is None or (cmd.pool or "default") == pool)
                        ):
                            cmd.lease_owner = owner
                            cmd.lease_expires_at = lease_until
                            cmd.claims = 1
                            capacity -= 1
                            out.leased.append(cmd)
                    if capacity > 0 and (claim_for or claim_any) and not claimed_once:
                        claimed_once = True
                        if claim_any:
                            claimed = self.store.claim(
                                owner, now, lease_until, capacity, None, pool
                            )
                        elif len(claim_for) == 1:
                            claimed = self.store.claim(
                                owner, now, lease_until, capacity, claim_for[0], pool
                            )
                        else:
                            claimed = self.store.claim_in(
                                owner, now, lease_until, capacity, claim_for, pool
                            )
                        out.claimed += len(claimed)
                        if claimed:
                            for cmd in claimed:
                                if cmd.kind not in WORKER_KINDS:
                                    work.append((cmd.execution_id, TimerFired(cmd), True))
                                else:
                                    capacity -= 1
                                    out.leased.append(cmd)
                out.queued = {}
                for cmd in new_commands:
                    if cmd.lease_owner is None:
                        if cmd.not_before:
                            out.timers.append((cmd.execution_id, cmd.not_before))
                        else:
                            out.queued[cmd.execution_id] = out.queued.get(cmd.execution_id, 0) + 1
                self.store.append(out.events)
                self.store.enqueue(new_commands)
        except BaseException:
            for execution_id in touched:
                self.states.pop(execution_id, None)
            for execution_id in fresh:
                self.states[execution_id] = ExecutionState(execution_id=execution_id)
            raise
        return out

    def _process(
        self,
        work: deque[tuple[int, Signal | SpawnChild, bool]],
        owner: str,
        now: float,
        out: Advanced,
        new_commands: list[Command],
        touched: set[int],
        begun: _Begun,
        optimistic: bool = False,
    ) -> None:
        if self.begins_together:
            self._begin_together(work, owner, now, touched, begun, optimistic)
        while work:
            execution_id, signal, check_lease = work.popleft()
            touched.add(execution_id)
            if isinstance(signal, SpawnChild):
                child = self._spawn(signal, owner, work)
                if child is not None:
                    touched.add(child)
                continue
            cmd = getattr(signal, "command", None)
            command_id = cmd.command_id if cmd is not None else None
            lease_owner = owner if cmd is not None and check_lease else None
            cached = self.states.get(execution_id)
            if cached is not None and _is_new(signal, cached):
                state = cached  # see _is_new
            elif (
                execution_id in begun.executions
                and cached is not None
                and (lease_owner is None or command_id in begun.asked)
            ):
                if lease_owner is not None:
                    if command_id not in begun.completed:
                        continue  # our lease expired and another worker took the command over
                    begun.completed.discard(command_id)
                elif command_id is not None:
                    self.store.delete_command(command_id)  # whoever holds it, as begin_signal
                state = cached  # locked by begin_signals, and up to date
            elif (
                optimistic
                and cached is not None
                and self._can_expect(cached, execution_id, now)
                and self.store.expect_signal(
                    execution_id,
                    command_id,
                    lease_owner,
                    begun.expected.setdefault(execution_id, cached.last_seq),
                )
            ):
                state = cached  # checked by the store when the batch is sent
            else:
                accepted, stored_seq = self.store.begin_signal(
                    execution_id, command_id, lease_owner
                )
                if not accepted:
                    continue  # our lease expired and another worker took the command over
                state = self.state(execution_id, stored_seq=stored_seq)
            was_running = state.event_count > 0
            flow = self.flow(execution_id)
            if self.advisor is not None and isinstance(signal, Outcome):
                signal = self.advisor.advise(flow, state, signal)
            decision = decide(flow, state, signal, now, self._stats(flow))
            for step in decision.decided_steps:
                self.store.drop_decision_commands(execution_id, step)
            self._collect(state, decision.events, decision.commands, out, new_commands)
            if decision.drop_commands:
                self.store.drop_commands(execution_id)
                new_commands[:] = [c for c in new_commands if c.execution_id != execution_id]
                out.leased[:] = [c for c in out.leased if c.execution_id != execution_id]
            if not was_running and state.event_count:
                out.started.append(execution_id)
                self.store.upsert_execution(_row(state))
            for event in decision.events:
                if (
                    event.event_type.startswith("decision.")
                    or event.event_type == "callback.received"
                ):
                    self.store.project_decision(event, state.playbook_path)
                elif event.event_type in ("execution.paused", "execution.resumed"):
                    self.store.upsert_execution(_row(state))
            if (
                state.terminal
                and decision.events
                and decision.events[-1].event_type in TERMINAL_EXECUTION
            ):
                self.store.upsert_execution(_row(state))
                out.finished.append(execution_id)
                if state.parent:
                    work.append(_child_done(state))

    def _can_expect(self, cached: ExecutionState | None, execution_id: int, now: float) -> bool:
        """Whether a report for this execution may be decided optimistically (see advance)."""
        return (
            cached is not None
            and cached.event_count > 0
            and self._contended.get(execution_id, 0.0) < now
        )

    def _begin_together(
        self,
        work: deque[tuple[int, Signal | SpawnChild, bool]],
        owner: str,
        now: float,
        touched: set[int],
        begun: _Begun,
        optimistic: bool,
    ) -> None:
        """Begin the queued reports that need a lock, all in one round trip where the store
        can (``begin_signals``): a contended execution is then locked for one round trip and
        the decisions, instead of two round trips per report, and a batch of reports for
        many executions (W3) locks and reads them all at once."""
        ids: list[int] = []
        since: list[int] = []
        commands: list[int] = []
        for execution_id, signal, check_lease in work:
            if isinstance(signal, SpawnChild) or execution_id in begun.executions:
                continue
            cached = self.states.get(execution_id)
            if (cached is not None and _is_new(signal, cached)) or (
                optimistic and self._can_expect(cached, execution_id, now)
            ):
                continue
            cmd = getattr(signal, "command", None)
            if cmd is not None and check_lease:
                commands.append(cmd.command_id)
            if execution_id not in ids:
                ids.append(execution_id)
                since.append(cached.last_seq if cached is not None else 0)
        if not ids:
            return
        answer = self.store.begin_signals(ids, commands, owner, since)
        if answer is None:
            return  # this store begins each report on its own
        completed, events = answer
        begun.asked.update(commands)
        begun.completed.update(completed)
        by_execution: dict[int, list[Event]] = {}
        for event in events:
            by_execution.setdefault(event.execution_id, []).append(event)
        for execution_id in ids:
            touched.add(execution_id)
            new = by_execution.get(execution_id)
            state = self.states.get(execution_id)
            if state is None:
                if not new:
                    continue  # unknown here: decided (and refused) the careful way
                state = self.states[execution_id] = fold(new)
            elif new:
                fold(new, state)
            begun.executions.add(execution_id)

    def _collect(
        self,
        state: ExecutionState,
        events: list[Event],
        commands: list[Command],
        out: Advanced,
        new_commands: list[Command],
    ) -> None:
        by_seq: dict[int, int] = {}
        for event in events:
            event.event_id = new_id()
            by_seq[event.seq] = event.event_id
        out.events.extend(events)
        for cmd in commands:
            cmd.command_id = new_id()
            if cmd.started_event_id is not None:
                cmd.started_event_id = by_seq.get(cmd.started_event_id)
            new_commands.append(cmd)

    def _spawn(
        self,
        spawn: SpawnChild,
        owner: str,
        work: deque[tuple[int, Signal | SpawnChild, bool]],
    ) -> int | None:
        cmd = spawn.command
        if not self.store.complete(cmd.command_id, owner):
            return None
        parent_flow = self.flow(cmd.execution_id)
        try:
            child_flow = self._resolve_child(parent_flow, spawn.path)
        except Exception as exc:  # an unknown or invalid child playbook fails the step
            failed = Outcome(
                command=cmd, ok=False, error_type=type(exc).__name__, error_message=str(exc)
            )
            work.appendleft((cmd.execution_id, failed, False))
            return None
        child_id = new_id()
        self.store.enqueue(
            [
                dataclasses.replace(
                    cmd, lease_owner=CHILD_HOLDER + str(child_id), lease_expires_at=None
                )
            ]
        )
        parent = {
            "execution_id": cmd.execution_id,
            "event_id": cmd.started_event_id,
            "command_id": cmd.command_id,
            "step": cmd.step,
            "iteration": cmd.iteration,
            "attempt": cmd.attempt,
        }
        self.states[child_id] = ExecutionState(execution_id=child_id)
        self._remember(child_id, child_flow)
        work.appendleft((child_id, Start(workload=spawn.workload, parent=parent), False))
        return child_id


def _is_new(signal: Signal | SpawnChild, cached: ExecutionState) -> bool:
    """A Start of an execution this process just made up the id of: no other process can
    know it yet, so there is nothing to lock or read (its first seq is still guarded by the
    store's unique (execution_id, seq))."""
    return isinstance(signal, Start) and not cached.event_count


def uses_learning(flow: Flow) -> bool:
    """Whether any step of the flow has ``retry: auto``, ``timeout: auto`` or a learned rule."""
    for step in flow.steps.values():
        if step.timeout_auto is not None or (step.retry is not None and step.retry.auto):
            return True
        if any(rule.mode == "learned" for rule in step.rules):
            return True
    return False


def _child_done(state: ExecutionState) -> tuple[int, Signal | SpawnChild, bool]:
    parent = state.parent or {}
    command = Command(
        command_id=int(parent["command_id"]),
        execution_id=int(parent["execution_id"]),
        kind="run",
        step=str(parent["step"]),
        attempt=int(parent["attempt"]),
        iteration=parent.get("iteration"),
    )
    meta = {"child_execution_id": str(state.execution_id)}
    if state.status == "completed":
        outcome = Outcome(command=command, ok=True, result=state.result, meta=meta)
    else:
        kind = "ChildExecutionFailed" if state.status == "failed" else "ChildExecutionCancelled"
        message = f"child execution {state.execution_id} {state.status}"
        if state.error_message:
            message += f": {state.error_message}"
        outcome = Outcome(
            command=command, ok=False, error_type=kind, error_message=message, meta=meta
        )
    return command.execution_id, outcome, False


def _row(state: ExecutionState) -> ExecutionRow:
    return ExecutionRow(
        execution_id=state.execution_id,
        playbook_path=state.playbook_path,
        playbook_version=state.playbook_version,
        parent_execution_id=state.parent_execution_id,
        status=state.status,
        started_at=state.started_at or "",
        ended_at=state.ended_at,
        last_seq=state.last_seq,
        error_message=state.error_message,
    )


def resolve_relative(base: Flow, path: str) -> Path | None:
    """A child playbook path relative to the calling playbook's file, if that file exists."""
    if base.source_file:
        candidate = Path(base.source_file).parent / path
        if candidate.is_file():
            return candidate
    candidate = Path(path)
    return candidate if candidate.is_file() else None
