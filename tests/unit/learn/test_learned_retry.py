"""Learned retries' statistics: times to recovery, folded from the event log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playloop.engine.events import Event, new_id
from playloop.learn.stats import build_snapshot
from playloop.store.sqlite import SqliteStore

PLAYBOOK, STEP = "test/learned", "call"


def _event(t: datetime, execution_id: int, seq: int, kind: str, **fields: Any) -> Event:
    return Event(
        execution_id=execution_id,
        seq=seq,
        event_type=kind,
        playbook_path=PLAYBOOK,
        event_id=new_id(),
        created_at=t.isoformat(timespec="microseconds"),
        **fields,
    )


def test_recovery_ends_when_the_attempt_that_succeeded_began(tmp_path: Path) -> None:
    """From the first failure to the start of the attempt that passed: a retry needs to
    wait that long; how long the passing call then took is not part of it."""
    store = SqliteStore(tmp_path / "p.db")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    fail: dict[str, Any] = {"step_name": STEP, "status": "failed", "error_type": "HTTPError"}
    fail["meta"] = {"error_class": "http.503"}
    store.append(
        [
            _event(t0, 1, 1, "execution.started", status="running"),
            _event(t0, 1, 2, "step.failed", attempt=1, **fail),
            _event(t0, 1, 3, "step.retrying", step_name=STEP, attempt=2),
            _event(t0 + timedelta(seconds=0.2), 1, 4, "step.failed", attempt=2, **fail),
            _event(t0 + timedelta(seconds=0.2), 1, 5, "step.retrying", step_name=STEP, attempt=3),
            _event(
                t0 + timedelta(seconds=1.5),
                1,
                6,
                "step.finished",
                step_name=STEP,
                status="completed",
                attempt=3,
                duration_ms=500,
            ),
        ]
    )
    c503 = build_snapshot(store).classes["http.503"]
    store.close()
    assert c503.by_attempt == {2: (1, 0), 3: (1, 1)}
    assert c503.recovery is not None and c503.recovery.max == 1000.0
    assert c503.recovery_at(0.1) == c503.recovery_at(0.98) == 1000.0
