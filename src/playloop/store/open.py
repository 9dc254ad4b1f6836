"""Pick the store from configuration: a PostgreSQL URL, a SQLite URL or path, or the home dir."""

from __future__ import annotations

import os
from pathlib import Path

from playloop.store.base import EventStore


def database_url(db: str | None, home: Path) -> str:
    """``--db``, else ``$PLAYLOOP_DB``, else SQLite in the home directory."""
    return db or os.environ.get("PLAYLOOP_DB") or f"sqlite:///{(home / 'playloop.db').resolve()}"


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str) -> EventStore:
    if is_postgres(url):
        from playloop.store.postgres import PostgresStore

        return PostgresStore(url)
    from playloop.store.sqlite import SqliteStore

    path = (
        url.removeprefix("sqlite:///")
        if url.startswith("sqlite:///")
        else url.removeprefix("sqlite:")
    )
    return SqliteStore(Path(path))
