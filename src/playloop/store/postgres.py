"""The PostgreSQL store: psycopg 3 with a connection pool, schema ``noetl``.

The same named queries as SQLite (``store/sql/postgres/queries.sql``). One execution is
decided under ``pg_advisory_xact_lock(execution_id)``, so two processes never advance it
at once; commands are claimed with ``FOR UPDATE SKIP LOCKED``; queuing a command sends
``NOTIFY playloop_commands`` so idle workers wake without polling.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from playloop.engine.events import Event
from playloop.store.base import DuplicateEvent, ReadOnlyQuery, StaleSignal, StoreError
from playloop.store.queries import migrations, queries, sql_text
from playloop.store.sqlstore import Params, SqlStore, split_statements

DIALECT = "postgres"
#: raised by noetl.expect_signal: the lease was lost, or another process appended
STALE_SQLSTATES = frozenset({"PL001", "PL002"})
#: advisory lock key serialising schema migrations across processes
MIGRATION_LOCK = 0x706C6179  # "play"


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Bring the schema up to date under an advisory lock; fresh databases get ``schema.sql``."""
    q = queries(DIALECT)
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        exists = conn.execute("SELECT to_regclass('noetl.schema_version') IS NOT NULL").fetchone()
        known = (
            {r[0] for r in conn.execute(q["schema_versions"]).fetchall()}
            if exists and exists[0]
            else set()
        )
        fresh = not (exists and exists[0])
        for version, _, script in migrations(DIALECT):
            if version in known:
                continue
            if fresh and not applied:
                _run_script(conn, sql_text(DIALECT, "schema.sql"))
            elif not fresh:
                _run_script(conn, script)
            conn.execute(q["record_schema_version"], (version,))
            applied.append(version)
    return applied


def _run_script(conn: psycopg.Connection[Any], script: str) -> None:
    for statement in split_statements(script):
        conn.execute(statement.encode())


