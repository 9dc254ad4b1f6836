"""The SQLite store: WAL, ``BEGIN IMMEDIATE``, a busy timeout, every table in ``noetl``.

The connection's main database is in memory; the playloop database file is attached as
``noetl``, so ``SELECT ... FROM noetl.event`` (the seed's query) runs as written and all
writes of one transaction land in one file, atomically.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from playloop.engine.commands import Command
from playloop.engine.events import Event, utcnow, validate
from playloop.store.base import (
    CatalogEntry,
    DuplicateEvent,
    ExecutionRow,
    ReadOnlyQuery,
    StoreError,
)
from playloop.store.queries import migrations, queries, sql_text

DIALECT = "sqlite"
BUSY_TIMEOUT_MS = 30_000


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def _loads(value: str | None) -> Any:
    return None if value is None else orjson.loads(value)


def _event_row(e: Event) -> tuple[Any, ...]:
    return (
        e.event_id,
        e.execution_id,
        e.seq,
        e.parent_execution_id,
        e.parent_event_id,
        e.playbook_path,
        e.playbook_version,
        e.event_type,
        e.step_name,
        e.status,
        e.attempt,
        e.iteration,
        e.duration_ms,
        e.error_type,
        e.error_message,
        _dumps(e.context),
        _dumps(e.result),
        _dumps(e.meta),
        e.actor,
        e.created_at,
    )


def _event_from_row(r: Sequence[Any]) -> Event:
    return Event(
        event_id=r[0],
        execution_id=r[1],
        seq=r[2],
        parent_execution_id=r[3],
        parent_event_id=r[4],
        playbook_path=r[5],
        playbook_version=r[6],
        event_type=r[7],
        step_name=r[8],
        status=r[9],
        attempt=r[10],
        iteration=r[11],
        duration_ms=r[12],
        error_type=r[13],
        error_message=r[14],
        context=_loads(r[15]),
        result=_loads(r[16]),
        meta=_loads(r[17]),
        actor=r[18],
        created_at=r[19],
    )


def _command_from_row(r: Sequence[Any]) -> Command:
    return Command(
        command_id=r[0],
        execution_id=r[1],
        kind=r[2],
        step=r[3],
        iteration=r[4],
        attempt=r[5],
        payload=_loads(r[6]) or {},
        not_before=r[7],
        pool=r[8],
        lease_owner=r[9],
        lease_expires_at=r[10],
        started_event_id=r[12],
        claims=r[11],
    )


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
        uri = "file:" + str(path.resolve()) + "?mode=ro"
        conn.execute("ATTACH DATABASE ? AS noetl", (uri,))
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
        all_migrations = migrations(DIALECT)
        if not exists:
            _run_script(conn, sql_text(DIALECT, "schema.sql"))
            for version, _, _ in all_migrations:
                conn.execute(q["record_schema_version"], (version, utcnow()))
                applied.append(version)
        else:
            for version, _, script in all_migrations:
                if version not in known:
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
    for statement in _split_statements(script):
        conn.execute(statement)


def _split_statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()


class SqliteStore:
    """One connection guarded by a lock; ``transaction()`` is ``BEGIN IMMEDIATE``."""

    dialect = DIALECT

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = connect(self.path)
        self._lock = threading.RLock()
        self._in_tx = False
        self._q = queries(DIALECT)
        migrate(self._conn)

    # --- transactions --------------------------------------------------------------

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

    # --- events --------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> None:
        for event in events:
            validate(event)
        with self.transaction():
            try:
                self._conn.executemany(self._q["insert_event"], [_event_row(e) for e in events])
            except sqlite3.IntegrityError as exc:
                first = events[0]
                raise DuplicateEvent(
                    f"execution {first.execution_id}: an event with one of seq "
                    f"{[e.seq for e in events]} is already stored ({exc})"
                ) from None

    def max_seq(self, execution_id: int) -> int:
        with self._lock:
            row = self._conn.execute(self._q["max_seq"], (execution_id,)).fetchone()
            return int(row[0])

    def read_events(self, execution_id: int, after_seq: int = 0) -> list[Event]:
        with self._lock:
            rows = self._conn.execute(self._q["events_after"], (execution_id, after_seq)).fetchall()
        return [_event_from_row(r) for r in rows]

    def upsert_execution(self, row: ExecutionRow) -> None:
        with self._lock:
            self._conn.execute(
                self._q["upsert_execution"],
                (
                    row.execution_id,
                    row.playbook_path,
                    row.playbook_version,
                    row.parent_execution_id,
                    row.status,
                    row.started_at,
                    row.ended_at,
                    row.last_seq,
                    row.error_message,
                ),
            )

    # --- commands ------------------------------------------------------------------

    def enqueue(self, commands: Sequence[Command]) -> None:
        now = utcnow()
        with self._lock:
            self._conn.executemany(
                self._q["insert_command"],
                [
                    (
                        c.command_id,
                        c.execution_id,
                        c.kind,
                        c.step,
                        c.iteration,
                        c.attempt,
                        _dumps(c.payload) if c.payload else None,
                        c.not_before,
                        c.pool,
                        c.lease_owner,
                        c.lease_expires_at,
                        1 if c.lease_owner else 0,
                        c.started_event_id,
                        now,
                    )
                    for c in commands
                ],
            )

    def complete(self, command_id: int, owner: str) -> bool:
        with self._lock:
            return (
                self._conn.execute(self._q["complete_command"], (command_id, owner)).rowcount == 1
            )

    def delete_command(self, command_id: int) -> None:
        with self._lock:
            self._conn.execute(self._q["delete_command"], (command_id,))

    def drop_commands(self, execution_id: int) -> None:
        with self._lock:
            self._conn.execute(self._q["drop_commands"], (execution_id,))

    def park(self, command_id: int, holder: str) -> None:
        with self._lock:
            self._conn.execute(self._q["park_command"], (holder, command_id))

    def claim(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        execution_id: int | None = None,
        pool: str | None = None,
    ) -> list[Command]:
        params = {
            "owner": owner,
            "lease_until": lease_until,
            "now": now,
            "limit": limit,
            "execution_id": execution_id,
            "pool": pool,
        }
        with self.transaction():
            rows = self._conn.execute(self._q["claim_commands"], params).fetchall()
        return [_command_from_row(r) for r in rows]

    def next_due(self, execution_id: int | None = None) -> float | None:
        with self._lock:
            row = self._conn.execute(self._q["next_due"], {"execution_id": execution_id}).fetchone()
        return None if row[0] is None else float(row[0])

    def heartbeat(self, owner: str, lease_until: float) -> None:
        with self.transaction():
            self._conn.execute(self._q["heartbeat"], (lease_until, owner))

    def lease_owners(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute(self._q["lease_owners"])]

    def release_owner(self, owner: str) -> None:
        with self.transaction():
            self._conn.execute(self._q["release_owner"], (owner,))

    def release_command(self, command_id: int, owner: str) -> None:
        with self.transaction():
            self._conn.execute(self._q["release_command"], (command_id, owner))

    def commands_of(self, execution_id: int) -> list[Command]:
        with self._lock:
            rows = self._conn.execute(self._q["commands_of_execution"], (execution_id,)).fetchall()
        return [_command_from_row(r) for r in rows]

    # --- executions ----------------------------------------------------------------

    def get_execution(self, execution_id: int) -> ExecutionRow | None:
        with self._lock:
            row = self._conn.execute(self._q["get_execution"], (execution_id,)).fetchone()
        return None if row is None else ExecutionRow(*row)

    def list_executions(
        self,
        status: str | None = None,
        playbook: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionRow]:
        params = {"status": status, "playbook": playbook, "limit": limit, "offset": offset}
        with self._lock:
            rows = self._conn.execute(self._q["list_executions"], params).fetchall()
        return [ExecutionRow(*r) for r in rows]

    def unfinished_executions(self) -> list[int]:
        with self._lock:
            return [r[0] for r in self._conn.execute(self._q["unfinished_executions"])]

    # --- catalog -------------------------------------------------------------------

    def catalog_register(
        self, path: str, content: str, content_hash: str, source_file: str | None
    ) -> CatalogEntry:
        from playloop.engine.events import new_id

        with self.transaction():
            row = self._conn.execute(self._q["catalog_by_hash"], (path, content_hash)).fetchone()
            if row is not None:
                return CatalogEntry(*row)
            version = int(
                self._conn.execute(self._q["catalog_next_version"], (path,)).fetchone()[0]
            )
            entry = CatalogEntry(
                new_id(), path, version, content_hash, source_file, utcnow(), content
            )
            self._conn.execute(
                self._q["catalog_insert"],
                (
                    entry.catalog_id,
                    path,
                    version,
                    content,
                    content_hash,
                    source_file,
                    entry.created_at,
                ),
            )
            return entry

    def catalog_get(self, path: str, version: int | None = None) -> CatalogEntry | None:
        with self._lock:
            row = self._conn.execute(self._q["catalog_get"], (path, version, version)).fetchone()
        if row is None:
            return None
        catalog_id, path_, version_, content, content_hash, source_file, created_at = row
        return CatalogEntry(
            catalog_id, path_, version_, content_hash, source_file, created_at, content
        )

    def catalog_list(self) -> list[CatalogEntry]:
        with self._lock:
            return [CatalogEntry(*r) for r in self._conn.execute(self._q["catalog_list"])]

    # --- ad-hoc SQL ----------------------------------------------------------------

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
