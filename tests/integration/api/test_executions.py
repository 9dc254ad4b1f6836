"""Start, list, show and cancel executions; the server's engine runs no steps."""

from __future__ import annotations

import time

from tests.integration.api.conftest import Live


def test_execute_queues_without_running_steps(fresh: Live) -> None:
    fresh.register()
    response = fresh.client("operator").post(
        "/api/execute", json={"path": "tests/api/chain", "workload": {"n": 5}}
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "running"
    assert body["playbook_path"] == "tests/api/chain"
    assert body["playbook_version"] == "1"
    execution_id = int(body["execution_id"])
    time.sleep(0.3)
    summary = fresh.client().get(f"/api/executions/{execution_id}").json()
    assert summary["status"] == "running"
    assert all(step["status"] != "completed" for step in summary["steps"].values())
    commands = fresh.engine.store.commands_of(execution_id)
    assert [c.step for c in commands] == ["first"]
    assert all(c.lease_owner is None for c in commands), "queued for workers, not leased"


def test_a_worker_finishes_what_the_server_started(fresh: Live) -> None:
    fresh.register()
    execution_id = fresh.start(workload={"n": 2})
    assert fresh.finish(execution_id)["status"] == "completed"
    summary = fresh.client("viewer").get(f"/api/executions/{execution_id}").json()
    assert summary["status"] == "completed"
    assert summary["execution_id"] == str(execution_id)
    assert summary["steps"]["second"] == {
        "status": "completed",
        "attempts": 1,
        "duration_ms": summary["steps"]["second"]["duration_ms"],
        "result": {"n": 2},
    }
    assert summary["result"] == {"n": 2}
    assert "error" not in summary
    assert "parent_execution_id" not in summary


def test_execute_by_catalog_id_and_version(fresh: Live) -> None:
    first = fresh.register()
    fresh.register("# v2\n" + fresh.client().get("/api/catalog/tests/api/chain").json()["content"])
    client = fresh.client("operator")
    by_id = client.post("/api/execute", json={"catalog_id": first["catalog_id"]})
    assert by_id.status_code == 202
    assert by_id.json()["playbook_version"] == "1"
    by_version = client.post("/api/execute", json={"path": "tests/api/chain", "version": 1})
    assert by_version.json()["playbook_version"] == "1"
    latest = client.post("/api/execute", json={"path": "tests/api/chain"})
    assert latest.json()["playbook_version"] == "2"


def test_execute_unknown_playbook_is_404(fresh: Live) -> None:
    client = fresh.client("operator")
    response = client.post("/api/execute", json={"path": "no/such"})
    assert response.status_code == 404
    assert "register it with POST /api/catalog/register" in response.json()["error"]["message"]
    assert client.post("/api/execute", json={"catalog_id": 12345}).status_code == 404
    fresh.register()
    missing_version = client.post("/api/execute", json={"path": "tests/api/chain", "version": 7})
    assert missing_version.status_code == 404
    assert fresh.engine.store.list_executions() == []


def test_execute_body_rules(fresh: Live) -> None:
    client = fresh.client("operator")
    cases = [
        ({}, "exactly one of 'path' and 'catalog_id'"),
        ({"path": "a", "catalog_id": 1}, "exactly one of 'path' and 'catalog_id'"),
        ({"catalog_id": 1, "version": 1}, "'version' goes with 'path'"),
        ({"path": "a", "workload": [1]}, "body.workload"),
        ({"path": "a", "pathh": "b"}, "body.pathh: Extra inputs are not permitted"),
        ({"path": ""}, "body.path"),
    ]
    for body, expected in cases:
        response = client.post("/api/execute", json=body)
        assert response.status_code == 422, body
        assert expected in response.json()["error"]["message"], (body, response.json())


def test_parent_execution_id_is_checked_and_recorded(fresh: Live) -> None:
    fresh.register()
    parent = fresh.start()
    client = fresh.client("operator")
    unknown = client.post(
        "/api/execute", json={"path": "tests/api/chain", "parent_execution_id": 1}
    )
    assert unknown.status_code == 404
    known = client.post(
        "/api/execute", json={"path": "tests/api/chain", "parent_execution_id": str(parent)}
    )
    assert known.status_code == 202, known.text
    child = int(known.json()["execution_id"])
    rows = {r.execution_id: r for r in fresh.engine.store.list_executions()}
    assert set(rows) == {parent, child}
    assert rows[child].parent_execution_id == parent
    assert all(e.parent_execution_id == parent for e in fresh.engine.events(child))


def test_list_filters_and_pages(fresh: Live) -> None:
    fresh.register()
    fresh.register(
        fresh.client()
        .get("/api/catalog/tests/api/chain")
        .json()["content"]
        .replace("path: tests/api/chain", "path: tests/api/other")
    )
    ids = [fresh.start() for _ in range(5)]
    other = fresh.start("tests/api/other")
    fresh.client("operator").post(f"/api/executions/{ids[0]}/cancel")
    client = fresh.client("viewer")
    everything = client.get("/api/executions").json()
    assert len(everything["items"]) == 6
    assert everything["has_more"] is False
    assert everything["next_offset"] is None
    assert everything["items"][0]["execution_id"] == str(other), "newest first"
    page = client.get("/api/executions", params={"limit": 4}).json()
    assert len(page["items"]) == 4
    assert page["has_more"] is True
    assert page["next_offset"] == 4
    rest = client.get("/api/executions", params={"limit": 4, "offset": 4}).json()
    assert len(rest["items"]) == 2
    assert rest["has_more"] is False
    seen = [i["execution_id"] for i in page["items"] + rest["items"]]
    assert sorted(seen) == sorted(str(i) for i in [*ids, other])
    chains = client.get("/api/executions", params={"playbook": "tests/api/chain"}).json()
    assert len(chains["items"]) == 5
    cancelled = client.get("/api/executions", params={"status": "cancelled"}).json()
    assert [i["execution_id"] for i in cancelled["items"]] == [str(ids[0])]
    assert client.get("/api/executions", params={"limit": 501}).status_code == 422
    assert client.get("/api/executions", params={"limit": 0}).status_code == 422
    assert client.get("/api/executions", params={"offset": -1}).status_code == 422
    bad_status = client.get("/api/executions", params={"status": "done"})
    assert bad_status.status_code == 422
    assert "query.status" in bad_status.json()["error"]["message"]
    typo = client.get("/api/executions", params={"stauts": "failed"})
    assert typo.status_code == 422
    assert "unknown query parameter 'stauts'" in typo.json()["error"]["message"]


def test_cancel(fresh: Live) -> None:
    fresh.register()
    execution_id = fresh.start()
    client = fresh.client("operator")
    response = client.post(
        f"/api/executions/{execution_id}/cancel", json={"reason": "changed my mind"}
    )
    assert response.status_code == 200
    assert response.json() == {"execution_id": str(execution_id), "status": "cancelled"}
    events = fresh.engine.events(execution_id)
    assert events[-1].event_type == "execution.cancelled"
    assert events[-1].actor == "test-operator"
    assert events[-1].meta == {"reason": "changed my mind"}
    assert fresh.engine.store.commands_of(execution_id) == []
    again = client.post(f"/api/executions/{execution_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        f"execution {execution_id} has already ended: cancelled"
    )
    assert len(fresh.engine.events(execution_id)) == len(events)


def test_unknown_execution_is_404_everywhere(fresh: Live) -> None:
    client = fresh.client("admin")
    for method, path in [
        ("GET", "/api/executions/42"),
        ("GET", "/api/executions/42/events"),
        ("GET", "/api/executions/42/stream"),
        ("POST", "/api/executions/42/cancel"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 404, path
        assert response.json() == {"error": {"code": "not_found", "message": "no execution 42"}}