class PostgresStore(SqlStore):
    dialect = DIALECT

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 8) -> None:
        super().__init__()
        self.dsn = dsn
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            open=True,
            # psycopg's own statement cache is off: it answers a ROLLBACK with DEALLOCATE ALL,
            # which would drop the statements the batches prepare (see _Prepared)
            kwargs={"autocommit": True, "prepare_threshold": None},
            name="playloop",
        )
        self._local = threading.local()
        with self.pool.connection() as conn:
            migrate(conn)

    # --- primitives ------------------------------------------------------------------
    #
    # Round trips are what a step costs here, so a transaction batches its statements:
    # statements whose results nobody reads are kept and sent with the next one that is
    # read (or with COMMIT), as one multi-statement simple query, each statement an
    # ``EXECUTE`` of a statement prepared on that connection (see _Prepared). ``BEGIN``
    # travels with the first statement. A chain step decided from cached state is one
    # round trip: ``BEGIN; SELECT noetl.expect_signal(...); INSERT ...; COMMIT``.

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Run this thread's transactions on one connection until the block ends.

        For the engine's loop thread, which commits every step: checking a connection out
        of the pool and back costs more than a tenth of a step's Python time. A broken
        connection (a database restart) is handed back to the pool and replaced.
        """
        self._local.pin = True
        try:
            yield
        finally:
            self._local.pin = False
            conn = getattr(self._local, "pinned", None)
            self._local.pinned = None
            if conn is not None:
                self.pool.putconn(conn)

    @contextmanager
    def _transaction_connection(self) -> Iterator[psycopg.Connection[Any]]:
        if not getattr(self._local, "pin", False):
            with self.pool.connection() as pooled:
                yield pooled
            return
        kept: psycopg.Connection[Any] | None = getattr(self._local, "pinned", None)
        if kept is None or kept.closed or kept.broken:
            self._local.pinned = None
            if kept is not None:
                self.pool.putconn(kept)
            kept = self._local.pinned = self.pool.getconn()
        yield kept

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "tx", None) is not None:
            yield
            return
        with self._transaction_connection() as conn:
            tx = _Batch(conn)
            self._local.tx = tx
            try:
                yield
                tx.commit()
            except BaseException:
                tx.rollback()
                raise
            finally:
                self._local.tx = None

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self.pool.connection() as pooled:
            yield pooled

    def _fetch(self, name: str, params: Params = ()) -> list[tuple[Any, ...]]:
        tx: _Batch | None = getattr(self._local, "tx", None)
        if tx is not None:
            return tx.run(self._q[name], params).fetchall()
        with self._connection() as conn:
            return conn.execute(self._q[name].encode(), params).fetchall()

    def _execute(self, name: str, params: Params = ()) -> int:
        tx: _Batch | None = getattr(self._local, "tx", None)
        if tx is not None:
            return tx.run(self._q[name], params).rowcount
        with self._connection() as conn:
            return conn.execute(self._q[name].encode(), params).rowcount

    def _send(self, name: str, params: Params = ()) -> None:
        tx: _Batch | None = getattr(self._local, "tx", None)
        if tx is not None:
            tx.defer(self._q[name], params)
            return
        with self._connection() as conn:
            conn.execute(self._q[name].encode(), params)

    def _executemany(self, name: str, rows: list[tuple[Any, ...]]) -> None:
        tx: _Batch | None = getattr(self._local, "tx", None)
        if tx is not None:
            for row in rows:
                tx.defer(self._q[name], row)
            return
        with self._connection() as conn, conn.cursor() as cur:
            cur.executemany(self._q[name].encode(), rows)

    def _insert_events(self, events: Sequence[Event]) -> None:
        # a duplicate (execution_id, seq) surfaces when the batch is sent: see _Batch
        self._executemany("insert_event", [self.event_row(e) for e in events])

    def _ts(self, value: Any) -> Any:
        return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else value

    def begin_signal(
        self, execution_id: int, command_id: int | None, owner: str | None
    ) -> tuple[bool, int]:
        row = self._fetch("begin_signal", (execution_id, command_id, owner))[0]
        return bool(row[0]), int(row[1])

    def begin_signals(
        self,
        execution_ids: Sequence[int],
        command_ids: Sequence[int],
        owner: str,
        since: Sequence[int],
    ) -> tuple[set[int], list[Event]]:
        """``begin_signal`` for a batch, in one round trip: complete ``command_ids`` where
        ``owner`` still holds them, lock ``execution_ids`` (ascending), and read their
        events after ``since`` (one per execution). Returns (completed command ids, the
        new events ordered by execution and seq)."""
        tx: _Batch | None = getattr(self._local, "tx", None)
        if tx is None:
            raise RuntimeError("begin_signals runs inside a transaction")
        accepted, rows = tx.run_two(
            (self._q["begin_signals"], (_int_array(execution_ids), _int_array(command_ids), owner)),
            (self._q["events_since"], (_int_array(execution_ids), _int_array(since))),
        )
        return set(accepted[0][0] or ()), [self.event_from_row(r) for r in rows]

    def expect_signal(
        self, execution_id: int, command_id: int | None, owner: str | None, last_seq: int
    ) -> bool:
        tx: _Batch | None = getattr(self._local, "tx", None)
        if tx is None:
            return False
        tx.defer(self._q["expect_signal"], (execution_id, command_id, owner, last_seq))
        return True

    def _json(self, value: Any) -> Any:
        return value  # psycopg decodes JSONB

    def close(self) -> None:
        self.pool.close()

    # --- ad-hoc SQL ----------------------------------------------------------------

    def query(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run SQL in a READ ONLY transaction (writes fail) with a statement timeout."""
        try:
            with self.pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION READ ONLY")
                conn.execute("SET LOCAL statement_timeout = 30000")
                cur = conn.execute(sql.encode(), tuple(params) or None)
                columns = [d.name for d in cur.description or ()]
                rows = (
                    [tuple(self._ts(v) for v in row) for row in cur.fetchall()]
                    if cur.description
                    else []
                )
                return columns, rows
        except psycopg.errors.ReadOnlySqlTransaction as exc:
            raise ReadOnlyQuery(
                f"only read-only SQL may run here: {exc.diag.message_primary}"
            ) from None
        except psycopg.Error as exc:
            raise StoreError(f"SQL error: {exc}") from None


class _Prepared:
    """Server-side prepared statements for the queries a transaction batch sends.

    A batch is one multi-statement simple query, and the simple protocol parses and plans
    every statement each time: for a chain step's four statements that was about a third
    of its round trip. ``PREPARE`` once per connection and ``EXECUTE name(...)`` afterwards
    keeps the single round trip and drops the planning (measured: 270 -> 180 us per step
    transaction). A query is prepared after a transaction that used it has committed, on the
    same connection, outside any transaction; one PostgreSQL cannot type (``could not
    determine data type of parameter``) stays plain text.
    """

    def __init__(self) -> None:
        self._names: dict[str, str | None] = {}  # query -> statement name, None: not preparable
        self._done: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[str]] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def name_on(self, conn: psycopg.Connection[Any], query: str) -> str | None:
        """The statement's name when ``query`` is prepared on ``conn``, else None."""
        name = self._names.get(query)
        if name is None or name not in self._done.get(conn, ()):
            return None
        return name

    def wanted(self, conn: psycopg.Connection[Any], query: str) -> bool:
        name = self._names.get(query, "")
        return name is not None and name not in self._done.get(conn, ())

    def forget(self, conn: psycopg.Connection[Any]) -> None:
        with self._lock:
            self._done.pop(conn, None)

    def prepare(self, conn: psycopg.Connection[Any], queries: Sequence[str]) -> None:
        with self._lock:
            done = self._done.setdefault(conn, set())
        for query in queries:
            if "%(" in query or "%%" in query or "%s" not in query:
                self._names[query] = None
                continue
            # named by content, so every thread and connection agrees on what a name means
            name = "playloop_" + hashlib.blake2b(query.encode(), digest_size=8).hexdigest()
            if name in done:
                continue
            parts = query.split("%s")
            text = "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]
            try:
                conn.execute(f"PREPARE {name} AS {text}".encode())
            except psycopg.errors.Error:
                if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
                    return  # the connection broke, or is in use: try again another time
                self._names[query] = None
                continue
            self._names[query] = name
            done.add(name)


