"""``Engine``: the embedded runtime — store, orchestrator and a local worker in one process.

One loop thread owns the write path: it takes worker reports and requests from an inbox,
hands them to the orchestrator in batches (one transaction per batch, so a burst of
parallel steps commits together), and gives the commands leased in that transaction to a
thread pool. User code (python, shell) runs in killable child processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import heapq
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from playloop.dsl.flow import Flow
from playloop.dsl.load import load_text
from playloop.engine.commands import Command
from playloop.engine.decisions import DecisionRefused
from playloop.engine.events import Event, new_id
from playloop.engine.orchestrator import (
    Orchestrator,
    SpawnChild,
    UnknownExecution,
    make_owner,
    owner_is_dead,
    resolve_relative,
)
from playloop.engine.signals import Callback, Cancel, Decide, Outcome, Record, Signal, Start
from playloop.engine.state import ExecutionState, fold
from playloop.export import OutboxPublisher
from playloop.learn.anomalies import Detector
from playloop.learn.stats import StatsCache
from playloop.secrets.credentials import CredentialStore
from playloop.secrets.redact import REDACTOR
from playloop.store.open import database_url, is_postgres, open_store
from playloop.worker.execute import SimilarLookup, execute

if TYPE_CHECKING:
    from playloop.learn.recorder import ResolutionRecorder
    from playloop.learn.service import Learning
    from playloop.learn.vectors import VectorIndex
    from playloop.worker.listen import Listener
from playloop.worker.processes import ProcessPool

log = logging.getLogger("playloop")

EventListener = Callable[[list[Event]], None]
#: how long a worker's similar-failure lookup waits for an Edge shard another process holds
#: (on the lookup's helper thread: the step's report waits only for the lookup's budget)
LOOKUP_WAIT_SECONDS = 5.0


def default_home() -> Path:
    return Path(os.environ.get("PLAYLOOP_HOME") or ".playloop")


class PlaybookNotFound(LookupError):
    """No playbook file at this path and no catalog entry by this name."""


class Engine:
    """Runs playbooks on the embedded SQLite store; reuse one Engine for many runs."""

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        db: str | None = None,
        concurrency: int = 16,
        processes: int | None = None,
        lease_seconds: float = 30.0,
        claim_any: bool = False,
        pool: str | None = None,
        record_resolutions: bool = False,
        index: bool | Literal["thread"] = False,
        similar: bool | None = None,
        anomalies: bool = True,
    ) -> None:
        """``claim_any``: run any execution's queued commands (a worker), not only this
        engine's own; ``pool``: only commands of that worker pool (None: all);
        ``record_resolutions``: link the failures of each execution this engine ends to what
        resolved them, in the background (servers and workers do); ``index``: keep the vector
        index up to date in the background and attach similar past failures to failure
        events (``playloop.learn.service``): ``True``, the indexer in a child process (a
        server: the index's writes never hold this process's GIL), ``"thread"``, in a
        thread of this one (``playloop run``: one execution, where a child's start-up
        would cost more than it saves); ``similar``: attach similar past failures
        (default: ``index``); with ``index=False`` the engine only reads an index another
        process keeps (a worker); ``anomalies``: judge step outcomes against their
        baselines (docs/anomalies.md)."""
        self.home = Path(home) if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.db_url = database_url(db, self.home)
        self.store = open_store(self.db_url)
        REDACTOR.install()  # mask secrets in every log record of this process
        self._credentials = CredentialStore(self.store, self.home).get
        self.detector = Detector(lambda: self.orchestrator.store) if anomalies else None
        self.orchestrator = Orchestrator(
            self.store, self._flow_from_catalog, self._resolve_child, self.detector
        )
        #: statistics from the event log, read by learned retries and timeouts
        self.stats = StatsCache(self.store)
        self.orchestrator.learning = self.stats
        self.owner = make_owner()
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.processes = ProcessPool(processes or max(2, os.cpu_count() or 2))
        self._executor = ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="playloop-step")
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._flows: dict[tuple[str, int, int], Flow] = {}
        self._catalog_flows: dict[tuple[str, str], Flow] = {}
        self._listeners: list[EventListener] = []
        self._done: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        # owned by the loop thread
        self._in_flight = 0
        self._last_busy = 0.0
        self._scope: set[int] = set()
        self._needs_claim: set[int] = set()
        self._timers: list[tuple[float, int]] = []
        self._last_heartbeat = 0.0
        self.claim_any = claim_any
        self.pool = pool
        self.worker_id: str | None = None
        self._wake = True
        self._more = False
        self._last_claim = 0.0
        self._last_reap = 0.0
        self._last_scope_claim = 0.0
        self._failures = 0
        self._draining = False
        self._listener: Listener | None = None
        self.recorder: ResolutionRecorder | None = None
        if record_resolutions:
            from playloop.learn.recorder import ResolutionRecorder

            self.recorder = ResolutionRecorder.attach(self)
        #: the vector indexer and the similar-failure lookup (``index=True``), or the lookup
        #: alone (``similar=True``)
        self.learning: Learning | None = None
        self._vectors: VectorIndex | None = None
        if index or similar:
            from playloop.learn.service import Learning

            if index == "thread":
                self.learning = Learning(self.home, self.db_url, engine_busy=self._busy_at).start()
                self.subscribe(self.learning.notify)
            elif index:  # the indexer in a child process; this one only reads the index
                self.learning = Learning(
                    self.home, self.db_url, indexer="process", wait=LOOKUP_WAIT_SECONDS
                ).start()
                self.subscribe(self.learning.notify)
            else:  # the lookup alone: a shard another process holds is waited for briefly
                self.learning = Learning(self.home, indexer=False, wait=LOOKUP_WAIT_SECONDS)
        #: finds similar past failures for a failing step's report (``meta.similar``)
        self._similar: SimilarLookup | None = None
        if self.learning is not None and similar is not False:
            self._similar = self.learning.lookup
        #: streams committed events to NATS JetStream when $PLAYLOOP_NATS_URL is set
        self.publisher = OutboxPublisher.start_if_configured(self.store)
        if self.publisher is not None:
            publisher = self.publisher
            self.subscribe(lambda _events: publisher.notify())

    # --- public API --------------------------------------------------------------------

    def load(self, path: str | Path) -> Flow:
        """Load and validate a playbook file, registering it in the catalog (cached by mtime)."""
        file = Path(path)
        try:
            stat = file.stat()
        except FileNotFoundError:
            raise PlaybookNotFound(f"no playbook file {path}") from None
        key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
        flow = self._flows.get(key)
        if flow is None:
            text = file.read_text(encoding="utf-8")
            flow = load_text(text, filename=str(path))
            entry = self.store.catalog_register(
                flow.path, text, flow.content_hash, str(file.resolve())
            )
            flow = dataclasses.replace(
                flow, version=str(entry.version), source_file=str(file.resolve())
            )
            self._flows[key] = flow
        return flow

    def vector_index(self) -> VectorIndex:
        """The learning layer's vector index: the indexer's when ``index=True``, else one
        opened for reading on first use (closed with the engine)."""
        if self.learning is not None:
            return self.learning.index()
        with self._lock:
            if self._vectors is None:
                from playloop.learn.vectors import VectorIndex

                self._vectors = VectorIndex.open(self.home)
            return self._vectors

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener`` with every batch of committed events (from the engine's thread)."""
        self._listeners.append(listener)

    def start(
        self,
        playbook: str | Path | Flow,
        workload: Mapping[str, Any] | None = None,
        *,
        parent_execution_id: int | None = None,
        actor: str | None = None,
    ) -> int:
        """Start an execution; ``parent_execution_id`` records lineage only; ``actor`` is who
        started it (a self-approval check refuses that person)."""
        flow = playbook if isinstance(playbook, Flow) else self.load(playbook)
        future: Future[int] = Future()
        self._send(("start", flow, dict(workload or {}), parent_execution_id, actor, future))
        return future.result()

    def wait(self, execution_id: int, timeout: float | None = None) -> dict[str, Any]:
        """Block until the execution ends (whichever process advances it); return its summary."""
        done = self._done_event(execution_id)
        self._listen(worker=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                row = self.store.get_execution(execution_id)
            except Exception:  # the database restarting: keep waiting until the deadline
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                log.debug("wait: store unavailable", exc_info=True)
                time.sleep(0.2)
                continue
            if row is None:
                raise UnknownExecution(f"no execution {execution_id}")
            if row.status not in ("running", "paused"):
                return self.summary(execution_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"execution {execution_id} still running after {timeout}s")
            wait = 0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic()))
            if done.wait(wait):
                done.clear()  # woken (maybe by a reconnect): look at the store again

    def run(
        self,
        playbook: str | Path | Flow,
        workload: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        *,
        actor: str | None = None,
    ) -> dict[str, Any]:
        return self.wait(self.start(playbook, workload, actor=actor), timeout)

    def resume(self, execution_id: int, timeout: float | None = None) -> dict[str, Any]:
        """Take over an execution whose process died: re-claim its commands and run it to the end."""
        row = self.store.get_execution(execution_id)
        if row is None:
            raise UnknownExecution(f"no execution {execution_id}")
        if row.status not in ("running", "paused"):
            return self.summary(execution_id)
        self._done_event(execution_id)
        for owner in self.store.lease_owners():
            if owner_is_dead(owner):
                self.store.release_owner(owner)
        future: Future[None] = Future()
        self._send(("resume", execution_id, future))
        future.result()
        return self.wait(execution_id, timeout)

    def cancel(
        self, execution_id: int, actor: str | None = None, reason: str | None = None
    ) -> None:
        if self.store.get_execution(execution_id) is None:
            raise UnknownExecution(f"no execution {execution_id}")
        future: Future[None] = Future()
        self._send(("cancel", execution_id, Cancel(actor=actor, reason=reason), future))
        future.result()

    def record(self, execution_id: int, event_type: str, **fields: Any) -> Event:
        """Append one event to an execution (running or ended): feedback, a resolution."""
        if self.store.get_execution(execution_id) is None:
            raise UnknownExecution(f"no execution {execution_id}")
        future: Future[Event] = Future()
        self._send(("record", execution_id, Record(event_type, fields), future))
        return future.result()

    def decide(
        self,
        decision_id: str,
        action: str,
        *,
        actor: str,
        values: Mapping[str, Any] | None = None,
        comment: str | None = None,
    ) -> Event:
        """Answer a pending decision; returns the ``decision.made`` event.

        Raises ``DecisionRefused`` (with an HTTP-like ``status``) for an unknown or decided
        request, an action not offered, or a person who may not decide it.
        """
        head = decision_id.split("-", 1)[0]
        if not head.isdigit() or self.store.get_execution(int(head)) is None:
            raise DecisionRefused(404, f"no decision {decision_id}")
        signal = Decide(decision_id, action, actor, dict(values or {}), comment)
        future: Future[Event] = Future()
        self._send(("decide", int(head), signal, future))
        return future.result()

    def callback(self, callback_id: str, body: Any) -> Event:
        """A verified call to a waiting step's callback URL: the body becomes its result.

        Raises ``DecisionRefused``: 404 for an unknown callback, 409 for one already used.
        """
        head = callback_id.split("-", 1)[0]
        if not head.isdigit() or self.store.get_execution(int(head)) is None:
            raise DecisionRefused(404, f"no callback {callback_id}")
        future: Future[Event] = Future()
        self._send(("decide", int(head), Callback(callback_id, body), future))
        return future.result()

    def events(self, execution_id: int) -> list[Event]:
        return self.store.read_events(execution_id)

    def state(self, execution_id: int) -> ExecutionState:
        events = self.store.read_events(execution_id)
        if not events:
            raise UnknownExecution(f"no execution {execution_id}")
        return fold(events)

    def summary(self, execution_id: int) -> dict[str, Any]:
        return summarize(self.state(execution_id))

    def _listen(self, *, worker: bool) -> None:
        """On PostgreSQL, hear about finished executions (and queued commands, as a worker)."""
        if not is_postgres(self.db_url) or (self._listener is not None and not worker):
            return
        from playloop.worker.listen import COMMANDS, EXECUTIONS, Listener

        if self._listener is not None:
            self._listener.stop()
        handlers = {EXECUTIONS: self._execution_ended}
        if worker:
            handlers[COMMANDS] = self._commands_queued
        self._listener = Listener(self.db_url, handlers).start()

    def _execution_ended(self, payload: str | None) -> None:
        with self._lock:
            if payload is None:  # reconnected: anything may have ended meanwhile
                waiting = list(self._done.values())
            else:
                found = self._done.get(int(payload)) if payload.isdigit() else None
                waiting = [found] if found is not None else []
        for event in waiting:
            event.set()

    def _commands_queued(self, payload: str | None) -> None:
        if payload is None or self.pool is None or payload == self.pool:
            self.wake()

    def wake(self) -> None:
        """Something may be claimable (a notification, a timer): look on the next turn."""
        self._inbox.put(("wake",))

    def serve(self, worker_id: str | None = None) -> None:
        """Become a worker: register, listen for queued commands and run them until closed."""
        self.worker_id = worker_id or self.owner
        self.store.register_worker(self.worker_id, self.pool, self.concurrency)
        self._listen(worker=True)
        self._send(("wake",))

    def drain(self, timeout: float = 30.0) -> int:
        """Stop taking work, let running steps finish (up to ``timeout``), hand back the rest.

        Returns how many commands were handed back unfinished.
        """
        future: Future[None] = Future()
        self._send(("drain", future))
        future.result()
        deadline = time.time() + timeout
        while self._in_flight > 0 and time.time() < deadline:
            time.sleep(0.05)
        left = self._in_flight
        if self._listener is not None:
            self._listener.stop()
        self.store.release_owner(self.owner)
        if self.worker_id is not None:
            self.store.deregister_worker(self.worker_id)
        return left

    def close(self) -> None:
        if self._closed:
            return
        if self.recorder is not None:
            self.recorder.stop()  # it appends through the loop: before the loop stops
        if self._listener is not None:
            self._listener.stop()
        self._closed = True
        if self._thread is not None:
            self._inbox.put(("stop",))
            self._thread.join(timeout=30)
        self.processes.close()  # user code still running is killed; its commands stay leased
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self.publisher is not None:
            self.publisher.stop()  # publishes what is waiting while NATS answers
        if self.learning is not None:
            self.learning.close()  # indexes what this run committed (bounded), then stops
        if self._vectors is not None:
            self._vectors.close()
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- flows -------------------------------------------------------------------------

    def _flow_from_catalog(self, path: str, version: str | None) -> Flow:
        """A catalog version's flow; versions never change, so each is parsed once."""
        if version and version.isdigit():
            cached = self._catalog_flows.get((path, version))
            if cached is not None:
                return cached
        entry = self.store.catalog_get(
            path, int(version) if version and version.isdigit() else None
        )
        if entry is None or entry.content is None:
            raise PlaybookNotFound(f"playbook '{path}' version {version} is not in the catalog")
        flow = load_text(entry.content, filename=entry.source_file or path)
        flow = dataclasses.replace(flow, version=str(entry.version), source_file=entry.source_file)
        if len(self._catalog_flows) > 512:
            self._catalog_flows.clear()
        self._catalog_flows[(path, str(entry.version))] = flow
        return flow

    def _resolve_child(self, parent: Flow, path: str) -> Flow:
        file = resolve_relative(parent, path)
        if file is not None:
            return self.load(file)
        return self._flow_from_catalog(path, None)

    # --- the loop ----------------------------------------------------------------------

    def _send(self, item: tuple[Any, ...]) -> None:
        if self._closed:
            raise RuntimeError("engine is closed")
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="playloop-engine", daemon=True
                )
                self._thread.start()
        self._inbox.put(item)

    def _done_event(self, execution_id: int) -> threading.Event:
        with self._lock:
            event = self._done.get(execution_id)
            if event is None:
                event = self._done[execution_id] = threading.Event()
            return event

    def _loop(self) -> None:
        with self.store.pinned():
            self._serve_inbox()

    def _serve_inbox(self) -> None:
        while True:
            try:
                first = self._inbox.get(timeout=self._wait_time())
            except queue.Empty:
                first = None
            items = [] if first is None else [first]
            while len(items) < 512:
                try:
                    items.append(self._inbox.get_nowait())
                except queue.Empty:
                    break
            if any(item[0] == "stop" for item in items):
                return
            decides = [item for item in items if item[0] == "decide"]
            if decides:  # each alone: a refused decision must not hold back other work
                items = [item for item in items if item[0] != "decide"]
                for item in decides:
                    try:
                        self._step([item])
                    except Exception as exc:
                        if not item[-1].done():
                            item[-1].set_exception(exc)
            try:
                busy = self._in_flight > 0
                self._step(items)
                # every busy batch, not only the last: _in_flight reads 0 in the middle of
                # a batch, between its reports and the commands they lead to
                if busy or self._in_flight:
                    self._last_busy = time.monotonic()
                self._failures = 0
            except Exception as exc:  # keep the loop alive; nothing of the batch was written
                log.exception("engine loop error")
                self._recover(items, exc)

    def _recover(self, items: list[tuple[Any, ...]], exc: Exception) -> None:
        """Fail this batch's requests; retry its reports, then hand their commands back.

        A database restart makes every commit fail for a few seconds: reports are retried
        with a growing pause (up to a minute in all) before the command is released for
        another worker to run again.
        """
        self._failures += 1
        time.sleep(min(0.05 * 2 ** min(self._failures, 5), 1.0))
        for item in items:
            future = item[-1]
            if isinstance(future, Future):
                if not future.done():
                    future.set_exception(exc)
            elif item[0] == "signal":
                tries = item[3] if len(item) > 3 else 0
                if tries < 60:
                    self._in_flight += 1  # _step counted it as done
                    self._inbox.put(("signal", item[1], item[2], tries + 1))
                else:
                    command = getattr(item[2], "command", None)
                    if command is not None:
                        with contextlib.suppress(Exception):
                            self.store.release_command(command.command_id, self.owner)
                    self._needs_claim.add(item[1])

    def _busy_at(self) -> float:
        """When this engine last had steps running (now, while it has)."""
        return time.monotonic() if self._in_flight else self._last_busy

    def _wait_time(self) -> float:
        wait = 1.0
        if self._timers:
            wait = min(wait, max(0.0, self._timers[0][0] - time.time()))
        return wait

    def _step(self, items: list[tuple[Any, ...]]) -> None:
        signals: list[tuple[int, Signal | SpawnChild]] = []
        futures: list[tuple[Future[Any], Any]] = []
        for item in items:
            kind = item[0]
            if kind == "signal":
                self._in_flight -= 1
                signals.append((item[1], item[2]))
            elif kind == "start":
                _, flow, workload, parent_execution_id, actor, future = item
                execution_id = new_id()
                self.orchestrator.states[execution_id] = ExecutionState(execution_id=execution_id)
                self.orchestrator.flows[execution_id] = flow
                self._scope.add(execution_id)
                signals.append(
                    (
                        execution_id,
                        Start(
                            workload=workload, parent_execution_id=parent_execution_id, actor=actor
                        ),
                    )
                )
                futures.append((future, execution_id))
            elif kind == "record":
                _, execution_id, record, future = item
                signals.append((execution_id, record))
                futures.append((future, ("event", execution_id, (record.event_type,))))
            elif kind == "decide":
                _, execution_id, decide, future = item
                signals.append((execution_id, decide))
                # a step's callback is received; a decision's callback (or answer) is made
                made = (
                    ("callback.received", "decision.made")
                    if isinstance(decide, Callback)
                    else ("decision.made",)
                )
                futures.append((future, ("event", execution_id, made)))
            elif kind == "cancel":
                _, execution_id, cancel, future = item
                signals.append((execution_id, cancel))
                futures.append((future, None))
            elif kind == "wake":
                self._wake = True
            elif kind == "drain":
                self._draining = True
                futures.append((item[1], None))
            elif kind == "resume":
                _, execution_id, future = item
                self.orchestrator.forget(execution_id)
                self._scope.add(execution_id)
                self._needs_claim.add(execution_id)
                for cmd in self.store.commands_of(execution_id):
                    if cmd.not_before:  # a timer, or a notification waiting to retry
                        heapq.heappush(self._timers, (cmd.not_before, execution_id))
                futures.append((future, None))
        now = time.time()
        claim_for = set(self._needs_claim)
        while self._timers and self._timers[0][0] <= now:
            claim_for.add(heapq.heappop(self._timers)[1])
        if self._scope and now - self._last_scope_claim > 0.5:
            # another process may have queued work for our executions (a decision, a cancel)
            self._last_scope_claim = now
            claim_for |= self._scope
        claim_for &= self._scope
        capacity = 0 if self._draining else self.concurrency - self._in_flight
        claim_any = (
            self.claim_any
            and capacity > 0
            and (self._wake or self._more or now - self._last_claim >= 1.0)
        )
        if signals or claim_for or claim_any:
            if claim_any:
                self._wake = False
                self._last_claim = now
            out = self.orchestrator.advance(
                signals,
                owner=self.owner,
                capacity=capacity,
                lease_seconds=self.lease_seconds,
                claim_for=sorted(claim_for),
                claim_any=claim_any,
                pool=self.pool,
            )
            if claim_any:
                self._more = out.claimed > 0 and len(out.leased) >= capacity
            if capacity - len(out.leased) > 0:
                self._needs_claim -= claim_for
            for execution_id, count in out.queued.items():
                if count:
                    self._needs_claim.add(execution_id)
            for execution_id, when in out.timers:
                heapq.heappush(self._timers, (when, execution_id))
            for execution_id in out.started:
                self._scope.add(execution_id)
            for cmd in out.leased:
                self._submit(cmd)
            for future, value in futures:
                if isinstance(value, tuple) and value[0] == "event":
                    appended = [
                        e
                        for e in out.events
                        if e.execution_id == value[1] and e.event_type in value[2]
                    ]
                    if appended:
                        future.set_result(appended[-1])
                    else:
                        future.set_exception(UnknownExecution(f"no execution {value[1]}"))
                else:
                    future.set_result(value)
            if out.events:
                for listener in self._listeners:
                    try:
                        listener(out.events)
                    except Exception:
                        log.exception("event listener failed")
            for execution_id in out.finished:
                self._scope.discard(execution_id)
                self._needs_claim.discard(execution_id)
                self.orchestrator.forget(execution_id)
                with self._lock:
                    done = self._done.pop(execution_id, None)
                if done is not None:
                    done.set()
            for event in out.events:
                if event.event_type == "execution.paused":
                    # a paused execution costs rows, not memory: fold it again when it moves
                    self.orchestrator.forget(event.execution_id)
        else:
            for future, value in futures:
                future.set_result(value)
        if self.claim_any and now - self._last_reap > 5.0:
            self._last_reap = now
            for owner in self.store.lease_owners():
                if owner_is_dead(owner):  # a worker on this host died (kill -9): free its steps
                    self.store.release_owner(owner)
                    self._wake = True
        if now - self._last_heartbeat > self.lease_seconds / 3 and (
            self._in_flight or self.worker_id
        ):
            if self._in_flight:
                self.store.heartbeat(self.owner, now + self.lease_seconds)
            if self.worker_id is not None:
                self.store.worker_heartbeat(
                    self.worker_id, "draining" if self._draining else "running"
                )
            self._last_heartbeat = now

    def _submit(self, cmd: Command) -> None:
        self._in_flight += 1
        flow = self.orchestrator.flows.get(cmd.execution_id)
        playbook_file = _path_of(flow.source_file) if flow and flow.source_file else None
        self._executor.submit(self._run_command, cmd, playbook_file)

    def _run_command(self, cmd: Command, playbook_file: Path | None) -> None:
        try:
            signal = execute(
                cmd,
                processes=self.processes,
                home=self.home,
                playbook_file=playbook_file,
                credentials=self._credentials,
                similar=self._similar,
            )
        except BaseException as exc:  # never lose a report
            signal = Outcome(
                command=cmd, ok=False, error_type=type(exc).__name__, error_message=str(exc)
            )
        if isinstance(signal, Outcome):
            signal = dataclasses.replace(signal, actor=self.worker_id or self.owner)
        self._inbox.put(("signal", cmd.execution_id, signal))


@functools.lru_cache(maxsize=256)
def _path_of(source_file: str) -> Path:
    return Path(source_file)  # once per playbook file, not per step


def summarize(state: ExecutionState) -> dict[str, Any]:
    """The run summary: the same dict ``playloop run --json`` prints."""
    steps = {
        name: {
            "status": st.status,
            "attempts": st.attempts,
            "duration_ms": st.duration_ms,
            "result": st.result,
        }
        for name, st in state.steps.items()
    }
    summary: dict[str, Any] = {
        "execution_id": str(state.execution_id),
        "status": state.status,
        "playbook_path": state.playbook_path,
        "playbook_version": state.playbook_version,
        "steps": steps,
        "result": state.result,
        "events": state.event_count,
        "started_at": state.started_at,
        "ended_at": state.ended_at,
    }
    if state.parent_execution_id is not None:
        summary["parent_execution_id"] = str(state.parent_execution_id)
    if state.status == "failed":
        summary["error"] = {
            "step": state.failed_step,
            "type": state.error_type,
            "message": state.error_message,
        }
    return summary
