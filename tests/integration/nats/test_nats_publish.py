"""Every event of real runs reaches JetStream on its subject, in seq order, exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest
from nats_helpers import (
    assert_exactly_once_in_order,
    attach_publisher,
    chain_playbook,
    consume,
    make_engine,
    stream_count,
)

from playloop.export.nats import OutboxPublisher

ROOT = Path(__file__).resolve().parents[3]


def test_events_of_real_runs_arrive_on_their_subjects_in_order_once(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chain = chain_playbook(tmp_path / "chain.yaml", "chain", steps=12)
    with make_engine(tmp_path / "home", db_url, nats_url, monkeypatch) as engine:
        assert engine.store.dialect == ("postgres" if "postgres" in db_url else "sqlite")
        publisher = attach_publisher(engine, nats_url)
        try:
            ids = [engine.start(chain) for _ in range(3)]
            ids.append(engine.start(ROOT / "examples" / "loop.yaml"))
            ids.append(engine.start(ROOT / "examples" / "fan_out_join.yaml"))
            for execution_id in ids:
                assert engine.wait(execution_id, timeout=60)["status"] == "completed"
            assert publisher.wait_published(timeout=30)
            table = {execution_id: engine.events(execution_id) for execution_id in ids}
        finally:
            publisher.stop()
    total = sum(len(events) for events in table.values())
    assert publisher.stats.published == total
    assert publisher.stats.duplicates == 0
    assert stream_count(nats_url) == total
    messages = consume(nats_url, total)
    assert len(messages) == total
    assert_exactly_once_in_order(messages, table)
    subjects = {s.rsplit(".", 1)[0] for s, _, _ in messages}
    assert subjects == {
        "playloop.events.tests.nats.chain",
        "playloop.events.examples.loop",
        "playloop.events.examples.fan_out_join",
    }


def test_start_if_configured_needs_the_variable(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with make_engine(tmp_path / "home", db_url, nats_url, monkeypatch) as engine:
        monkeypatch.delenv("PLAYLOOP_NATS_URL")
        assert OutboxPublisher.start_if_configured(engine.store) is None
        monkeypatch.setenv("PLAYLOOP_NATS_URL", nats_url)
        publisher = OutboxPublisher.start_if_configured(engine.store, poll_interval=0.05)
        assert publisher is not None
        try:
            summary = engine.run(ROOT / "examples" / "hello.yaml", timeout=60)
            assert summary["status"] == "completed"
            publisher.notify()
            assert publisher.wait_published(timeout=30)
        finally:
            publisher.stop()
        assert publisher.stats.published == len(engine.events(int(summary["execution_id"])))


def test_the_engine_streams_its_events_when_configured(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playloop.runtime import Engine

    monkeypatch.setenv("PLAYLOOP_NATS_URL", nats_url)
    with Engine(tmp_path / "home", db=db_url, processes=2) as engine:
        assert engine.publisher is not None
        execution_id = engine.start(ROOT / "examples" / "hello.yaml")
        assert engine.wait(execution_id, timeout=60)["status"] == "completed"
        assert engine.publisher.wait_published(timeout=30)
        table = {execution_id: engine.events(execution_id)}
    messages = consume(nats_url, len(table[execution_id]))
    assert_exactly_once_in_order(messages, table)
