"""PostgreSQL store specifics: schema = migrations, SKIP LOCKED claims, advisory locks."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
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
        functions = conn.execute(
            "SELECT p.proname, pg_get_function_arguments(p.oid), md5(p.prosrc) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'noetl' ORDER BY 1, 2"
        ).fetchall()
        sequences = conn.execute(
            "SELECT sequence_name, data_type FROM information_schema.sequences "
            "WHERE sequence_schema = 'noetl' ORDER BY 1"
        ).fetchall()
    return [tuple(map(str, r)) for r in columns + indexes + functions + sequences]


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


def _event(execution_id: int, seq: int) -> Event:
    return Event(execution_id=execution_id, seq=seq, event_type="execution.started",
                 playbook_path="p", event_id=new_id(), status="running", created_at=utcnow())  # fmt: skip


def test_begin_signals_completes_our_commands_locks_and_reads_new_events(
    store: PostgresStore, fresh_pg_url: str
) -> None:
    """One round trip begins a batch: completes only the commands still leased to us,
    locks every execution, and returns each execution's events after its ``since``."""
    x, y = new_id(), new_id()
    events = [_event(x, 1), _event(x, 2), _event(y, 1)]
    store.append(events)
    ours, theirs = (
        Command(command_id=new_id(), execution_id=x, kind="run", step=step, attempt=1, lease_owner=owner)
        for step, owner in (("s", "A"), ("t", "B"))
    )  # fmt: skip
    store.enqueue([ours, theirs])
    with store.transaction():
        answer = store.begin_signals([y, x], [ours.command_id, theirs.command_id], "A", [0, 1])
        assert answer is not None
        completed, new = answer
        assert completed == {ours.command_id}
        assert [(e.execution_id, e.seq) for e in new] == [(x, 2), (y, 1)]
        with psycopg.connect(fresh_pg_url, autocommit=True) as other:
            for locked in (x, y):
                got = other.execute("SELECT pg_try_advisory_lock(%s)", (locked,)).fetchone()
                assert got == (False,)
    assert [c.command_id for c in store.commands_of(x)] == [theirs.command_id]


def test_a_fan_out_decided_by_two_orchestrators_in_turn_finishes_every_branch_once(
    fresh_pg_url: str,
) -> None:
    """Two processes report branches of one fan-out in interleaved batches: each decides
    on stale state, falls back to ``begin_signals`` and still writes every step once."""
    from playloop.dsl.load import load_text
    from playloop.engine.orchestrator import Orchestrator
    from playloop.worker.execute import execute

    branches = 12
    arcs = "".join(f"        - {{step: b{i}}}\n" for i in range(branches))
    steps = "".join(
        f"  - step: b{i}\n    tool: {{kind: noop, result: {i}}}\n    next: {{arcs: [{{step: join}}]}}\n"
        for i in range(branches)
    )
    flow = load_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: f, path: tests/fan}\n"
        "workflow:\n  - step: start\n    tool: {kind: noop}\n    next:\n"
        "      spec: {mode: inclusive}\n      arcs:\n" + arcs + steps
        + "  - step: join\n    tool: {kind: noop, result: joined}\n"
    )  # fmt: skip
    store_a, store_b = PostgresStore(fresh_pg_url), PostgresStore(fresh_pg_url)
    try:
        orchestrators = {
            name: Orchestrator(store, lambda p, v: flow, lambda f, p: flow)
            for name, store in (("A", store_a), ("B", store_b))
        }
        execution_id, out = orchestrators["A"].start(
            flow, {}, owner="A", capacity=branches, lease_seconds=30
        )
        held = {"A": list(out.leased), "B": []}
        for _ in range(200):
            for name, orchestrator in orchestrators.items():
                reports = [
                    (c.execution_id, replace(execute(c, processes=None, home=Path("."), playbook_file=None), actor=name))
                    for c in held[name][:3]
                ]  # fmt: skip
                del held[name][:3]
                out = orchestrator.advance(
                    reports, owner=name, capacity=4, lease_seconds=30, claim_any=True
                )
                held[name] += out.leased
            if not held["A"] and not held["B"] and store_a.commands_of(execution_id) == []:
                break
        events = store_a.read_events(execution_id)
        finished = [e.step_name for e in events if e.event_type == "step.finished"]
        assert sorted(finished) == sorted(["start", "join", *(f"b{i}" for i in range(branches))])
        assert events[-1].event_type == "execution.finished"
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert {e.actor for e in events if e.event_type == "step.finished"} >= {"A", "B"}
    finally:
        store_a.close()
        store_b.close()