PREPARED = _Prepared()


def _literals(params: Params) -> str | None:
    """``params`` as SQL literals, or None when one needs psycopg's own adaptation.

    ``ClientCursor.mogrify`` costs about 80 us for an event row, a sixth of a chain step's
    transaction; the engine binds only ints, floats, text (JSON is text here) and NULL,
    which quote simply. Text goes in an ``E''`` literal when it has a backslash, so the
    result does not depend on ``standard_conforming_strings``; text with a NUL byte (which
    PostgreSQL refuses, and which would cut a simple query short) goes to psycopg.
    """
    if not isinstance(params, tuple | list):
        return None
    out: list[str] = []
    for value in params:
        kind = type(value)
        if value is None:
            out.append("NULL")
        elif kind is str:
            if "\x00" in value:
                return None
            quoted = value.replace("'", "''")
            if "\\" in value:
                out.append("E'" + quoted.replace("\\", "\\\\") + "'")
            else:
                out.append("'" + quoted + "'")
        elif kind is int:
            out.append(str(value))
        elif kind is float and math.isfinite(value):
            out.append(repr(value))
        elif kind is bool:
            out.append("true" if value else "false")
        else:
            return None
    return ", ".join(out)


def _int_array(values: Sequence[int]) -> str:
    """An integer array as the text of its literal (``'{1,2}'``): binds as a plain string."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


class _Batch:
    """Statements of one transaction, sent in as few round trips as their reads allow."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.cursor = psycopg.ClientCursor(conn)
        self.pending: list[str] = ["BEGIN"]
        self.begun = False
        self.unprepared: list[str] = []

    def _bind(self, query: str, params: Params) -> str:
        name = PREPARED.name_on(self.conn, query)
        if name is not None:
            literals = _literals(params)
            if literals is not None:
                return f"EXECUTE {name}({literals})"
            return self.cursor.mogrify(f"EXECUTE {name}({', '.join(['%s'] * len(params))})", params)
        if PREPARED.wanted(self.conn, query):
            self.unprepared.append(query)
        return self.cursor.mogrify(query, params)

    def defer(self, query: str, params: Params) -> None:
        self.pending.append(self._bind(query, params))

    def run(self, query: str, params: Params) -> psycopg.ClientCursor[Any]:
        """Send what is pending and this statement; the cursor holds this one's result."""
        self.pending.append(self._bind(query, params))
        self._flush()
        return self.cursor

    def run_two(
        self, first: tuple[str, Params], second: tuple[str, Params]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Send what is pending and two statements; the rows of each."""
        self.pending.append(self._bind(*first))
        self.pending.append(self._bind(*second))
        results = self._flush(keep=2)
        return results[0], results[1]

    def commit(self) -> None:
        if self.begun or len(self.pending) > 1:
            self.pending.append("COMMIT")
            self._flush()
        if self.unprepared:
            PREPARED.prepare(self.conn, list(dict.fromkeys(self.unprepared)))

    def rollback(self) -> None:
        self.pending.clear()
        if self.begun and not self.conn.closed:
            # a broken connection needs nothing: the server rolls back on its own
            with contextlib.suppress(psycopg.Error):
                self.conn.execute(b"ROLLBACK")

    def _flush(self, keep: int = 0) -> list[list[tuple[Any, ...]]]:
        """Send the pending statements; the rows of the last ``keep`` (the caller reads
        the cursor for the last one when ``keep`` is 0)."""
        script = ";\n".join(self.pending)
        skip = len(self.pending) - keep
        self.pending = []
        self.begun = True
        kept: list[list[tuple[Any, ...]]] = []
        try:
            self.cursor.execute(script.encode())
            index = 0
            while True:
                if keep and index >= skip:
                    kept.append(self.cursor.fetchall())
                index += 1
                if not self.cursor.nextset():  # else the caller reads the last result
                    break
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.errors.InvalidSqlStatementName):
                PREPARED.forget(self.conn)  # someone ran DEALLOCATE: prepare them again
            if exc.sqlstate in STALE_SQLSTATES:
                raise StaleSignal(exc.diag.message_primary or "stale") from None
            if (
                isinstance(exc, psycopg.errors.UniqueViolation)
                and exc.diag.constraint_name == "event_execution_seq"
            ):
                raise DuplicateEvent(
                    f"an event with this (execution_id, seq) is already stored: {exc.diag.message_detail}"
                ) from None
            raise
        return kept
