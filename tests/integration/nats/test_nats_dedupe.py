"""Rows published again (a crash between the ack and the delete) make no duplicate messages."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from nats_helpers import (
    assert_exactly_once_in_order,
    attach_publisher,
    chain_playbook,
    consume,
    make_engine,
    stream_count,
)

from playloop.engine.events import Event
from playloop.export.nats import OutboxPublisher
from playloop.runtime import Engine
from playloop.store.base import subject_for


def reinsert_outbox(engine: Engine, events: list[Event]) -> None:
    """What a crash after JetStream's ack and before the delete leaves behind."""
    for e in events:
        row = (
            e.event_id,
            e.execution_id,
            e.seq,
            subject_for(e),
            orjson.dumps(e.to_dict()).decode(),
        )
        engine.store._execute("insert_outbox", row)  # type: ignore[attr-defined]


def test_republished_rows_are_dropped_by_the_message_id(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = chain_playbook(tmp_path / "chain.yaml", "chain", steps=5)
    with make_engine(tmp_path / "home", db_url, nats_url, monkeypatch) as engine:
        first = attach_publisher(engine, nats_url)
        try:
            a = engine.start(chain)
            assert engine.wait(a, timeout=60)["status"] == "completed"
            assert first.wait_published(timeout=30)
        finally:
            first.stop()
        events_a = engine.events(a)
        assert stream_count(nats_url) == len(events_a)

        # the "crashed" publisher's rows are back; a new run adds fresh ones after them
        reinsert_outbox(engine, events_a)
        b = engine.start(chain)
        assert engine.wait(b, timeout=60)["status"] == "completed"
        events_b = engine.events(b)
        second = OutboxPublisher(engine.store, nats_url, poll_interval=0.05).start()
        try:
            assert second.wait_published(timeout=30)
        finally:
            second.stop()

    assert second.stats.duplicates == len(events_a)
    assert second.stats.published == len(events_b)
    total = len(events_a) + len(events_b)
    assert stream_count(nats_url) == total
    messages = consume(nats_url, total)
    assert len(messages) == total
    assert_exactly_once_in_order(messages, {a: events_a, b: events_b})


def test_a_second_publisher_waits_for_the_claim(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One publisher per database: the other idles, then takes over when the first stops."""
    chain = chain_playbook(tmp_path / "chain.yaml", "chain", steps=5)
    with make_engine(tmp_path / "home", db_url, nats_url, monkeypatch) as engine:
        publishers = [attach_publisher(engine, nats_url), attach_publisher(engine, nats_url)]
        try:
            a = engine.start(chain)
            assert engine.wait(a, timeout=60)["status"] == "completed"
            assert publishers[0].wait_published(timeout=30)
            counts = sorted(p.stats.published for p in publishers)
            assert counts == [0, len(engine.events(a))]  # one of them did it all
            holder, waiter = sorted(publishers, key=lambda p: -p.stats.published)

            holder.stop()
            b = engine.start(chain)
            assert engine.wait(b, timeout=60)["status"] == "completed"
            assert waiter.wait_published(timeout=30)
            assert waiter.stats.published == len(engine.events(b))
            table = {a: engine.events(a), b: engine.events(b)}
        finally:
            for publisher in publishers:
                publisher.stop()
    total = sum(len(v) for v in table.values())
    assert stream_count(nats_url) == total
    assert_exactly_once_in_order(consume(nats_url, total), table)