def test_a_batch_redone_carefully_still_starts_its_new_execution(fresh_pg_url: str) -> None:
    """A batch with a stale report and a Start: the optimistic try fails on the report, and
    the careful retry starts the new execution (it was once 'unknown' after the failure)."""
    from playloop.dsl.load import load_text
    from playloop.engine.events import new_id
    from playloop.engine.orchestrator import Orchestrator
    from playloop.engine.signals import Cancel, Start
    from playloop.engine.state import ExecutionState
    from playloop.worker.execute import execute

    flow = load_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: o, path: tests/optimistic}\n"
        "workflow:\n  - step: a\n    tool: {kind: noop, result: 1}\n"
    )
    store_a, store_b = PostgresStore(fresh_pg_url), PostgresStore(fresh_pg_url)
    try:
        a = Orchestrator(store_a, lambda p, v: flow, lambda f, p: flow)
        b = Orchestrator(store_b, lambda p, v: flow, lambda f, p: flow)
        stale, out = a.start(flow, {}, owner="A", capacity=4, lease_seconds=30)
        (command,) = out.leased
        b.advance([(stale, Cancel(actor="B"))], owner="B", capacity=0, lease_seconds=30)
        report = execute(command, processes=None, home=Path("."), playbook_file=None)
        new = new_id()
        a.states[new] = ExecutionState(execution_id=new)  # as Engine.start does
        a.flows[new] = flow
        out = a.advance(
            [(stale, report), (new, Start(workload={}))], owner="A", capacity=4, lease_seconds=30
        )
        assert out.started == [new]
        assert [e.event_type for e in store_a.read_events(new)][:2] == [
            "execution.started",
            "step.started",
        ]
    finally:
        store_a.close()
        store_b.close()


def test_two_reports_for_one_execution_in_one_batch_stay_optimistic(fresh_pg_url: str) -> None:
    """One process reporting two branches of its own fan-out in one batch: both are checked
    against the seq the batch began from, so the batch commits on the first try."""
    from playloop.dsl.load import load_text
    from playloop.engine.orchestrator import Orchestrator
    from playloop.worker.execute import execute

    flow = load_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: f, path: tests/pair}\n"
        "workflow:\n  - step: start\n    tool: {kind: noop}\n    next:\n"
        "      spec: {mode: inclusive}\n      arcs: [{step: x}, {step: y}]\n"
        "  - step: x\n    tool: {kind: noop}\n    next: {arcs: [{step: join}]}\n"
        "  - step: y\n    tool: {kind: noop}\n    next: {arcs: [{step: join}]}\n"
        "  - step: join\n    tool: {kind: noop}\n"
    )
    store = PostgresStore(fresh_pg_url)
    try:
        orchestrator = Orchestrator(store, lambda p, v: flow, lambda f, p: flow)
        execution_id, out = orchestrator.start(flow, {}, owner="A", capacity=4, lease_seconds=30)
        out = orchestrator.advance(
            [(execution_id, execute(c, processes=None, home=Path("."), playbook_file=None)) for c in out.leased],
            owner="A", capacity=4, lease_seconds=30,
        )  # fmt: skip
        assert sorted(c.step for c in out.leased) == ["x", "y"]
        out = orchestrator.advance(
            [(execution_id, execute(c, processes=None, home=Path("."), playbook_file=None)) for c in out.leased],
            owner="A", capacity=4, lease_seconds=30,
        )  # fmt: skip
        assert orchestrator._contended == {}  # no optimistic try failed
        assert [c.step for c in out.leased] == ["join"]
    finally:
        store.close()


