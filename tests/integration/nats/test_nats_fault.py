"""NATS stopped mid-run and started again: executions finish, and every event is published
exactly once, in order per execution."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from nats_helpers import (
    NatsServer,
    assert_exactly_once_in_order,
    attach_publisher,
    chain_playbook,
    consume,
    make_engine,
    stream_count,
)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_nats_down_mid_run_loses_and_doubles_nothing(
    tmp_path: Path,
    db_url: str,
    own_nats: NatsServer,
    monkeypatch: pytest.MonkeyPatch,
    sig: int,
) -> None:
    chain = chain_playbook(tmp_path / "slow.yaml", "slow_chain", steps=30, delay=0.05)
    with make_engine(tmp_path / "home", db_url, own_nats.url, monkeypatch) as engine:
        publisher = attach_publisher(engine, own_nats.url, publish_timeout=2.0)
        try:
            ids = [engine.start(chain) for _ in range(4)]
            deadline = time.monotonic() + 30
            while publisher.stats.published < 20:  # some events are out, the runs go on
                assert time.monotonic() < deadline, "nothing was published"
                time.sleep(0.01)
            own_nats.stop(sig)
            stopped_at = publisher.stats.published

            for execution_id in ids:  # the runs finish while NATS is down
                assert engine.wait(execution_id, timeout=60)["status"] == "completed"
            waiting = publisher.outbox.count()
            assert waiting > 0, "every event was out before NATS stopped: the test proved nothing"
            assert not publisher.stats.connected
            assert publisher.stats.failures >= 1
            time.sleep(0.5)  # a few failed reconnects
            assert publisher.stats.published == stopped_at

            own_nats.start()  # same port, same store directory
            assert publisher.wait_published(timeout=30)
            table = {execution_id: engine.events(execution_id) for execution_id in ids}
        finally:
            publisher.stop()
    total = sum(len(events) for events in table.values())
    assert stream_count(own_nats.url) == total
    messages = consume(own_nats.url, total)
    assert len(messages) == total
    assert_exactly_once_in_order(messages, table)
    # a publish whose ack was lost when the server went down is sent again and deduplicated
    assert publisher.stats.published + publisher.stats.duplicates >= total
