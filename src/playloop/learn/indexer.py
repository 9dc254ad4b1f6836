"""The vector indexer: a checkpointed projection of the event log into the vector index.

It reads, after its checkpoint and in id order (ids are time-ordered), the events the index
needs: failures, their ``resolution.recorded`` events (a failure's point is rebuilt with its
resolutions) and ``decision.made``; and the catalog entries after its own checkpoint. Point
ids are deterministic (``playloop.learn.documents``), so a pass that runs twice writes the
same points; the vector layer's hash cache embeds each distinct text once.

Checkpoints are rows of ``noetl.projection`` named after the index they feed (its Qdrant
URL, or this host and home directory for the embedded index), so two homes on one database
each keep their own. Ids come from several processes, and a transaction can commit an id a
little older than one already committed: the stored checkpoint stays ``LAG_SECONDS`` behind
the newest id read, and each pass reads that window again (skipping what it has done).

Only one process writes an index at a time: it holds a claim (an ``flock`` on a file in the
home for the embedded index; with a Qdrant server, a PostgreSQL advisory lock, or an
``flock`` beside the SQLite database). Others read the index and leave the indexing to it.

``Indexer.start()`` runs passes in a daemon thread: woken by the engine when a batch it
committed holds a failure, a resolution or a decision (a check of event types, nothing
more, on the engine's loop), and every ``poll`` seconds for what other processes append;
passes begin at least ``gather`` seconds apart, so that a busy engine's failures are
indexed in batches, and beside an engine that runs steps (``engine_busy``), they wait for
a pause in its steps (``max_defer`` seconds at most).
The indexer has its own database connection, so the engine never waits for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from playloop.engine.events import Event, utcnow
from playloop.learn.documents import (
    DECISIONS,
    FAILURES,
    PLAYBOOKS,
    Doc,
    decision_doc,
    failure_doc,
    indexed_failure,
    outline,
    playbook_doc,
)
from playloop.learn.linking import as_int
from playloop.store.claims import Claim, FileClaim, claim_for
from playloop.store.generic import execute, fetch

if TYPE_CHECKING:
    from playloop.learn.vectors import VectorIndex
    from playloop.store.sqlstore import SqlStore

__all__ = ["COLLECTIONS", "RELEVANT", "Indexer", "Pass", "failure_document", "index_identity"]

log = logging.getLogger("playloop.learn")

COLLECTIONS = (FAILURES, PLAYBOOKS, DECISIONS)
#: event types a pass reads (failed loop items are ``loop.item`` with a failed status)
RELEVANT = frozenset(
    {
        "step.failed",
        "step.timed_out",
        "execution.failed",
        "resolution.recorded",
        "decision.made",
        "loop.item",
    }
)
#: how far the stored checkpoint stays behind the newest id read (late commits)
LAG_SECONDS = 5.0
#: the background passes begin at least this far apart: a busy engine's failures are
#: indexed a batch at a time (one read, one index write and flush, one checkpoint), not
#: a pass per committed batch, whose flushes slowed the engine's own steps threefold
GATHER_SECONDS = 0.5
#: a background pass waits until the engine beside it has run no step for this long...
IDLE_FOR = 0.2
#: ...or this long at most: embedding takes a core, and on two cores the steps' p99 felt it
MAX_DEFER_SECONDS = 10.0
BATCH = 256
_EPOCH_MS = 1_704_067_200_000  # engine.events._EPOCH_MS
_CLAIM_KEY = (0x706C6179, 0x696E6478)  # "play", "indx"


def id_at(seconds: float) -> int:
    """The smallest event id a process could number at this time (``engine.events``)."""
    return max(0, int(seconds * 1000) - _EPOCH_MS) << 22


def index_identity(home: Path) -> str:
    """Which index a checkpoint belongs to: the Qdrant server's URL, or this host's home."""
    url = os.environ.get("PLAYLOOP_QDRANT_URL")
    if url:
        return url.rstrip("/")
    return f"{socket.gethostname()}:{home.resolve()}"


@dataclass(slots=True)
class Pass:
    """What one pass (or a run of passes) did."""

    events: int = 0
    failures: int = 0
    resolutions: int = 0
    decisions: int = 0
    playbooks: int = 0
    caught_up: bool = True
    seconds: float = 0.0

    def add(self, other: Pass) -> None:
        self.events += other.events
        self.failures += other.failures
        self.resolutions += other.resolutions
        self.decisions += other.decisions
        self.playbooks += other.playbooks
        self.caught_up = other.caught_up
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "failures": self.failures,
            "resolutions": self.resolutions,
            "decisions": self.decisions,
            "playbooks": self.playbooks,
            "caught_up": self.caught_up,
            "seconds": round(self.seconds, 3),
        }


def failure_document(
    store: SqlStore, event: Event, tools: dict[tuple[str, str | None], dict[str, str]] | None = None
) -> Doc:
    """A failure event's point: with its resolutions, its step's tool (from the catalog
    version the execution ran) and the context of the attempt that failed."""
    resolutions = [
        store.event_from_row(r)
        for r in fetch(
            store,
            "index_failure_resolutions",
            {"execution_id": event.execution_id, "event_id": event.event_id},
        )
    ]
    if event.context is None and event.step_name:
        rows = fetch(
            store,
            "index_started_context",
            {"execution_id": event.execution_id, "step": event.step_name, "seq": event.seq},
        )
        if rows and rows[0][0] is not None:
            event.context = store._json(rows[0][0])
    tool = _tool(store, tools if tools is not None else {}, event)
    return failure_doc(event, tool=tool, resolutions=resolutions)


def _tool(
    store: SqlStore, cache: dict[tuple[str, str | None], dict[str, str]], event: Event
) -> str | None:
    if not event.step_name:
        return None
    key = (event.playbook_path, event.playbook_version)
    kinds = cache.get(key)
    if kinds is None:
        version = event.playbook_version
        entry = store.catalog_get(
            event.playbook_path, int(version) if version and version.isdigit() else None
        )
        kinds = {}
        if entry is not None and entry.content:
            kinds = {name: kind for name, kind, _ in outline(entry.content)[2]}
        if len(cache) > 1024:
            cache.clear()
        cache[key] = kinds
    return kinds.get(event.step_name) or None


class Indexer:
    """Projects one database's event log and catalog into one vector index.

    ``store`` should be the indexer's own (``open_store(url)``): a pass must never wait for
    the engine's connection, nor hold it. ``index`` is opened lazily when not given.
    """

    def __init__(
        self,
        store: SqlStore,
        home: Path,
        *,
        index: VectorIndex | None = None,
        index_factory: Callable[[], VectorIndex] | None = None,
        batch: int = BATCH,
        poll: float = 2.0,
        lag: float = LAG_SECONDS,
        gather: float = GATHER_SECONDS,
        engine_busy: Callable[[], float] | None = None,
        max_defer: float = MAX_DEFER_SECONDS,
    ) -> None:
        self.store = store
        self.home = Path(home)
        self.identity = index_identity(self.home)
        self.events_name = f"vectors.events@{self.identity}"
        self.catalog_name = f"vectors.catalog@{self.identity}"
        self.batch = batch
        self.poll = poll
        self.lag = lag
        self.gather = gather
        #: when the engine in this process last had steps running (``time.monotonic()``;
        #: now while it has): the background passes wait for a pause
        self.engine_busy = engine_busy
        self.max_defer = max_defer
        self._index = index
        self._index_factory = index_factory
        self._index_lock = threading.Lock()
        self._done: set[int] = set()  # ids handled after the checkpoint (the re-read window)
        self._tools: dict[tuple[str, str | None], dict[str, str]] = {}
        self._claim: Claim = self._make_claim()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._passing = threading.Lock()
        #: when the last pass ended, and with what (for ``status``); how many passes made
        self.last_pass: Pass | None = None
        self.passes = 0
        self.last_error: str | None = None

    # --- the index ---------------------------------------------------------------------

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    if self._index_factory is not None:
                        self._index = self._index_factory()
                    else:
                        from playloop.learn.vectors import VectorIndex

                        self._index = VectorIndex.open(self.home)
        return self._index

    def _make_claim(self) -> Claim:
        if not os.environ.get("PLAYLOOP_QDRANT_URL"):
            return FileClaim(self.home / "vectors.indexer.lock")
        return claim_for(self.store, "indexer", _CLAIM_KEY)

    def claim(self) -> bool:
        """Become the one process writing this index (False: another holds it)."""
        return self._claim.acquire()

    def release(self) -> None:
        self._claim.release()

    # --- checkpoints -------------------------------------------------------------------

    def _position(self, name: str) -> int:
        rows = fetch(self.store, "projection_get", {"name": name})
        return int(rows[0][1]) if rows else 0

    def _save(self, name: str, position: int, info: Mapping[str, Any] | None = None) -> None:
        execute(
            self.store,
            "projection_set",
            {
                "name": name,
                "position": position,
                "info": orjson.dumps(dict(info or {})).decode(),
                "updated_at": utcnow(),
            },
        )

    def checkpoints(self) -> dict[str, dict[str, Any]]:
        out = {}
        for name in (self.events_name, self.catalog_name):
            rows = fetch(self.store, "projection_get", {"name": name})
            if rows:
                _, position, info, updated_at = rows[0]
                out[name.partition("@")[0]] = {
                    "position": str(position),
                    "updated_at": str(updated_at),
                    "info": orjson.loads(info) if info else {},
                }
        return out

    def _read_up_to(self, name: str) -> int:
        """The newest id a pass has read: the checkpoint stays ``lag`` behind it, and what
        lies between was read (a pass reads it again only for late commits)."""
        rows = fetch(self.store, "projection_get", {"name": name})
        if not rows:
            return 0
        _, position, info, _ = rows[0]
        read = as_int((orjson.loads(info) if info else {}).get("read"))
        return max(int(position), read or 0)

    def pending(self) -> dict[str, int]:
        """How many events and catalog entries no pass has read yet."""
        events = fetch(
            self.store, "index_events_count", {"after": self._read_up_to(self.events_name)}
        )
        catalog = fetch(
            self.store, "index_catalog_count", {"after": self._position(self.catalog_name)}
        )
        return {"events": int(events[0][0]), "catalog": int(catalog[0][0])}

    # --- passes ------------------------------------------------------------------------

    def run_once(self, limit: int | None = None) -> Pass:
        """Index up to ``limit`` (default ``batch``) new events and catalog entries.

        The caller holds the claim (``claim()``); ``caught_up`` says whether anything is left.
        """
        with self._passing:
            started = time.perf_counter()
            limit = limit or self.batch
            done = Pass()
            self._catalog_pass(limit, done)
            self._events_pass(limit, done)
            done.seconds = time.perf_counter() - started
            self.last_pass = done
            self.passes += 1
            return done

    def catch_up(
        self, *, deadline: float | None = None, on_pass: Callable[[Pass], None] | None = None
    ) -> Pass:
        """Passes until nothing is left (or until ``deadline``, a ``time.monotonic()``)."""
        total = Pass()
        while True:
            one = self.run_once()
            total.add(one)
            if on_pass is not None:
                on_pass(one)
            if one.caught_up or (deadline is not None and time.monotonic() >= deadline):
                return total

    def rebuild(self, on_pass: Callable[[Pass], None] | None = None) -> Pass:
        """Drop the collections and the checkpoints, then index everything again."""
        with self._passing:
            for collection in COLLECTIONS:
                self.index.drop(collection)
            execute(self.store, "projection_delete", {"name": self.events_name})
            execute(self.store, "projection_delete", {"name": self.catalog_name})
            self._done.clear()
            self._tools.clear()
        return self.catch_up(on_pass=on_pass)

    def counts(self) -> dict[str, int]:
        return {c: int(self.index.count(c)) for c in COLLECTIONS}

    def _catalog_pass(self, limit: int, done: Pass) -> None:
        position = self._position(self.catalog_name)
        rows = fetch(self.store, "index_catalog_after", {"after": position, "limit": limit})
        if not rows:
            return
        docs: dict[int, Doc] = {}
        for catalog_id, path, version, content, source_file, created_at in rows:
            doc = playbook_doc(
                path=path,
                version=int(version),
                content=content,
                source_file=source_file,
                created_at=str(created_at),
            )
            docs[doc.id] = doc  # a later version of the same path replaces an earlier one
            position = int(catalog_id)
        self._upsert(PLAYBOOKS, docs.values())
        done.playbooks += len(docs)
        self._save(self.catalog_name, position, {"model": self._model()})
        if len(rows) >= limit:
            done.caught_up = False

    def _events_pass(self, limit: int, done: Pass) -> None:
        stored = self._position(self.events_name)
        horizon = id_at(time.time() - self.lag)
        cursor = stored
        failures: dict[int, Event] = {}
        refresh: set[int] = set()
        decisions: list[Event] = []
        handled: list[int] = []
        seen_rows = 0
        while True:
            rows = fetch(self.store, "index_events_after", {"after": cursor, "limit": limit})
            events = [self.store.event_from_row(r) for r in rows]
            for event in events:
                cursor = event.event_id
                if event.event_id in self._done:
                    continue
                seen_rows += 1
                handled.append(event.event_id)
                if event.event_type == "resolution.recorded":
                    failure = (event.meta or {}).get("failure")
                    failure_id = (
                        as_int(failure.get("event_id")) if isinstance(failure, dict) else None
                    )
                    if failure_id is not None:
                        refresh.add(failure_id)
                        done.resolutions += 1
                elif event.event_type == "decision.made":
                    decisions.append(event)
                elif indexed_failure(event):
                    failures[event.event_id] = event
            if len(rows) < limit:
                break
            if seen_rows >= limit:  # a bounded batch per pass
                done.caught_up = False
                break
        for failure_id in refresh - failures.keys():
            found = self._event(failure_id)
            if found is not None and indexed_failure(found):
                failures[failure_id] = found
        self._upsert(FAILURES, [self._failure_doc(e) for e in failures.values()])
        self._upsert(DECISIONS, [self._decision_doc(e) for e in decisions])
        done.failures += len(failures)
        done.decisions += len(decisions)
        done.events += seen_rows
        self._mark(handled)
        position = max(stored, min(cursor, horizon))
        self._forget(position)
        if position != stored or cursor > stored:
            self._save(self.events_name, position, {"model": self._model(), "read": str(cursor)})

    def _forget(self, floor: int) -> None:
        """Forget handled ids at or below the checkpoint (no pass reads them again)."""
        if self._done:
            self._done = {i for i in self._done if i > floor}

    def _mark(self, event_ids: Iterable[int]) -> None:
        self._done.update(event_ids)

    def _upsert(self, collection: str, docs: Iterable[Doc]) -> None:
        items = list(docs)
        if not items:
            return
        from playloop.learn.vectors import Item

        self.index.upsert(collection, [Item(d.id, d.text, d.payload) for d in items])

    def _model(self) -> str:
        embedder = getattr(self.index, "embedder", None)
        return str(getattr(embedder, "name", "") or "")

    # --- documents ---------------------------------------------------------------------

    def _event(self, event_id: int) -> Event | None:
        rows = fetch(self.store, "event_by_id", {"event_id": event_id})
        return self.store.event_from_row(rows[0]) if rows else None

    def _failure_doc(self, event: Event) -> Doc:
        return failure_document(self.store, event, self._tools)

    def _decision_doc(self, event: Event) -> Doc:
        decision_id = (event.meta or {}).get("decision_id")
        prompt = None
        if decision_id:
            rows = fetch(self.store, "index_decision_prompt", {"decision_id": str(decision_id)})
            prompt = rows[0][0] if rows else None
        return decision_doc(event, prompt=prompt)

    # --- in the background -------------------------------------------------------------

    def wake(self) -> None:
        """Make a pass soon (no sooner than ``gather`` after the last one began)."""
        self._wake.set()

    def notify(self, events: list[Event]) -> None:
        """An engine listener: wake the indexer when a batch holds something it indexes."""
        if any(event.event_type in RELEVANT for event in events):
            self.wake()

    def start(self) -> Indexer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="playloop-indexer", daemon=True)
            self._thread.start()
        return self

    def flush(self, timeout: float) -> bool:
        """Index what is committed now, for up to ``timeout`` seconds; True when caught up."""
        if not self.claim():
            return False
        deadline = time.monotonic() + timeout
        try:
            return self.catch_up(deadline=deadline).caught_up
        except Exception:
            log.exception("indexer: flush failed")
            return False

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def close(self) -> None:
        self.stop()
        self.release()
        if self._index is not None:
            with contextlib.suppress(Exception):
                self._index.close()
            self._index = None
        with contextlib.suppress(Exception):
            self.store.close()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            caught_up = True
            began = time.monotonic()
            try:
                if self.claim():
                    caught_up = self.run_once().caught_up
                    self.last_error = None
                failures = 0
            except Exception as exc:  # never let the thread die; retry with a pause
                failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("indexer pass failed: %s", self.last_error, exc_info=failures == 1)
                caught_up = True
            if caught_up:
                pause = self.poll if failures == 0 else min(30.0, self.poll * 2**failures)
                self._wake.wait(pause)
                self._wake.clear()
                rest = began + self.gather - time.monotonic()
                if rest > 0:  # woken soon after a pass: let the work gather
                    self._stop.wait(rest)
            self._yield_to_steps()

    def _yield_to_steps(self) -> None:
        """Before a pass, wait while the engine beside us runs steps: until it has run none
        for ``IDLE_FOR`` seconds, or for ``max_defer`` seconds at most (the index lags by
        that much under a steady load, and never more)."""
        if self.engine_busy is None:
            return
        due = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now - self.engine_busy() >= IDLE_FOR or now - due >= self.max_defer:
                return
            self._stop.wait(IDLE_FOR / 4)
