"""PostgreSQL store specifics: schema = migrations, SKIP LOCKED claims, advisory locks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from playloop.engine.commands import Command
from playloop.engine.events import Event, new_id, utcnow
from playloop.store.base import DuplicateEvent, ReadOnlyQuery
from playloop.store.postgres import PostgresStore, _run_script
from playloop.store.queries import migrations

pytestmark = pytest.mark.postgres_only


@pytest.fixture
def store(fresh_pg_url: str) -> Iterator[PostgresStore]:
    s = PostgresStore(fresh_pg_url)
    yield s
    s.close()


def _schema(url: str) -> list[tuple[str, ...]]:
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, coalesce(column_default, '') "
            "FROM information_schema.columns WHERE table_schema = 'noetl' ORDER BY 1, 2"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'noetl' ORDER BY 1"
        ).fetchall()
    return [tuple(map(str, r)) for r in columns + indexes]


def test_fresh_schema_equals_all_migrations_applied(
    fresh_pg_url: str, store: PostgresStore
) -> None:
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA noetl CASCADE")
        with conn.transaction():
            for _, _, script in migrations("postgres"):
                _run_script(conn, script)
    migrated = _schema(fresh_pg_url)
    PostgresStore(fresh_pg_url).close()  # the store itself re-creates a fresh schema
    assert migrated
    assert _schema(fresh_pg_url) == migrated


def test_duplicate_append_is_a_named_error(store: PostgresStore) -> None:
    eid = new_id()
    event = Event(execution_id=eid, seq=1, event_type="execution.started", playbook_path="p",
                  event_id=new_id(), status="running", created_at=utcnow())  # fmt: skip
    store.append([event])
    duplicate = Event(execution_id=eid, seq=1, event_type="execution.started", playbook_path="p",
                      event_id=new_id(), status="running", created_at=utcnow())  # fmt: skip
    with pytest.raises(DuplicateEvent):
        store.append([duplicate])
    assert [e.seq for e in store.read_events(eid)] == [1]


def test_readonly_query_refuses_writes(store: PostgresStore) -> None:
    assert store.query("SELECT 1 AS one")[1] == [(1,)]
    with pytest.raises(ReadOnlyQuery):
        store.query("DELETE FROM noetl.event")


def test_claims_skip_locked_rows_and_never_double_claim(store: PostgresStore) -> None:
    eid = new_id()
    commands = [
        Command(execution_id=eid, kind="run", step=f"s{i}", attempt=1, command_id=new_id())
        for i in range(200)
    ]
    with store.transaction():
        store.enqueue(commands)
    claimed: list[list[int]] = []

    def worker(owner: str) -> None:
        mine: list[int] = []
        while True:
            batch = store.claim(owner, time.time(), time.time() + 30, 7)
            if not batch:
                break
            mine.extend(c.command_id for c in batch)
        claimed.append(mine)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [cid for mine in claimed for cid in mine]
    assert sorted(every) == sorted(c.command_id for c in commands)
    assert len(set(every)) == len(every)


def test_advisory_lock_serialises_one_execution(store: PostgresStore) -> None:
    order: list[str] = []
    entered = threading.Event()

    def first() -> None:
        with store.transaction():
            store.lock_execution(42)
            entered.set()
            time.sleep(0.3)
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(5)
    with store.transaction():
        store.lock_execution(42)
        order.append("second")
    thread.join()
    assert order == ["first", "second"]


def test_optimistic_decision_falls_back_when_another_process_moved_on(fresh_pg_url: str) -> None:
    """A decides from its cached state; B appended first: A's batch is checked, then redone."""
    from playloop.dsl.load import load_text
    from playloop.engine.orchestrator import Orchestrator
    from playloop.engine.signals import Cancel
    from playloop.worker.execute import execute

    flow = load_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: o, path: tests/optimistic}\n"
        "workflow:\n  - step: a\n    tool: {kind: noop, result: 1}\n    next: [{step: b}]\n"
        "  - step: b\n    tool: {kind: noop}\n"
    )
    store_a, store_b = PostgresStore(fresh_pg_url), PostgresStore(fresh_pg_url)
    try:
        a = Orchestrator(store_a, lambda p, v: flow, lambda f, p: flow)
        b = Orchestrator(store_b, lambda p, v: flow, lambda f, p: flow)
        assert a.optimistic
        execution_id, out = a.start(flow, {}, owner="A", capacity=4, lease_seconds=30)
        (command,) = out.leased
        b.advance([(execution_id, Cancel(actor="B"))], owner="B", capacity=0, lease_seconds=30)
        report = execute(command, processes=None, home=Path("."), playbook_file=None)
        late = a.advance([(execution_id, report)], owner="A", capacity=4, lease_seconds=30)
        assert late.events == [] and late.leased == []  # decided again on fresh state: ignored
        events = store_a.read_events(execution_id)
        assert [e.event_type for e in events] == [
            "execution.started",
            "step.started",
            "execution.cancelled",
        ]
        assert [e.seq for e in events] == [1, 2, 3]
    finally:
        store_a.close()
        store_b.close()
