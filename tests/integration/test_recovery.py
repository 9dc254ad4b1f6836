"""A failed commit in the engine's loop loses nothing: the batch is retried."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from playloop.engine.events import Event
from playloop.runtime import Engine
from playloop.store.sqlite import SqliteStore

ROOT = Path(__file__).resolve().parents[2]


class FaultyAppendFake(SqliteStore):
    """Fake fault: the next ``failures`` appends raise as a full disk would (cannot be caused here)."""

    failures = 0

    def append(self, events: Sequence[Event]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise sqlite3.OperationalError("database or disk is full (fake fault)")
        super().append(events)


def test_failed_commits_are_retried_without_loss(tmp_path: Path) -> None:
    with Engine(tmp_path / "home", processes=2) as engine:
        faulty = FaultyAppendFake(engine.store.path)
        engine.store.close()
        engine.store = engine.orchestrator.store = faulty
        flow = engine.load(ROOT / "examples" / "hello.yaml")
        execution_id = engine.start(flow)
        faulty.failures = 3  # the next three commits (step reports) fail and roll back
        summary = engine.wait(execution_id, timeout=30)
        assert faulty.failures == 0, "the fake faults never fired"
        assert summary["status"] == "completed"
        assert summary["result"]["letters"] == 10
        events = engine.events(execution_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        finished = [e.step_name for e in events if e.event_type == "step.finished"]
        assert finished == ["greet", "measure"]
        assert faulty.commands_of(execution_id) == []
