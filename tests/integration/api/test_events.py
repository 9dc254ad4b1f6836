"""An execution's events: paged, and streamed live (server-sent events) until it ends."""

from __future__ import annotations

import threading
import time

import httpx
import orjson
from tests.integration.api.conftest import Live


def _sse(text: str) -> list[dict[str, str]]:
    """Parse server-sent events (comments dropped)."""
    frames = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
        if fields:
            frames.append(fields)
    return frames


def test_events_are_paged_by_after_seq(fresh: Live) -> None:
    fresh.register()
    execution_id = fresh.start()
    fresh.finish(execution_id)
    stored = fresh.engine.events(execution_id)
    assert len(stored) >= 5
    client = fresh.client("viewer")
    seen: list[int] = []
    after = 0
    pages = 0
    while True:
        page = client.get(
            f"/api/executions/{execution_id}/events", params={"after_seq": after, "limit": 2}
        ).json()
        pages += 1
        assert page["after_seq"] == after
        assert len(page["items"]) <= 2
        seen += [e["seq"] for e in page["items"]]
        after = page["next_after_seq"]
        if not page["has_more"]:
            break
    assert seen == [e.seq for e in stored]
    assert pages == (len(stored) + 1) // 2
    first = client.get(f"/api/executions/{execution_id}/events").json()["items"][0]
    assert first == {**stored[0].to_dict(), "execution_id": str(execution_id)}
    beyond = client.get(
        f"/api/executions/{execution_id}/events", params={"after_seq": 10_000}
    ).json()
    assert beyond["items"] == []
    assert beyond["has_more"] is False
    assert beyond["next_after_seq"] == 10_000


def test_stream_follows_until_the_terminal_event(fresh: Live) -> None:
    fresh.register()
    execution_id = fresh.start()
    received: list[dict[str, str]] = []
    done = threading.Event()

    def follow() -> None:
        with (
            httpx.Client(base_url=fresh.url, timeout=30) as client,
            client.stream(
                "GET",
                f"/api/executions/{execution_id}/stream",
                headers={"Authorization": f"Bearer {fresh.tokens['viewer']}"},
            ) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            received.extend(_sse(response.read().decode()))
        done.set()

    thread = threading.Thread(target=follow)
    thread.start()
    time.sleep(0.5)
    assert not done.is_set(), "the stream stays open while the execution runs"
    cancelled_at = time.monotonic()
    fresh.client("operator").post(f"/api/executions/{execution_id}/cancel")
    thread.join(timeout=10)
    assert done.is_set()
    assert time.monotonic() - cancelled_at < 2, "the stream sees new events within a poll"
    stored = fresh.engine.events(execution_id)
    assert [int(f["id"]) for f in received] == [e.seq for e in stored]
    assert [f["event"] for f in received] == [e.event_type for e in stored]
    assert received[-1]["event"] == "execution.cancelled"
    assert orjson.loads(received[0]["data"])["execution_id"] == str(execution_id)


def test_stream_resumes_after_last_event_id_and_ends_for_finished(fresh: Live) -> None:
    fresh.register()
    execution_id = fresh.start()
    fresh.finish(execution_id)
    stored = fresh.engine.events(execution_id)
    client = fresh.client("viewer")
    path = f"/api/executions/{execution_id}/stream"
    everything = _sse(client.get(path).text)
    assert [int(f["id"]) for f in everything] == [e.seq for e in stored]
    resumed = _sse(client.get(path, headers={"Last-Event-ID": "2"}).text)
    assert [int(f["id"]) for f in resumed] == [e.seq for e in stored if e.seq > 2]
    past_the_end = client.get(path, params={"after_seq": stored[-1].seq}, timeout=5)
    assert past_the_end.status_code == 200
    assert _sse(past_the_end.text) == []
