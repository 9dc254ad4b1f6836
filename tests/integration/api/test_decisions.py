"""Deciding over HTTP: every refusal has its status, a clear message and appends nothing."""

from __future__ import annotations

import time
from typing import Any

from tests.integration.api.conftest import Live

from playloop.auth.tokens import create_token

GATE = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: api_gate
  path: tests/api/gate
workflow:
  - step: review
    tool:
      kind: approval
      prompt: ship it?
      options: [approve, reject, override]
      form: {threshold: number}
      approvers: [test-approver, test-admin]
      self_approval: false
    next: [{step: done}]
  - step: done
    tool: {kind: noop, result: "{{ decision.action }} by {{ decision.decided_by }}"}
"""


def pending(live: Live, execution_id: int) -> dict[str, Any]:
    deadline = time.time() + 30
    while True:
        items = (
            live.client("viewer")
            .get("/api/decisions", params={"status": "pending"})
            .json()["items"]
        )
        found = [d for d in items if d["execution_id"] == str(execution_id)]
        if found:
            return dict(found[0])
        assert time.time() < deadline
        time.sleep(0.05)


def event_count(live: Live, execution_id: int) -> int:
    return len(live.engine.events(execution_id))


def test_each_bad_decision_is_refused_with_its_status_and_appends_nothing(live: Live) -> None:
    live.register(GATE)
    execution_id = live.start("tests/api/gate")  # started by test-operator
    admin_started = int(
        live.client("admin")
        .post("/api/execute", json={"path": "tests/api/gate"})
        .json()["execution_id"]
    )
    request = pending(live, execution_id)
    decision = f"/api/decisions/{request['decision_id']}"
    assert live.client("viewer").get(decision).json()["status"] == "pending"
    before = event_count(live, execution_id)
    approver = live.client("approver")
    mallory = live.client(token=create_token(live.engine.store, "approver", "mallory").token)
    cases: list[tuple[Any, str, dict[str, Any], int, str]] = [
        (approver, f"/api/decisions/{execution_id}-999", {"action": "approve"}, 404, "no decision"),
        (approver, "/api/decisions/12345-1", {"action": "approve"}, 404, "no decision"),
        (approver, decision, {"action": "ship"}, 422, "is not one of: approve, reject, override"),
        (approver, decision, {"action": "override", "values": {"threshold": "x"}}, 422, "number"),
        (approver, decision, {"action": "override", "values": {"colour": 1}}, 422, "not a field"),
        (approver, decision, {"action": "approve", "extra": 1}, 422, "extra"),
        (live.client("viewer"), decision, {"action": "approve"}, 403, "approver"),
        (mallory, decision, {"action": "approve"}, 403, "is not among the approvers"),
    ]
    for client, path, body, status, words in cases:
        response = client.post(path, json=body)
        assert response.status_code == status, (path, body, response.text)
        message = response.json()["error"]["message"]
        assert message and words in str(response.json()), (words, response.text)
    assert event_count(live, execution_id) == before

    # the admin may decide, but not an execution the admin started (self_approval: false)
    request2 = pending(live, admin_started)
    before2 = event_count(live, admin_started)
    refused = live.client("admin").post(
        f"/api/decisions/{request2['decision_id']}", json={"action": "approve"}
    )
    assert refused.status_code == 403 and "may not approve it" in refused.text
    assert event_count(live, admin_started) == before2

    # a proper decision; then deciding again is 409
    made = approver.post(decision, json={"action": "reject", "comment": "not today"})
    assert made.status_code == 200, made.text
    assert made.json()["decided_by"] == "test-approver"
    after = event_count(live, execution_id)
    again = approver.post(decision, json={"action": "approve"})
    assert again.status_code == 409 and "already decided" in again.json()["error"]["message"]
    assert event_count(live, execution_id) == after
    shown = live.client("viewer").get(decision).json()
    assert (shown["status"], shown["action"], shown["comment"]) == (
        "decided",
        "reject",
        "not today",
    )
    assert live.finish(execution_id)["result"] == "reject by test-approver"
