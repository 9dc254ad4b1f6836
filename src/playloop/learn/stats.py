"""Statistics from the event log: a projection with a checkpoint, refreshed incrementally.

``StatsCache`` folds the events after its checkpoint (the last event id it saw) into
running counters, then freezes them into a ``Snapshot`` that learned retries, learned
timeouts and suggestions read. The events come from one named query per dialect
(``learn_stats_events``), so SQLite and PostgreSQL give the same figures. A refresh reads
only what is new; ``maybe_refresh`` does so at most every ``max_age`` seconds, so nothing
reads the log on the step hot path.

Event ids are time-ordered, but two processes may commit out of id order: each refresh
re-reads a short window before the checkpoint and skips ids it has folded already.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from playloop.engine.events import Event
from playloop.learn.errors import classify
from playloop.learn.snapshot import (
    ClassStats,
    Durations,
    GroupStats,
    Snapshot,
    StepStats,
    quantile_table,
)
from playloop.store.base import EventStore
from playloop.store.generic import fetch

__all__ = ["StatsCache", "build_snapshot", "error_class_of"]

log = logging.getLogger(__name__)

#: durations kept per step (the newest), for quantiles
SAMPLES = 2000
#: events read per query while refreshing
PAGE = 5000
#: how far before the checkpoint a refresh looks again (late commits), in event-id units
LAG_IDS = 5_000 << 22  # 5 seconds
#: default seconds between refreshes (``$PLAYLOOP_STATS_MAX_AGE``)
DEFAULT_MAX_AGE = 30.0

_FAILURES = ("step.failed", "step.timed_out")
_ITEM_FAILED = ("failed", "timed_out")


def error_class_of(event: Event) -> str:
    """A failure event's class: recorded (``meta.error_class``) or derived (old histories)."""
    meta = event.meta or {}
    recorded = meta.get("error_class")
    if isinstance(recorded, str) and recorded:
        return recorded
    details = meta.get("details")
    return classify(
        event.error_type,
        event.error_message,
        details if isinstance(details, dict) else None,
        timed_out=event.status == "timed_out" or event.event_type == "step.timed_out",
    )


def _ts(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return 0.0


@dataclass(slots=True)
class _Class:
    failures: int = 0
    retried: int = 0
    successes: int = 0
    by_attempt: dict[int, list[int]] = field(default_factory=dict)
    recovery: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    retry_after: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))

    def outcome(self, attempt: int, ok: bool) -> None:
        self.retried += 1
        pair = self.by_attempt.setdefault(attempt, [0, 0])
        pair[0] += 1
        if ok:
            self.successes += 1
            pair[1] += 1

    def freeze(self) -> ClassStats:
        after = sorted(self.retry_after)
        recovered = list(self.recovery)
        return ClassStats(
            failures=self.failures,
            retried=self.retried,
            retry_successes=self.successes,
            by_attempt={k: (v[0], v[1]) for k, v in sorted(self.by_attempt.items())},
            recovery=Durations.of(recovered),
            retry_after_p50=after[len(after) // 2] if after else None,
            recovery_table=quantile_table(recovered),
        )


@dataclass(slots=True)
class _Step:
    runs: int = 0
    completed: int = 0
    failed: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    timed_out: int = 0
    loop: bool = False
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    classes: dict[str, _Class] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    feedback: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Group:
    total: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=SAMPLES))
    classes: dict[str, int] = field(default_factory=dict)
    feedback: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Pending:
    """A failed attempt waiting for the next attempt's outcome."""

    playbook: str
    step: str
    error_class: str
    attempt: int
    first_failure: float
    retry_after: float | None = None


