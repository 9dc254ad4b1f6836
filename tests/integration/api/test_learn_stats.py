"""``GET /api/learn/stats`` and ``GET /api/learn/suggest``."""

from __future__ import annotations

from tests.integration.api.conftest import Live


def test_stats_and_suggest_routes(fresh: Live) -> None:
    fresh.register()
    execution_id = fresh.start()
    assert fresh.finish(execution_id)["status"] == "completed"
    fresh.engine.stats.max_age = 0  # refresh on every call
    viewer = fresh.client("viewer")
    response = viewer.get("/api/learn/stats", params={"playbook": "tests/api/chain"})
    assert response.status_code == 200, response.text
    data = response.json()
    assert [s["step"] for s in data["steps"]] == ["first", "second"]
    assert all(s["completed"] == 1 for s in data["steps"])
    assert data["playbooks"][0]["completed"] == 1
    suggested = viewer.get("/api/learn/suggest", params={"playbook": "tests/api/chain"})
    assert suggested.status_code == 200, suggested.text
    assert suggested.json()["playbook"] == "tests/api/chain"
    # second reads nothing of first: it could run beside it
    kinds = [(s["kind"], s["step"]) for s in suggested.json()["suggestions"]]
    assert kinds == [("parallel", "second")]


def test_learn_routes_refuse_bad_requests(fresh: Live) -> None:
    viewer = fresh.client("viewer")
    assert viewer.get("/api/learn/stats", params={"playbok": "x"}).status_code == 422
    assert viewer.get("/api/learn/suggest").status_code == 422
    assert viewer.get("/api/learn/suggest", params={"playbook": "no/such"}).status_code == 404
    assert fresh.client(None).get("/api/learn/stats").status_code == 401
