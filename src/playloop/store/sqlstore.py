"""The store's logic over named queries, shared by SQLite and PostgreSQL.

A dialect subclass supplies a handful of primitives (``transaction``, ``_fetch``,
``_execute``, ``_executemany``) and value conversions (JSON and timestamp columns); this
class knows events, commands, executions, workers and the catalog, never playbooks.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson

from playloop.engine.commands import Command
from playloop.engine.events import Event, new_id, utcnow, validate
from playloop.store.base import CatalogEntry, ExecutionRow, subject_for
from playloop.store.queries import queries

Params = Sequence[Any] | Mapping[str, Any]


def dumps(value: Any) -> str | None:
    if value is None:
        return None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=str).decode()


def loads(value: Any) -> Any:
    """A JSON column stored as text (SQLite)."""
    return None if value is None else orjson.loads(value)


@dataclass(frozen=True, slots=True)
class WorkerRow:
    worker_id: str
    pool: str | None
    hostname: str
    pid: int
    concurrency: int
    status: str
    started_at: str
    heartbeat_at: float


class SqlStore:
    dialect: str = ""

    def __init__(self) -> None:
        self._q = queries(self.dialect)
        #: write every appended event to ``noetl.outbox`` too (for NATS publishing)
        self.outbox_enabled = bool(os.environ.get("PLAYLOOP_NATS_URL"))

    # --- primitives (dialect) ----------------------------------------------------------

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def pinned(self) -> AbstractContextManager[None]:
        """This thread's transactions keep one connection (a no-op where there is one)."""
        return contextlib.nullcontext()

    def _fetch(self, name: str, params: Params = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _execute(self, name: str, params: Params = ()) -> int:
        raise NotImplementedError

    def _executemany(self, name: str, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _send(self, name: str, params: Params = ()) -> None:
        """A statement whose row count nobody reads (PostgreSQL pipelines it)."""
        self._execute(name, params)

    def _insert_events(self, events: Sequence[Event]) -> None:
        raise NotImplementedError

    def _ts(self, value: Any) -> Any:
        """A timestamp column's value as the ISO string events carry."""
        return value

    def _json(self, value: Any) -> Any:
        """A JSON column's value (SQLite: text to decode; PostgreSQL's JSONB: decoded)."""
        return loads(value)

    def close(self) -> None:
        raise NotImplementedError

    # --- events ------------------------------------------------------------------------

    def event_row(self, e: Event) -> tuple[Any, ...]:
        return (
            e.event_id, e.execution_id, e.seq, e.parent_execution_id, e.parent_event_id,
            e.playbook_path, e.playbook_version, e.event_type, e.step_name, e.status, e.attempt,
            e.iteration, e.duration_ms, e.error_type, e.error_message, dumps(e.context),
            dumps(e.result), dumps(e.meta), e.actor, e.created_at,
        )  # fmt: skip

    def event_from_row(self, r: Sequence[Any]) -> Event:
        return Event(
            event_id=r[0], execution_id=r[1], seq=r[2], parent_execution_id=r[3],
            parent_event_id=r[4], playbook_path=r[5], playbook_version=r[6], event_type=r[7],
            step_name=r[8], status=r[9], attempt=r[10], iteration=r[11], duration_ms=r[12],
            error_type=r[13], error_message=r[14], context=self._json(r[15]), result=self._json(r[16]),
            meta=self._json(r[17]), actor=r[18], created_at=self._ts(r[19]),
        )  # fmt: skip

    def append(self, events: Sequence[Event]) -> None:
        """Insert events (and, with the outbox on, their NATS messages) in one transaction."""
        if not events:
            return
        for event in events:
            validate(event)
        with self.transaction():
            self._insert_events(events)
            if self.outbox_enabled:
                self._executemany("insert_outbox", [outbox_row(e) for e in events])

    def lock_execution(self, execution_id: int) -> int:
        """Lock the execution for this transaction; return its last stored ``seq``."""
        return int(self._fetch("lock_execution", (execution_id,))[0][0])

    def begin_signal(
        self, execution_id: int, command_id: int | None, owner: str | None
    ) -> tuple[bool, int]:
        """Start handling a signal: complete its command (only if ``owner`` still holds it,
        when given), lock the execution, and return (accepted, last stored seq)."""
        if command_id is not None:
            if owner is not None:
                if not self.complete(command_id, owner):
                    return False, 0
            else:
                self.delete_command(command_id)
        return True, self.lock_execution(execution_id)

    def begin_signals(
        self,
        execution_ids: Sequence[int],
        command_ids: Sequence[int],
        owner: str,
        since: Sequence[int],
    ) -> tuple[set[int], list[Event]] | None:
        """``begin_signal`` for a batch of reports in one round trip: complete the commands
        ``owner`` still holds, lock the executions, read their events after ``since``.
        None: not here (each report begins on its own)."""
        return None

    def expect_signal(
        self, execution_id: int, command_id: int | None, owner: str | None, last_seq: int
    ) -> bool:
        """Defer ``begin_signal``'s checks to commit, expecting ``last_seq``; False: not here."""
        return False

    def allocate_node(self) -> int:
        """The next node number for this process's ids (``engine.events.adopt_node``)."""
        with self.transaction():
            return int(self._fetch("allocate_node")[0][0])

    def max_seq(self, execution_id: int) -> int:
        return int(self._fetch("max_seq", (execution_id,))[0][0])

    def read_events(self, execution_id: int, after_seq: int = 0) -> list[Event]:
        return [
            self.event_from_row(r) for r in self._fetch("events_after", (execution_id, after_seq))
        ]

    def upsert_execution(self, row: ExecutionRow) -> None:
        self._send(
            "upsert_execution",
            (row.execution_id, row.playbook_path, row.playbook_version, row.parent_execution_id,
             row.status, row.started_at, row.ended_at, row.last_seq, row.error_message),
        )  # fmt: skip
        if row.status not in ("running", "paused"):
            self._send("notify_execution_ended", (str(row.execution_id),))

    def _execution(self, r: Sequence[Any]) -> ExecutionRow:
        return ExecutionRow(
            r[0], r[1], r[2], r[3], r[4], self._ts(r[5]), self._ts(r[6]), r[7], r[8]
        )

    def get_execution(self, execution_id: int) -> ExecutionRow | None:
        rows = self._fetch("get_execution", (execution_id,))
        return self._execution(rows[0]) if rows else None

    def list_executions(
        self,
        status: str | None = None,
        playbook: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionRow]:
        params = {"status": status, "playbook": playbook, "limit": limit, "offset": offset}
        return [self._execution(r) for r in self._fetch("list_executions", params)]

    # --- commands ----------------------------------------------------------------------

    def _command(self, r: Sequence[Any]) -> Command:
        return Command(
            command_id=r[0], execution_id=r[1], kind=r[2], step=r[3], iteration=r[4],
            attempt=r[5], payload=self._json(r[6]) or {}, not_before=r[7], pool=r[8],
            lease_owner=r[9], lease_expires_at=r[10], claims=r[11], started_event_id=r[12],
        )  # fmt: skip

    def enqueue(self, commands: Sequence[Command]) -> None:
        if not commands:
            return
        now = utcnow()
        self._executemany(
            "insert_command",
            [
                (c.command_id, c.execution_id, c.kind, c.step, c.iteration, c.attempt,
                 dumps(c.payload) if c.payload else None, c.not_before, c.pool, c.lease_owner,
                 c.lease_expires_at, 1 if c.lease_owner else 0, c.started_event_id, now)
                for c in commands
            ],
        )  # fmt: skip
        pools = {c.pool or "default" for c in commands if c.lease_owner is None}
        for pool in sorted(pools):
            self._fetch("notify_commands", (pool,))

    def complete(self, command_id: int, owner: str) -> bool:
        return self._execute("complete_command", (command_id, owner)) == 1

    def delete_command(self, command_id: int) -> None:
        self._send("delete_command", (command_id,))

    def drop_commands(self, execution_id: int) -> None:
        self._send("drop_commands", (execution_id,))

    def drop_decision_commands(self, execution_id: int, step: str) -> None:
        """A decided step's leftover deadline, reminder, escalation and notify commands."""
        self._send("drop_decision_commands", (execution_id, step))

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
            "owner": owner, "lease_until": lease_until, "now": now, "limit": limit,
            "execution_id": execution_id, "pool": pool,
        }  # fmt: skip
        with self.transaction():
            return [self._command(r) for r in self._fetch("claim_commands", params)]

    def claim_in(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        execution_ids: Sequence[int],
        pool: str | None = None,
    ) -> list[Command]:
        """``claim`` for many executions in one query (an engine's own executions)."""
        params = {
            "owner": owner, "lease_until": lease_until, "now": now, "limit": limit,
            "execution_ids": dumps(list(execution_ids)), "pool": pool,
        }  # fmt: skip
        with self.transaction():
            return [self._command(r) for r in self._fetch("claim_commands_in", params)]

    def heartbeat(self, owner: str, lease_until: float) -> None:
        with self.transaction():
            self._send("heartbeat", (lease_until, owner))

    def lease_owners(self) -> list[str]:
        return [r[0] for r in self._fetch("lease_owners")]

    def release_owner(self, owner: str) -> None:
        with self.transaction():
            self._send("release_owner", (owner,))

    def release_command(self, command_id: int, owner: str) -> None:
        with self.transaction():
            self._send("release_command", (command_id, owner))

    def commands_of(self, execution_id: int) -> list[Command]:
        return [self._command(r) for r in self._fetch("commands_of_execution", (execution_id,))]

    # --- workers -----------------------------------------------------------------------

    def register_worker(self, worker_id: str, pool: str | None, concurrency: int) -> None:
        with self.transaction():
            self._send(
                "register_worker",
                (
                    worker_id,
                    pool,
                    socket.gethostname(),
                    os.getpid(),
                    concurrency,
                    "running",
                    utcnow(),
                    time.time(),
                ),
            )

    def worker_heartbeat(self, worker_id: str, status: str = "running") -> None:
        with self.transaction():
            self._send("worker_heartbeat", (time.time(), status, worker_id))

    def deregister_worker(self, worker_id: str) -> None:
        with self.transaction():
            self._send("delete_worker", (worker_id,))

    def list_workers(self) -> list[WorkerRow]:
        return [
            WorkerRow(r[0], r[1], r[2], r[3], r[4], r[5], self._ts(r[6]), float(r[7]))
            for r in self._fetch("list_workers")
        ]

    def schema_versions(self) -> list[int]:
        return [int(r[0]) for r in self._fetch("schema_versions")]

    # --- decisions (a projection of decision events) -------------------------------------

    def project_decision(self, e: Event, playbook_path: str) -> None:
        meta = e.meta or {}
        decision_id = str(meta.get("decision_id"))
        if e.event_type == "decision.requested":
            self._send(
                "insert_decision",
                (decision_id, e.execution_id, playbook_path, e.step_name, "pending",
                 meta.get("prompt"), dumps(meta.get("options")), dumps(meta.get("approvers")),
                 meta.get("deadline"), e.created_at),
            )  # fmt: skip
        elif e.event_type == "decision.made":
            self._send(
                "update_decision",
                ("decided", e.created_at, meta.get("action"), e.actor, meta.get("comment"),
                 meta.get("time_to_decide_ms"), decision_id),
            )  # fmt: skip
        elif e.event_type == "callback.received":
            self._send(
                "update_decision",
                ("decided", e.created_at, "callback", "callback", None, (meta or {}).get("waited_ms"),
                 str(meta.get("callback_id"))),
            )  # fmt: skip
        elif e.event_type == "decision.expired":
            self._send("expire_decision", (decision_id,))
        elif e.event_type == "decision.escalated":
            self._send(
                "update_decision_approvers",
                (dumps(meta.get("approvers")), meta.get("deadline"), decision_id),
            )

    def _decision(self, r: Sequence[Any]) -> dict[str, Any]:
        keys = ("decision_id", "execution_id", "playbook_path", "step", "status", "prompt", "options",
                "approvers", "deadline", "requested_at", "decided_at", "action", "decided_by",
                "comment", "time_to_decide_ms")  # fmt: skip
        row = dict(zip(keys, r, strict=True))
        row["execution_id"] = str(row["execution_id"])
        row["options"] = (
            loads(row["options"]) if isinstance(row["options"], str) else row["options"]
        )
        row["approvers"] = (
            loads(row["approvers"]) if isinstance(row["approvers"], str) else row["approvers"]
        )
        row["requested_at"] = self._ts(row["requested_at"])
        row["decided_at"] = self._ts(row["decided_at"])
        return row

    def list_decisions(
        self, status: str | None = None, playbook: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        params = {"status": status, "playbook": playbook, "limit": limit}
        return [self._decision(r) for r in self._fetch("list_decisions", params)]

    def get_decision(self, decision_id: str) -> dict[str, Any] | None:
        rows = self._fetch("get_decision", (decision_id,))
        return self._decision(rows[0]) if rows else None

    # --- catalog -----------------------------------------------------------------------

    def _catalog(self, r: Sequence[Any], content: str | None = None) -> CatalogEntry:
        return CatalogEntry(r[0], r[1], r[2], r[3], r[4], self._ts(r[5]), content)

    def catalog_register(
        self, path: str, content: str, content_hash: str, source_file: str | None
    ) -> CatalogEntry:
        with self.transaction():
            self._fetch("catalog_lock", (path,))
            rows = self._fetch("catalog_by_hash", (path, content_hash))
            if rows:
                return self._catalog(rows[0])
            version = int(self._fetch("catalog_next_version", (path,))[0][0])
            entry = CatalogEntry(
                new_id(), path, version, content_hash, source_file, utcnow(), content
            )
            self._send(
                "catalog_insert",
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
        rows = self._fetch("catalog_get", (path, version, version))
        if not rows:
            return None
        catalog_id, path_, version_, content, content_hash, source_file, created_at = rows[0]
        return CatalogEntry(
            catalog_id, path_, version_, content_hash, source_file, self._ts(created_at), content
        )

    def catalog_list(self) -> list[CatalogEntry]:
        return [self._catalog(r) for r in self._fetch("catalog_list")]


def outbox_row(e: Event) -> tuple[Any, ...]:
    return (
        e.event_id,
        e.execution_id,
        e.seq,
        subject_for(e),
        orjson.dumps(e.to_dict(), default=str).decode(),
    )


def split_statements(script: str, complete: Any = None) -> Iterator[str]:
    """Statements of a SQL script (``;``-terminated; comment lines dropped; ``$$`` bodies kept)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        in_body = buffer.count("$$") % 2 == 1
        done = complete(buffer) if complete else (not in_body and buffer.rstrip().endswith(";"))
        if done:
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        yield buffer.strip()