class _Fold:
    """The running counters; ``apply`` one event at a time, ``freeze`` into a snapshot."""

    def __init__(self) -> None:
        self.steps: dict[tuple[str, str], _Step] = {}
        self.playbooks: dict[str, _Group] = {}
        self.tools: dict[str, _Group] = {}
        self.classes: dict[str, _Class] = {}
        self.started: dict[int, float] = {}
        self.pending: dict[tuple[int, str, int | None], _Pending] = {}
        self.by_execution: dict[int, set[tuple[int, str, int | None]]] = {}
        self.events = 0

    def step(self, playbook: str, name: str) -> _Step:
        found = self.steps.get((playbook, name))
        if found is None:
            found = self.steps[(playbook, name)] = _Step()
        return found

    def apply(self, e: Event) -> None:
        self.events += 1
        kind = e.event_type
        if kind == "execution.started":
            self.started[e.execution_id] = _ts(e.created_at)
            self.playbooks.setdefault(e.playbook_path, _Group()).total += 1
        elif kind in ("execution.finished", "execution.failed", "execution.cancelled"):
            self._execution_ended(e)
        elif kind == "step.finished" and e.step_name:
            st = self.step(e.playbook_path, e.step_name)
            st.runs += 1
            st.completed += 1
            if e.duration_ms is not None:
                st.durations.append(float(e.duration_ms))
            if not st.loop:
                st.attempts += 1
            self._outcome(e, None, ok=True)
        elif kind in _FAILURES and e.step_name:
            st = self.step(e.playbook_path, e.step_name)
            if e.iteration is None:  # a loop's final failure was counted as its item
                st.attempts += 1
                st.failed_attempts += 1
                st.timed_out += kind == "step.timed_out"
                self._failure(e, None)
        elif kind == "step.retrying" and e.step_name:
            key = (e.execution_id, e.step_name, e.iteration)
            pending = self.pending.get(key)
            after = (e.meta or {}).get("retry_after")
            if pending is not None and isinstance(after, int | float):
                pending.retry_after = float(after)
        elif kind == "loop.item" and e.step_name:
            st = self.step(e.playbook_path, e.step_name)
            st.loop = True
            if e.status == "completed":
                st.attempts += 1
                self._outcome(e, e.iteration, ok=True)
            elif e.status in _ITEM_FAILED:
                st.attempts += 1
                st.failed_attempts += 1
                st.timed_out += e.status == "timed_out"
                self._failure(e, e.iteration)
        elif kind == "decision.made" and e.step_name:
            action = str((e.meta or {}).get("action") or "?")
            decisions = self.step(e.playbook_path, e.step_name).decisions
            decisions[action] = decisions.get(action, 0) + 1
        elif kind == "feedback.received":
            label = str((e.meta or {}).get("label") or "?")
            if e.step_name:
                fb = self.step(e.playbook_path, e.step_name).feedback
                fb[label] = fb.get(label, 0) + 1
            group = self.playbooks.setdefault(e.playbook_path, _Group())
            group.feedback[label] = group.feedback.get(label, 0) + 1

    def _failure(self, e: Event, iteration: int | None) -> None:
        assert e.step_name is not None
        error_class = error_class_of(e)
        st = self.step(e.playbook_path, e.step_name)
        st.classes.setdefault(error_class, _Class()).failures += 1
        self.classes.setdefault(error_class, _Class()).failures += 1
        group = self.playbooks.setdefault(e.playbook_path, _Group())
        group.classes[error_class] = group.classes.get(error_class, 0) + 1
        key = (e.execution_id, e.step_name, iteration)
        previous = self.pending.get(key)
        if previous is not None and e.attempt is not None and e.attempt == previous.attempt + 1:
            self._record(previous, e.attempt, ok=False, at=_ts(e.created_at))
        if previous is not None and previous.attempt == e.attempt:
            return  # the loop's final step.failed repeats its item's failure
        first = previous.first_failure if previous is not None else _ts(e.created_at)
        self.pending[key] = _Pending(
            e.playbook_path, e.step_name, error_class, e.attempt or 1, first
        )
        self.by_execution.setdefault(e.execution_id, set()).add(key)

    def _outcome(self, e: Event, iteration: int | None, *, ok: bool) -> None:
        assert e.step_name is not None
        key = (e.execution_id, e.step_name, iteration)
        previous = self.pending.pop(key, None)
        if previous is not None and e.attempt is not None and e.attempt == previous.attempt + 1:
            # recovered when the attempt that succeeded began: its own run time is not part
            # of the wait a retry needs
            began = _ts(e.created_at) - (e.duration_ms or 0) / 1000
            self._record(previous, e.attempt, ok=ok, at=began)

    def _record(self, p: _Pending, attempt: int, *, ok: bool, at: float) -> None:
        for target in (
            self.step(p.playbook, p.step).classes.setdefault(p.error_class, _Class()),
            self.classes.setdefault(p.error_class, _Class()),
        ):
            target.outcome(attempt, ok)
            if ok:
                target.recovery.append(max(0.0, (at - p.first_failure) * 1000))
            if p.retry_after is not None:
                target.retry_after.append(p.retry_after)

    def _execution_ended(self, e: Event) -> None:
        group = self.playbooks.setdefault(e.playbook_path, _Group())
        started = self.started.pop(e.execution_id, None)
        if e.event_type == "execution.finished":
            group.completed += 1
            if started is not None:
                group.durations.append(max(0.0, (_ts(e.created_at) - started) * 1000))
        elif e.event_type == "execution.failed":
            group.failed += 1
            if e.step_name:
                st = self.step(e.playbook_path, e.step_name)
                st.runs += 1
                st.failed += 1
        else:
            group.cancelled += 1
        for key in self.by_execution.pop(e.execution_id, ()):
            self.pending.pop(key, None)

    def freeze(self, checkpoint: int, tools: dict[tuple[str, str], str]) -> Snapshot:
        steps: dict[tuple[str, str], StepStats] = {}
        by_tool: dict[str, _Group] = {}
        for (playbook, name), st in self.steps.items():
            tool = tools.get((playbook, name))
            steps[(playbook, name)] = StepStats(
                playbook=playbook,
                step=name,
                tool=tool,
                runs=st.runs,
                completed=st.completed,
                failed=st.failed,
                attempts=st.attempts,
                failed_attempts=st.failed_attempts,
                timed_out=st.timed_out,
                durations=Durations.of(list(st.durations)),
                classes={k: c.freeze() for k, c in st.classes.items()},
                decisions=dict(st.decisions),
                feedback=dict(st.feedback),
            )
            if tool is not None:
                group = by_tool.setdefault(tool, _Group())
                group.total += st.attempts
                group.completed += st.attempts - st.failed_attempts
                group.failed += st.failed_attempts
                group.durations.extend(st.durations)
                for k, c in st.classes.items():
                    group.classes[k] = group.classes.get(k, 0) + c.failures
        return Snapshot(
            checkpoint=checkpoint,
            built_at=time.time(),
            events=self.events,
            steps=steps,
            playbooks={k: _group(k, g) for k, g in self.playbooks.items()},
            tools={k: _group(k, g) for k, g in by_tool.items()},
            classes={k: c.freeze() for k, c in self.classes.items()},
        )


