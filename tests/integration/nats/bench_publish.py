"""Outbox -> JetStream publish throughput (events/s), against a real nats-server.

    .venv/bin/python tests/integration/nats/bench_publish.py [--events 20000]

Fills a SQLite outbox with synthetic events (about 600 bytes of JSON each) spread over 1,
10 and 200 executions, starts a publisher and times how long it takes to empty the outbox
(every event acked by JetStream and its row deleted). One execution's events go one ack
at a time (that is what keeps them in order); executions go side by side.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nats_helpers import NatsServer, stream_count

from playloop.engine.events import Event, new_id, utcnow
from playloop.export.nats import OutboxPublisher
from playloop.store.base import subject_for
from playloop.store.sqlite import SqliteStore


def fill(store: SqliteStore, events: int, executions: int) -> None:
    ids = [new_id() for _ in range(executions)]
    with store.transaction():
        for i in range(events):
            e = Event(
                execution_id=ids[i % executions],
                seq=i // executions + 1,
                event_type="step.finished",
                playbook_path="bench/publish",
                event_id=new_id(),
                step_name=f"step_{i}",
                status="completed",
                duration_ms=3,
                result={"rows": [{"n": i, "text": "x" * 300}]},
                actor="bench",
                created_at=utcnow(),
            )
            row = (e.event_id, e.execution_id, e.seq, subject_for(e), orjson.dumps(e.to_dict()))
            store._execute("insert_outbox", (*row[:4], row[4].decode()))


def run(events: int, executions: int, server: NatsServer, home: Path) -> float:
    store = SqliteStore(home / f"bench-{executions}.db")
    try:
        fill(store, events, executions)
        before = stream_count(server.url, missing_ok=True)
        publisher = OutboxPublisher(store, server.url, batch_size=1000)
        started = time.perf_counter()
        publisher.start()
        try:
            if not publisher.wait_published(timeout=600):
                raise SystemExit("the outbox did not empty in 600 s")
            elapsed = time.perf_counter() - started
        finally:
            publisher.stop()
        assert stream_count(server.url) - before == events, "lost or doubled events"
        return events / elapsed
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        with NatsServer(home / "nats-store") as server:
            for executions in (1, 10, 200):
                rate = run(args.events, executions, server, home)
                print(f"{args.events} events over {executions:>3} executions: {rate:,.0f} events/s")


if __name__ == "__main__":
    main()
