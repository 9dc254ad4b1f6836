"""The store's contract: events, commands, executions and the catalog.

The store knows events and commands, not playbooks. The orchestrator is the only caller of
its write path, always inside ``transaction()``; readers (CLI, API) use the read methods.
PostgreSQL implements the same protocol with the same named queries.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from playloop.engine.commands import Command
from playloop.engine.events import Event


class StoreError(RuntimeError):
    """The store could not do what was asked."""


class DuplicateEvent(StoreError):
    """An event with this (execution_id, seq) is already stored: the append was not applied."""


class StaleSignal(StoreError):
    """An optimistic decision was based on a state another process had moved on from."""


class ReadOnlyQuery(StoreError):
    """Only read-only SQL (SELECT, WITH, EXPLAIN) may run here."""


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    execution_id: int
    playbook_path: str
    playbook_version: str | None
    parent_execution_id: int | None
    status: str
    started_at: str
    ended_at: str | None
    last_seq: int
    error_message: str | None


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    catalog_id: int
    path: str
    version: int
    content_hash: str
    source_file: str | None
    created_at: str
    content: str | None = None


class EventStore(Protocol):
    dialect: str
    outbox_enabled: bool

    # --- transactions --------------------------------------------------------------
    def transaction(self) -> AbstractContextManager[None]: ...
    def pinned(self) -> AbstractContextManager[None]: ...

    # --- events (write path: inside a transaction) ---------------------------------
    def append(self, events: Sequence[Event]) -> None: ...
    def lock_execution(self, execution_id: int) -> int: ...
    def begin_signal(
        self, execution_id: int, command_id: int | None, owner: str | None
    ) -> tuple[bool, int]: ...
    def begin_signals(
        self,
        execution_ids: Sequence[int],
        command_ids: Sequence[int],
        owner: str,
        since: Sequence[int],
    ) -> tuple[set[int], list[Event]] | None: ...
    def expect_signal(
        self, execution_id: int, command_id: int | None, owner: str | None, last_seq: int
    ) -> bool: ...
    def allocate_node(self) -> int: ...
    def max_seq(self, execution_id: int) -> int: ...
    def read_events(self, execution_id: int, after_seq: int = 0) -> list[Event]: ...
    def upsert_execution(self, row: ExecutionRow) -> None: ...

    # --- commands ------------------------------------------------------------------
    def enqueue(self, commands: Sequence[Command]) -> None: ...
    def complete(self, command_id: int, owner: str) -> bool: ...
    def delete_command(self, command_id: int) -> None: ...
    def drop_commands(self, execution_id: int) -> None: ...
    def drop_decision_commands(self, execution_id: int, step: str) -> None: ...
    def claim(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        execution_id: int | None = None,
        pool: str | None = None,
    ) -> list[Command]: ...
    def claim_in(
        self,
        owner: str,
        now: float,
        lease_until: float,
        limit: int,
        execution_ids: Sequence[int],
        pool: str | None = None,
    ) -> list[Command]: ...
    def heartbeat(self, owner: str, lease_until: float) -> None: ...
    def lease_owners(self) -> list[str]: ...
    def release_owner(self, owner: str) -> None: ...
    def release_command(self, command_id: int, owner: str) -> None: ...
    def commands_of(self, execution_id: int) -> list[Command]: ...

    # --- workers -------------------------------------------------------------------
    def register_worker(self, worker_id: str, pool: str | None, concurrency: int) -> None: ...
    def worker_heartbeat(self, worker_id: str, status: str = "running") -> None: ...
    def deregister_worker(self, worker_id: str) -> None: ...
    def list_workers(self) -> list[Any]: ...
    def schema_versions(self) -> list[int]: ...

    # --- decisions -------------------------------------------------------------------
    def project_decision(self, e: Event, playbook_path: str) -> None: ...
    def list_decisions(
        self, status: str | None = None, playbook: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...
    def get_decision(self, decision_id: str) -> dict[str, Any] | None: ...

    # --- executions and catalog (reads) --------------------------------------------
    def get_execution(self, execution_id: int) -> ExecutionRow | None: ...
    def list_executions(
        self,
        status: str | None = None,
        playbook: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[ExecutionRow]: ...
    def catalog_register(
        self, path: str, content: str, content_hash: str, source_file: str | None
    ) -> CatalogEntry: ...
    def catalog_get(self, path: str, version: int | None = None) -> CatalogEntry | None: ...
    def catalog_list(self) -> list[CatalogEntry]: ...

    # --- ad-hoc SQL ----------------------------------------------------------------
    def query(
        self, sql: str, params: Sequence[Any] = ()
    ) -> tuple[list[str], list[tuple[Any, ...]]]: ...

    def close(self) -> None: ...


_SUBJECT_BAD = re.compile(r"[^A-Za-z0-9_-]+")


def subject_for(event: Event) -> str:
    """``playloop.events.<playbook path, '/' as '.'>.<execution_id>`` (NATS subject tokens)."""
    parts = [_SUBJECT_BAD.sub("_", part) or "_" for part in event.playbook_path.split("/") if part]
    return ".".join(["playloop", "events", *(parts or ["_"]), str(event.execution_id)])


def iter_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
    for row in rows:
        yield dict(zip(columns, row, strict=True))
