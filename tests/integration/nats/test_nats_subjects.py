"""Subject filters match ``subject_for``; an oversized event still goes out, as its envelope."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from nats_helpers import attach_publisher, consume, make_engine

from playloop.engine.events import Event
from playloop.export.nats import SUBJECTS, fit_payload, subject_filter
from playloop.store.base import subject_for


@pytest.mark.parametrize("path", ["data/ingestion/daily_load", "hello", "a b/c.d/é"])
def test_subject_filter_matches_subject_for(path: str) -> None:
    event = Event(execution_id=42, seq=1, event_type="execution.started", playbook_path=path)
    subject = subject_for(event)
    assert subject_filter(path, 42) == subject
    assert subject_filter(path) == subject.rsplit(".", 1)[0] + ".*"
    assert subject_filter() == subject_filter(None, 42) == SUBJECTS


def test_fit_payload_keeps_small_events_and_trims_big_ones() -> None:
    small = orjson.dumps({"event_id": "1", "result": "x"})
    assert fit_payload(small, 1000) is small
    big = orjson.dumps(
        {"event_id": "1", "seq": 3, "result": "x" * 5000, "error_message": "e" * 5000}
    )
    trimmed = orjson.loads(fit_payload(big, 2000))
    assert trimmed["truncated"] is True
    assert trimmed["result"] is None and len(trimmed["error_message"]) == 1000
    tiny = orjson.loads(fit_payload(big, 200))
    assert tiny == {
        "event_id": "1",
        "execution_id": None,
        "seq": 3,
        "event_type": None,
        "playbook_path": None,
        "step_name": None,
        "truncated": True,
    }


BIG = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: big, path: tests/nats/big}
workflow:
  - step: big
    tool: {kind: python, code: "result = 'x' * 1_500_000"}
    next: [{step: after}]
  - step: after
    tool: {kind: python, code: "result = 'small'"}
"""


def test_an_event_over_the_max_payload_goes_out_as_its_envelope(
    tmp_path: Path, db_url: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = tmp_path / "big.yaml"
    playbook.write_text(BIG)
    with make_engine(tmp_path / "home", db_url, nats_url, monkeypatch) as engine:
        publisher = attach_publisher(engine, nats_url)
        try:
            summary = engine.run(playbook, timeout=60)
            assert summary["status"] == "completed"
            assert publisher.wait_published(timeout=30)
            events = engine.events(int(summary["execution_id"]))
        finally:
            publisher.stop()
    messages = consume(nats_url, len(events))
    assert [m[1]["seq"] for m in messages] == [e.seq for e in events]
    truncated = [m[1] for m in messages if m[1].get("truncated")]
    assert [(e["event_type"], e["step_name"]) for e in truncated] == [("step.finished", "big")]
