"""Record resolutions wherever executions end: a background pass beside an engine's loop.

``ResolutionRecorder.attach(engine)`` listens to the engine's committed events; each
execution that ended in that engine (``execution.finished|failed|cancelled``) is queued and,
on a thread of its own, handed to ``record_resolutions``: the step hot path only filters
the batch's event types. The server and the workers attach one (``Engine(...,
record_resolutions=True)``), so a failure is linked to what fixed it without anyone running
``playloop run`` or ``playloop failures``.

Each resolution is recorded at most once, even by two processes at the same instant:
``record_resolutions`` runs under ``exclusive``, a lock over every process of one database
(a PostgreSQL advisory lock; on SQLite a file lock beside the database file), and reads what
is recorded after taking it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from playloop.engine.events import TERMINAL_EXECUTION, Event
from playloop.learn.linking import is_failure

if TYPE_CHECKING:
    from playloop.runtime import Engine

log = logging.getLogger("playloop.learn")

#: seconds a playbook seen with no open failure is not asked again
QUIET_FOR = 5.0
#: executions with a failure seen here, at most (see ``on_events``)
MAX_TRACKED = 10_000
#: the advisory lock key of resolution recording ("resolv")
LOCK_KEY = 0x7265736F6C76
_local = threading.Lock()


@contextlib.contextmanager
def exclusive(engine: Engine) -> Iterator[None]:
    """Hold the resolution-recording lock of ``engine``'s database (and of this process)."""
    from playloop.store.postgres import PostgresStore
    from playloop.store.sqlite import SqliteStore

    with _local:
        store = engine.store
        if isinstance(store, PostgresStore):
            with store.pool.connection() as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
                try:
                    yield
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        elif isinstance(store, SqliteStore) and str(store.path) != ":memory:":
            lock_file = store.path.with_name(store.path.name + ".resolutions.lock")
            with lock_file.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        else:
            yield


class ResolutionRecorder:
    """Records the resolutions of the executions an engine ends, off the engine's loop."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: (execution id, playbook, whether a failure of it was seen here), None: stop
        self._queue: queue.SimpleQueue[tuple[int, str, bool] | None] = queue.SimpleQueue()
        #: executions with a failure event committed by this engine, until they end
        self._failed: set[int] = set()
        #: playbook -> when it was last seen with no open failure (time.monotonic())
        self._quiet: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._stopping = False

    @classmethod
    def attach(cls, engine: Engine) -> ResolutionRecorder:
        recorder = cls(engine)
        engine.subscribe(recorder.on_events)
        return recorder

    def on_events(self, events: list[Event]) -> None:
        """An engine listener (on its loop thread): queue the executions that ended."""
        for event in events:
            if is_failure(event):
                if len(self._failed) >= MAX_TRACKED:
                    # executions another process ends never leave it; forgetting is safe:
                    # their failures are open, and the open-failure check finds them
                    self._failed.clear()
                self._failed.add(event.execution_id)
            if event.event_type in TERMINAL_EXECUTION and not self._stopping:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="playloop-resolutions", daemon=True
                    )
                    self._thread.start()
                failed = event.execution_id in self._failed
                self._failed.discard(event.execution_id)
                self._queue.put((event.execution_id, event.playbook_path, failed))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the execution being recorded (those still queued are left: a later
        run, or ``playloop failures``, links them)."""
        self._stopping = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 256:
                    batch.append(self._queue.get_nowait())
            ended = [item for item in batch if item is not None]
            try:
                self._record(ended)
            except Exception:  # a database outage: the next run or `playloop failures` catches up
                log.warning("could not record resolutions", exc_info=True)
            if None in batch or self._stopping:
                return

    def _record(self, ended: list[tuple[int, str, bool]]) -> None:
        """Most executions end with nothing to link: no failure of their own (none seen here,
        and none open for their playbook, which also covers failures other processes
        committed), and no earlier failure their success could resolve. Those are skipped
        after one query per playbook every ``QUIET_FOR`` seconds, instead of a full pass
        each. A failure another process commits within that window is linked by the next
        run of its playbook that ends here after it (its pass looks for the first success
        after each open failure), or by ``playloop failures``."""
        from playloop.learn.queries import open_failures
        from playloop.learn.resolutions import record_resolutions

        now = time.monotonic()
        for execution_id, playbook, failed in ended:
            if self._stopping:
                return
            if failed:
                self._quiet.pop(playbook, None)
            else:
                checked = self._quiet.get(playbook)
                if checked is not None and now - checked < QUIET_FOR:
                    continue
                if not open_failures(self.engine.store, playbook=playbook, limit=1):
                    self._quiet[playbook] = now
                    continue
                self._quiet.pop(playbook, None)
            try:
                record_resolutions(self.engine, execution_id)
            except Exception:
                log.warning("could not record the resolutions of %s", execution_id, exc_info=True)
