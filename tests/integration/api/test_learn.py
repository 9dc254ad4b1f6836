"""GET /api/learn/similar-failures and /api/learn/search: roles, answers and bad input."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.integration.api.conftest import Live

from playloop.learn.indexer import Indexer
from playloop.store.open import open_store

FAILS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: load_orders
  path: tests/api/load_orders
  description: Load the orders file into the warehouse
workflow:
  - step: load
    tool:
      kind: python
      code: |
        raise ConnectionRefusedError(111, "Connection refused: warehouse at 10.0.0.7:5432")
"""


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    return dict(body["error"])


@pytest.fixture(scope="module")
def indexed(live: Live) -> dict[str, str]:
    live.register(FAILS)
    execution_id = live.start("tests/api/load_orders")
    assert live.finish(execution_id)["status"] == "failed"
    events = live.client("viewer").get(f"/api/executions/{execution_id}/events").json()
    items = events["items"] if isinstance(events, dict) else events
    failure = next(e for e in items if e["event_type"] == "step.failed")
    started = next(e for e in items if e["event_type"] == "execution.started")
    indexer = Indexer(open_store(live.db), live.home)  # type: ignore[arg-type]
    try:
        assert indexer.claim()
        indexer.catch_up()
    finally:
        indexer.close()
    return {"failure": failure["event_id"], "started": started["event_id"]}


def test_similar_failures_by_text_and_by_event(live: Live, indexed: dict[str, str]) -> None:
    viewer = live.client("viewer")
    response = viewer.get(
        "/api/learn/similar-failures", params={"q": "connection refused by the warehouse"}
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert items[0]["event_id"] == indexed["failure"]
    assert items[0]["playbook"] == "tests/api/load_orders" and items[0]["step"] == "load"
    assert 0 < items[0]["score"] <= 1
    by_event = viewer.get("/api/learn/similar-failures", params={"event_id": indexed["failure"]})
    assert by_event.status_code == 200, by_event.text
    assert all(i["event_id"] != indexed["failure"] for i in by_event.json()["items"])
    filtered = viewer.get(
        "/api/learn/similar-failures",
        params={"q": "connection refused", "playbook": "other/playbook", "k": 3},
    )
    assert filtered.json() == {"items": []}


def test_search_playbooks(live: Live, indexed: dict[str, str]) -> None:
    response = live.client("viewer").get(
        "/api/learn/search", params={"q": "load orders into the warehouse", "k": 1}
    )
    assert response.status_code == 200, response.text
    assert [i["path"] for i in response.json()["items"]] == ["tests/api/load_orders"]


@pytest.mark.parametrize(
    "path", ["/api/learn/similar-failures?q=timeout", "/api/learn/search?q=load"]
)
def test_roles(live: Live, path: str) -> None:
    assert _error(live.client(None).get(path), 401)
    bad = live.client(None, token="pl_0000000000000000_" + "0" * 64)
    assert _error(bad.get(path), 401)
    assert live.client("viewer").get(path).status_code == 200


def test_bad_input(live: Live, indexed: dict[str, str]) -> None:
    viewer = live.client("viewer")
    route = "/api/learn/similar-failures"
    assert "exactly one" in _error(viewer.get(route), 422)["message"]
    both = viewer.get(route, params={"q": "x", "event_id": indexed["failure"]})
    assert "exactly one" in _error(both, 422)["message"]
    assert "k" in _error(viewer.get(route, params={"q": "x", "k": 0}), 422)["message"]
    assert (
        "min_score" in _error(viewer.get(route, params={"q": "x", "min_score": 2}), 422)["message"]
    )
    assert _error(viewer.get(route, params={"event_id": "abc"}), 422)
    assert "NUL" in _error(viewer.get(route, params={"q": "a\x00b"}), 422)["message"]
    assert "blank" in _error(viewer.get(route, params={"q": "   "}), 422)["message"]
    assert (
        "unknown query parameter" in _error(viewer.get(route, params={"text": "x"}), 422)["message"]
    )
    assert _error(viewer.get(route, params={"event_id": "1"}), 404)
    not_failure = viewer.get(route, params={"event_id": indexed["started"]})
    assert _error(not_failure, 409)["code"] == "not_a_failure"
    assert _error(viewer.get("/api/learn/search"), 422)
    assert _error(viewer.get("/api/learn/search", params={"q": "x" * 5000}), 422)
