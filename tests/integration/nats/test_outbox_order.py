"""The outbox batch query: each execution's rows in seq order, never seq n+1 without seq n."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from playloop.export.outbox import Outbox
from playloop.store.base import EventStore
from playloop.store.open import open_store


@pytest.fixture
def store(db_url: str) -> Iterator[EventStore]:
    """The backend under test (SQLite, or PostgreSQL with PLAYLOOP_TEST_BACKEND=postgres)."""
    s = open_store(db_url)
    yield s
    s.close()


def put(store: EventStore, event_id: int, execution_id: int, seq: int) -> None:
    row = (event_id, execution_id, seq, f"playloop.events.p.{execution_id}", "{}")
    store._execute("insert_outbox", row)  # type: ignore[attr-defined]


def order(outbox: Outbox, limit: int) -> list[tuple[int, int]]:
    return [(r.execution_id, r.seq) for r in outbox.batch(limit)]


def test_time_order_when_ids_follow_seq(store: EventStore) -> None:
    put(store, 10, 1, 1)
    put(store, 11, 2, 1)
    put(store, 12, 1, 2)
    put(store, 13, 2, 2)
    assert order(Outbox(store), 10) == [(1, 1), (2, 1), (1, 2), (2, 2)]


def test_seq_order_and_no_gap_when_ids_do_not_follow_seq(store: EventStore) -> None:
    """Two processes in one millisecond: seq 2 of execution 1 got the smaller id."""
    put(store, 30, 1, 1)
    put(store, 20, 1, 2)
    put(store, 25, 2, 1)
    put(store, 40, 1, 3)
    outbox = Outbox(store)
    assert order(outbox, 10) == [(1, 1), (1, 2), (2, 1), (1, 3)]
    assert order(outbox, 2) == [(2, 1)]  # (1, 2) is among the oldest two, but not (1, 1)
    for limit in range(1, 5):  # any cut is a prefix of each execution's seqs
        seen: dict[int, list[int]] = {}
        for execution_id, seq in order(outbox, limit):
            seen.setdefault(execution_id, []).append(seq)
        for seqs in seen.values():
            assert seqs == list(range(1, len(seqs) + 1))


def test_progress_when_every_candidate_is_cut(store: EventStore) -> None:
    put(store, 30, 1, 1)
    put(store, 20, 1, 2)  # the oldest row, but seq 1 waits beyond a batch of one
    assert order(Outbox(store), 1) == [(1, 1)]


def test_delete_takes_a_batch(store: EventStore) -> None:
    for i in range(1, 6):
        put(store, 100 + i, 7, i)
    outbox = Outbox(store)
    assert outbox.delete([101, 102, 104]) == 3
    assert outbox.count() == 2
    assert order(outbox, 10) == [(7, 3), (7, 5)]
    assert outbox.delete([]) == 0


def test_one_claim_per_database(store: EventStore) -> None:
    first, second = Outbox(store), Outbox(store)
    try:
        assert first.claim.acquire()
        assert first.claim.acquire()  # held: asking again is harmless
        assert not second.claim.acquire()
        first.close()
        assert second.claim.acquire()
    finally:
        first.close()
        second.close()
