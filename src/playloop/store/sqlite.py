"""The SQLite store: WAL, ``BEGIN IMMEDIATE``, a busy timeout, every table in ``noetl``.

The connection's main database is in memory; the playloop database file is attached as
``noetl``, so ``SELECT ... FROM noetl.event`` (the seed's query) runs as written and all
writes of one transaction land in one file, atomically. SQLite has one writer at a time,
so ``BEGIN IMMEDIATE`` is also the per-execution lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playloop.engine.events import Event, utcnow
from playloop.store.base import DuplicateEvent, ReadOnlyQuery, StoreError
from playloop.store.queries import migrations, queries, sql_text
from playloop.store.sqlstore import Params, SqlStore, split_statements

DIALECT = "sqlite"
BUSY_TIMEOUT_MS = 30_000


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(
        ":memory:",
        isolation_level=None,
        check_same_thread=False,
        uri=True,
        timeout=BUSY_TIMEOUT_MS / 1000,
    )
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if readonly:
        conn.execute("ATTACH DATABASE ? AS noetl", ("file:" + str(path.resolve()) + "?mode=ro",))
        conn.execute("PRAGMA query_only = 1")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn.execute("ATTACH DATABASE ? AS noetl", (str(path),))
        conn.execute("PRAGMA noetl.journal_mode = WAL")
        conn.execute("PRAGMA noetl.synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the schema up to date; a fresh database gets ``schema.sql`` at once."""
    q = queries(DIALECT)
    applied: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        exists = conn.execute(
            "SELECT 1 FROM noetl.sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        known = {r[0] for r in conn.execute(q["schema_versions"])} if exists else set()
        for version, _, script in migrations(DIALECT):
            if version in known:
                continue
            if not exists and not applied:
                _run_script(conn, sql_text(DIALECT, "schema.sql"))
            elif exists:
                _run_script(conn, script)
            conn.execute(q["record_schema_version"], (version, utcnow()))
            applied.append(version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """Run a multi-statement script inside the current transaction (executescript commits)."""
    for statement in split_statements(script, sqlite3.complete_statement):
        conn.execute(statement)


class SqliteStore(SqlStore):
    """One connection guarded by a lock; ``transaction()`` is ``BEGIN IMMEDIATE``."""

    dialect = DIALECT

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.RLock()
        self._in_tx = False
        migrate(self._conn)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._in_tx:
                yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._in_tx = True
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._in_tx = False

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _fetch(self, name: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(self._q[name], params).fetchall()

    def _execute(self, name: str, params: Params = ()) -> int:
        with self._lock:
            return self._conn.execute(self._q[name], params).rowcount

    def _executemany(self, name: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self._conn.executemany(self._q[name], rows)

    def _insert_events(self, events: Sequence[Event]) -> None:
        try:
            self._executemany("insert_event", [self.event_row(e) for e in events])
        except sqlite3.IntegrityError as exc:
            first = events[0]
            raise DuplicateEvent(
                f"execution {first.execution_id}: an event with one of seq "
                f"{[e.seq for e in events]} is already stored ({exc})"
            ) from None

    def query(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run read-only SQL on a separate read-only connection."""
        return readonly_query(self.path, sql, params)


_READ_ACTIONS = {
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
}


def readonly_query(
    path: Path, sql: str, params: Sequence[Any] = ()
) -> tuple[list[str], list[tuple[Any, ...]]]:
    if not path.exists():
        raise StoreError(f"no playloop database at {path}")
    conn = connect(path, readonly=True)

    def authorize(action: int, *_: Any) -> int:
        return sqlite3.SQLITE_OK if action in _READ_ACTIONS else sqlite3.SQLITE_DENY

    conn.set_authorizer(authorize)
    try:
        cursor = conn.execute(sql, tuple(params))
        columns = [d[0] for d in cursor.description or ()]
        return columns, cursor.fetchall()
    except sqlite3.DatabaseError as exc:
        if "not authorized" in str(exc) or "readonly" in str(exc):
            raise ReadOnlyQuery(f"only read-only SQL may run here: {exc}") from None
        raise StoreError(f"SQL error: {exc}") from None
    finally:
        conn.close()