TRICKY = [
    "plain",
    "it's",
    "back\\slash and 'quote'",
    "\\x27; DROP TABLE noetl.event; --",
    "ünïcode ✓ \n newline \t tab",
    '{"json": "with \\"escapes\\" and \\\\"}',
    "",
]


@pytest.mark.parametrize("conforming", ["on", "off"])
def test_fast_literals_read_back_exactly(fresh_pg_url: str, conforming: str) -> None:
    """The batch's own quoting must mean to the server exactly what the value was."""
    from playloop.store.postgres import _literals

    values = [*TRICKY, 0, -7, 2**62, 1.5, -2.25e-5, True, False, None]
    with psycopg.connect(fresh_pg_url, autocommit=True) as conn:
        conn.execute(f"SET standard_conforming_strings = {conforming}")
        for value in values:
            literal = _literals((value,))
            assert literal is not None
            row = conn.execute(f"SELECT {literal}".encode()).fetchone()
            assert row is not None, literal
            read = float(row[0]) if isinstance(value, float) else row[0]  # a bare 1.5 is numeric
            assert read == value and type(read) is type(value), (value, literal, row)
    assert _literals(("nul\x00byte",)) is None  # psycopg refuses it with a clear error
    assert _literals(({"a": 1},)) is None


def test_prepared_batches_store_what_plain_ones_do(store: PostgresStore) -> None:
    """Once a query is prepared on a connection, the batch sends EXECUTE; rows are the same."""
    execution_id = new_id()
    for seq in range(1, 6):  # the first transaction prepares, the next ones EXECUTE
        store.append(
            [
                Event(
                    event_id=new_id(), execution_id=execution_id, seq=seq, playbook_path="p",
                    event_type="step.finished", step_name="s", status="completed",
                    result={"text": TRICKY[seq]}, meta={"n": seq}, created_at=utcnow(),
                )
            ]
        )  # fmt: skip
    with psycopg.connect(store.dsn) as conn:
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
        assert prepared == (0,)  # a new connection has none: they are per connection
    events = store.read_events(execution_id)
    assert [e.result for e in events] == [{"text": TRICKY[seq]} for seq in range(1, 6)]
    assert [e.meta for e in events] == [{"n": seq} for seq in range(1, 6)]
    from playloop.store.postgres import PREPARED

    assert any(names for names in PREPARED._done.values())


def test_prepared_statements_survive_a_rollback_and_recover_from_deallocate(
    fresh_pg_url: str,
) -> None:
    """A failed transaction's ROLLBACK keeps them; a DEALLOCATE ALL costs one failed batch."""
    store = PostgresStore(fresh_pg_url, min_size=1, max_size=1)  # one connection throughout
    execution_id = new_id()

    def event(seq: int) -> Event:
        return Event(
            event_id=new_id(), execution_id=execution_id, seq=seq, playbook_path="p",
            event_type="step.finished", step_name="s", status="completed", created_at=utcnow(),
        )  # fmt: skip

    try:
        for seq in range(1, 4):
            store.append([event(seq)])
        with pytest.raises(DuplicateEvent):
            store.append([event(3)])  # rolled back
        store.append([event(4)])
        with store.pool.connection() as conn:
            conn.execute("DEALLOCATE ALL")
        with pytest.raises(Exception, match="does not exist"):
            store.append([event(5)])
        store.append([event(5)])
        store.append([event(6)])
        assert [e.seq for e in store.read_events(execution_id)] == [1, 2, 3, 4, 5, 6]
    finally:
        store.close()
