"""A batch the store refuses as stale (PostgreSQL's optimistic path) is decided again the
careful way, starts included: a start in that batch still starts."""

from __future__ import annotations

from typing import Any

import pytest

from playloop.engine.events import Event
from playloop.runtime import Engine
from playloop.store.base import StaleSignal

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: stale, path: tests/stale}
workflow:
  - step: only
    tool: {kind: noop, result: 1}
"""


def test_a_start_in_a_stale_batch_still_starts(
    engine: Engine, write_playbook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = engine.store.append
    refused: list[int] = []

    def stale_once(events: list[Event]) -> None:
        if not refused and any(e.event_type == "execution.started" for e in events):
            refused.append(events[0].execution_id)
            raise StaleSignal("another process moved on")  # as the commit-time check says
        append(events)

    monkeypatch.setattr(engine.orchestrator, "optimistic", True)  # SQLite too
    monkeypatch.setattr(engine.store, "append", stale_once)
    summary = engine.run(write_playbook(PLAYBOOK), timeout=30)
    assert refused == [int(summary["execution_id"])]
    assert summary["status"] == "completed" and summary["result"] == 1
