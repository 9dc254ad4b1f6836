"""Pick the store from configuration: a PostgreSQL URL, a SQLite URL or path, or the home dir."""

from __future__ import annotations

import os
from pathlib import Path

from playloop.engine.events import adopt_node, node_adopted
from playloop.store.base import EventStore


def database_url(db: str | None, home: Path) -> str:
    """``--db``, else ``$PLAYLOOP_DB``, else SQLite in the home directory."""
    return db or os.environ.get("PLAYLOOP_DB") or f"sqlite:///{(home / 'playloop.db').resolve()}"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str) -> EventStore:
    """The store at ``url``, migrated; the first store a process opens also gives it the
    node number its event and command ids carry (unique among the store's processes)."""
    store: EventStore
    if is_postgres(url):
        from playloop.store.postgres import PostgresStore

        store = PostgresStore(url)
    else:
        from playloop.store.sqlite import SqliteStore

        path = (
            url.removeprefix("sqlite:///")
            if url.startswith("sqlite:///")
            else url.removeprefix("sqlite:")
        )
        store = SqliteStore(Path(path))
    if not node_adopted():
        adopt_node(store.allocate_node())
    return store
