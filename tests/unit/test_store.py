from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from playloop.engine.events import Event, UnknownEventType, new_id, utcnow
from playloop.store.base import DuplicateEvent, ReadOnlyQuery
from playloop.store.queries import migrations, queries, sql_text
from playloop.store.sqlite import SqliteStore, connect, migrate
from playloop.store.sqlstore import split_statements


def _event(execution_id: int, seq: int, event_type: str = "execution.started") -> Event:
    return Event(
        execution_id=execution_id,
        seq=seq,
        event_type=event_type,
        playbook_path="p",
        event_id=new_id(),
        status="running",
        created_at=utcnow(),
    )


def test_duplicate_append_is_a_named_error_and_adds_no_row(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.db")
    store.append([_event(1, 1)])
    with pytest.raises(DuplicateEvent):
        store.append([_event(1, 2), _event(1, 1)])
    assert [e.seq for e in store.read_events(1)] == [1]
    store.close()


def test_unknown_event_type_is_rejected_at_append(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.db")
    with pytest.raises(UnknownEventType):
        store.append([_event(1, 1, "step.exploded")])
    assert store.read_events(1) == []
    store.close()


def _schema(path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    conn.close()
    return [(t, n, " ".join((s or "").split())) for t, n, s in rows]


def test_fresh_schema_equals_all_migrations_applied(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    SqliteStore(fresh).close()
    migrated = tmp_path / "migrated.db"
    conn = connect(migrated)
    for _, _, script in migrations("sqlite"):
        for statement in split_statements(script, sqlite3.complete_statement):
            conn.execute(statement)
    conn.close()
    assert _schema(fresh) == _schema(migrated)
    assert "CREATE TABLE IF NOT EXISTS noetl.event" in sql_text("sqlite", "schema.sql")


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    conn = connect(tmp_path / "p.db")
    assert migrate(conn) == [v for v, _, _ in migrations("sqlite")]
    assert migrate(conn) == []
    conn.close()


def test_named_queries_parse() -> None:
    q = queries("sqlite")
    assert {"insert_event", "claim_commands", "max_seq", "catalog_get"} <= set(q)


def test_readonly_sql_refuses_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.db")
    store.append([_event(7, 1)])
    columns, rows = store.query("SELECT execution_id, seq FROM noetl.event")
    assert columns == ["execution_id", "seq"] and rows == [(7, 1)]
    for statement in (
        "DELETE FROM noetl.event",
        "DROP TABLE noetl.event",
        "INSERT INTO noetl.event(event_id) VALUES (1)",
    ):
        with pytest.raises(ReadOnlyQuery):
            store.query(statement)
    assert store.query("SELECT count(*) FROM noetl.event")[1] == [(1,)]
    store.close()


def test_catalog_versions_by_content(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.db")
    a = store.catalog_register("x/y", "one", "h1", None)
    again = store.catalog_register("x/y", "one", "h1", None)
    b = store.catalog_register("x/y", "two", "h2", None)
    assert (a.version, again.version, b.version) == (1, 1, 2)
    latest = store.catalog_get("x/y")
    assert latest is not None and latest.content == "two"
    first = store.catalog_get("x/y", 1)
    assert first is not None and first.content == "one"
    store.close()


def test_each_store_opening_takes_its_own_node_for_ids(tmp_path: Path) -> None:
    """Processes sharing a store make ids with distinct node numbers (a random node let
    two of six processes collide about once in seventy starts)."""
    from playloop.engine.events import _IdGenerator

    first, second = SqliteStore(tmp_path / "db"), SqliteStore(tmp_path / "db")
    try:
        nodes = [first.allocate_node(), second.allocate_node(), first.allocate_node()]
    finally:
        first.close()
        second.close()
    assert len(set(nodes)) == 3
    ids = _IdGenerator()
    assert ids.adopt(nodes[0]) and not ids.adopt(nodes[1])  # the first store decides
    assert (ids.next() >> 12) & 0x3FF == nodes[0] & 0x3FF