def _group(name: str, g: _Group) -> GroupStats:
    return GroupStats(
        name=name,
        total=g.total,
        completed=g.completed,
        failed=g.failed,
        cancelled=g.cancelled,
        durations=Durations.of(list(g.durations)),
        classes=dict(g.classes),
        feedback=dict(g.feedback),
    )


class StatsCache:
    """The statistics of one store, refreshed incrementally from a checkpoint.

    ``snapshot()`` never reads the store; ``refresh()`` folds what is new since the last
    one; ``maybe_refresh()`` refreshes when the snapshot is older than ``max_age`` seconds.
    Thread-safe.
    """

    def __init__(self, store: EventStore, *, max_age: float | None = None) -> None:
        self.store = store
        if max_age is None:
            max_age = float(os.environ.get("PLAYLOOP_STATS_MAX_AGE") or DEFAULT_MAX_AGE)
        self.max_age = max_age
        self._fold = _Fold()
        self._checkpoint = 0
        self._recent: dict[int, None] = {}
        self._snapshot = Snapshot()
        self._refreshed = 0.0
        self._tools: dict[tuple[str, str], str] = {}
        self._tools_known: set[str] = set()
        self._lock = threading.Lock()

    @property
    def checkpoint(self) -> int:
        return self._checkpoint

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def maybe_refresh(self, now: float | None = None) -> Snapshot:
        now = time.monotonic() if now is None else now
        if now - self._refreshed >= self.max_age:
            return self.refresh()
        return self._snapshot

    def refresh_in_background(self, now: float | None = None) -> None:
        """Start a refresh on a daemon thread when the snapshot is stale and none runs.

        The engine's loop calls this: the first refresh of a long history reads all of it,
        and the loop must not wait for that (decisions use the previous snapshot, and the
        conservative defaults before the first one).
        """
        now = time.monotonic() if now is None else now
        if now - self._refreshed < self.max_age or self._lock.locked():
            return
        self._refreshed = now
        threading.Thread(target=self._refresh_quietly, name="playloop-stats", daemon=True).start()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception:  # a store hiccup: the next stale check tries again
            log.warning("statistics refresh failed", exc_info=True)

    def refresh(self) -> Snapshot:
        """Fold every event after the checkpoint and freeze a new snapshot."""
        with self._lock:
            self._refreshed = time.monotonic()
            changed = False
            after = max(0, self._checkpoint - LAG_IDS)
            while True:
                rows = fetch(self.store, "learn_stats_events", {"after": after, "limit": PAGE})
                for row in rows:
                    event = self.store.event_from_row(row)  # type: ignore[attr-defined]
                    after = event.event_id
                    if event.event_id in self._recent or (
                        event.event_id <= self._checkpoint - LAG_IDS
                    ):
                        continue
                    self._recent[event.event_id] = None
                    self._fold.apply(event)
                    self._checkpoint = max(self._checkpoint, event.event_id)
                    changed = True
                if len(rows) < PAGE:
                    break
            floor = self._checkpoint - LAG_IDS
            self._recent = {k: None for k in self._recent if k > floor}
            if changed or not self._snapshot.built_at:
                self._learn_tools()
                self._snapshot = self._fold.freeze(self._checkpoint, self._tools)
            return self._snapshot

    def _learn_tools(self) -> None:
        """Each step's tool kind, from the playbook in the catalog (the events name none)."""
        from playloop.dsl.errors import PlaybookError
        from playloop.dsl.load import load_text

        for playbook, step in self._fold.steps:
            if (playbook, step) in self._tools or playbook in self._tools_known:
                continue
            self._tools_known.add(playbook)
            try:
                entry = self.store.catalog_get(playbook)
            except Exception:
                entry = None
            if entry is None or not entry.content:
                continue
            try:
                flow = load_text(entry.content, playbook)
            except PlaybookError:
                continue
            for name, flow_step in flow.steps.items():
                self._tools[(playbook, name)] = flow_step.tool.kind


def build_snapshot(store: EventStore) -> Snapshot:
    """The statistics of the whole log, from scratch."""
    return StatsCache(store, max_age=0).refresh()


def describe(snapshot: Snapshot) -> dict[str, Any]:
    return snapshot.to_dict()
