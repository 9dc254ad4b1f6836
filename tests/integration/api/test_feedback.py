"""Feedback, manual resolutions and the failures list over HTTP; bad input appends nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.integration.api.conftest import Live

FAILS = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: fails
  path: tests/api/fails
workload:
  limit: 1
workflow:
  - step: check
    tool:
      kind: python
      input: {limit: "{{ workload.limit }}"}
      code: |
        if limit < 5:
            raise ValueError(f"limit {limit} too low")
        result = limit
"""


def _events(live: Live) -> tuple[Any, ...]:
    _, rows = live.engine.store.query("SELECT event_id FROM noetl.event ORDER BY event_id")
    return tuple(rows)


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    return dict(body["error"])


@pytest.fixture(scope="module")
def finished(live: Live) -> int:
    """A completed execution of the chain playbook."""
    live.register()
    execution_id = live.start()
    assert live.finish(execution_id)["status"] == "completed"
    return execution_id


@pytest.fixture(scope="module")
def failed(live: Live) -> int:
    """A failed execution of the ``fails`` playbook."""
    live.register(FAILS)
    execution_id = live.start("tests/api/fails")
    assert live.finish(execution_id)["status"] == "failed"
    return execution_id


def _failure(live: Live, execution_id: int, event_type: str = "step.failed") -> dict[str, Any]:
    events = live.client("viewer").get(f"/api/executions/{execution_id}/events").json()["items"]
    return next(e for e in events if e["event_type"] == event_type)


# --- feedback ----------------------------------------------------------------------------


def test_feedback_is_an_event_in_the_executions_log(live: Live, finished: int) -> None:
    body = {
        "label": "good",
        "score": 0.93,
        "metrics": {"conversion": 0.031, "users": 1200, "variant": "B", "significant": True},
        "step": "second",
        "comment": "A/B test: variant B wins",
    }
    response = live.client("operator").post(f"/api/executions/{finished}/feedback", json=body)
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["event_type"] == "feedback.received"
    assert event["execution_id"] == str(finished)
    assert event["step_name"] == "second"
    assert event["actor"] == "test-operator"
    assert event["meta"] == {
        "label": "good",
        "score": 0.93,
        "metrics": body["metrics"],
        "comment": "A/B test: variant B wins",
    }
    events = live.client("viewer").get(f"/api/executions/{finished}/events").json()["items"]
    assert events[-1] == event
    summary = live.client("viewer").get(f"/api/executions/{finished}").json()
    assert summary["status"] == "completed"


def test_feedback_needs_only_a_label(live: Live, finished: int) -> None:
    response = live.client("admin").post(
        f"/api/executions/{finished}/feedback", json={"label": "bad"}
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["meta"] == {"label": "bad", "score": None, "metrics": {}, "comment": None}
    assert event["step_name"] is None
    assert event["actor"] == "test-admin"


def test_feedback_on_an_unknown_execution_is_404(live: Live, finished: int) -> None:
    before = _events(live)
    response = live.client("operator").post(
        "/api/executions/12345/feedback", json={"label": "good"}
    )
    error = _error(response, 404)
    assert error == {"code": "not_found", "message": "no execution 12345"}
    assert _events(live) == before


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "body.label"),
        ({"label": "great"}, "body.label"),
        ({"label": None}, "body.label"),
        ({"label": "good", "score": "high"}, "body.score"),
        ({"label": "good", "score": True}, "body.score"),
        ({"label": "good", "metrics": [1, 2]}, "body.metrics"),
        ({"label": "good", "metrics": {"m": {"nested": 1}}}, "body.metrics.m"),
        ({"label": "good", "metrics": {"": 1}}, "body.metrics"),
        ({"label": "good", "step": 7}, "body.step"),
        ({"label": "good", "comment": ["x"]}, "body.comment"),
        ({"label": "good", "colour": "red"}, "body.colour"),
        ({"label": "good", "comment": "a\u0000b"}, "body.comment"),
        ({"label": "good", "metrics": {"m": "a\u0000"}}, "body.metrics"),
    ],
)
def test_bad_feedback_is_422_naming_the_field(
    live: Live, finished: int, body: dict[str, Any], where: str
) -> None:
    before = _events(live)
    response = live.client("operator").post(f"/api/executions/{finished}/feedback", json=body)
    error = _error(response, 422)
    assert error["code"] == "invalid_request"
    assert f"{where}" in error["message"], error
    assert _events(live) == before


def test_feedback_about_a_step_the_run_lacks_is_422(live: Live, finished: int) -> None:
    before = _events(live)
    response = live.client("operator").post(
        f"/api/executions/{finished}/feedback", json={"label": "good", "step": "nope"}
    )
    error = _error(response, 422)
    assert error["code"] == "unknown_step"
    assert error["message"] == f"execution {finished} has no step 'nope' (its steps: first, second)"
    response = live.client("operator").post(
        f"/api/executions/{finished}/feedback", json={"label": "good", "step": "a\u0000"}
    )
    assert _error(response, 422)["code"] == "unknown_step"
    assert _events(live) == before


def test_feedback_needs_the_operator_role(live: Live, finished: int) -> None:
    before = _events(live)
    path = f"/api/executions/{finished}/feedback"
    error = _error(live.client("viewer").post(path, json={"label": "good"}), 403)
    assert "'operator' role" in error["message"]
    _error(live.client(None).post(path, json={"label": "good"}), 401)
    assert _events(live) == before


# --- resolutions -------------------------------------------------------------------------


def test_a_failure_resolved_by_hand(live: Live, failed: int) -> None:
    failure = _failure(live, failed)
    response = live.client("operator").post(
        f"/api/events/{failure['event_id']}/resolution", json={"note": "raised the limit"}
    )
    assert response.status_code == 201, response.text
    event = response.json()
    assert event["event_type"] == "resolution.recorded"
    assert event["execution_id"] == str(failed)
    assert event["actor"] == "test-operator"
    assert event["meta"]["kind"] == "manual"
    assert event["meta"]["note"] == "raised the limit"
    assert event["meta"]["failure"]["event_id"] == failure["event_id"]
    assert event["meta"]["failure"]["seq"] == failure["seq"]

    listed = live.client("viewer").get("/api/failures", params={"playbook": "tests/api/fails"})
    assert listed.status_code == 200, listed.text
    items = {item["event_id"]: item for item in listed.json()["items"]}
    mine = items[failure["event_id"]]
    assert mine["resolved"] is True
    assert [(r["kind"], r["note"], r["actor"]) for r in mine["resolutions"]] == [
        ("manual", "raised the limit", "test-operator")
    ]
    unresolved = live.client("viewer").get(
        "/api/failures", params={"playbook": "tests/api/fails", "unresolved": "true"}
    )
    assert failure["event_id"] not in {i["event_id"] for i in unresolved.json()["items"]}


def test_resolving_an_event_that_is_no_failure_is_409(live: Live, failed: int) -> None:
    started = _failure(live, failed, "execution.started")
    before = _events(live)
    response = live.client("operator").post(
        f"/api/events/{started['event_id']}/resolution", json={"note": "x"}
    )
    error = _error(response, 409)
    assert error["code"] == "not_a_failure"
    assert "execution.started event, not a failure" in error["message"]
    assert _events(live) == before


def test_resolving_an_unknown_event_is_404(live: Live, failed: int) -> None:
    before = _events(live)
    error = _error(
        live.client("operator").post("/api/events/12345/resolution", json={"note": "x"}), 404
    )
    assert error == {"code": "not_found", "message": "no event 12345"}
    assert _events(live) == before


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "body.note"),
        ({"note": ""}, "body.note"),
        ({"note": "   "}, "body.note"),
        ({"note": 5}, "body.note"),
        ({"note": "x", "kind": "retry"}, "body.kind"),
        ({"note": "fixed \u0000"}, "body.note"),
    ],
)
def test_a_bad_resolution_is_422(live: Live, failed: int, body: dict[str, Any], where: str) -> None:
    failure = _failure(live, failed)
    before = _events(live)
    response = live.client("operator").post(
        f"/api/events/{failure['event_id']}/resolution", json=body
    )
    assert where in _error(response, 422)["message"]
    assert _events(live) == before


def test_resolving_needs_the_operator_role(live: Live, failed: int) -> None:
    failure = _failure(live, failed)
    before = _events(live)
    path = f"/api/events/{failure['event_id']}/resolution"
    _error(live.client("viewer").post(path, json={"note": "x"}), 403)
    _error(live.client(None).post(path, json={"note": "x"}), 401)
    assert _events(live) == before


def test_failures_list_links_a_later_run(live: Live, failed: int) -> None:
    fixed = live.start("tests/api/fails", workload={"limit": 10})
    assert live.finish(fixed)["status"] == "completed"
    response = live.client("viewer").get(
        "/api/failures", params={"playbook": "tests/api/fails", "limit": 10}
    )
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    of_failed = [i for i in items if i["execution_id"] == str(failed)]
    assert {i["event_type"] for i in of_failed} == {"step.failed", "execution.failed"}
    for item in of_failed:
        later = [r for r in item["resolutions"] if r["kind"] == "later_run"]
        assert len(later) == 1
        assert later[0]["resolved_by"]["execution_id"] == str(fixed)
        assert later[0]["changed"] == {"workload": {"limit": {"before": 1, "after": 10}}}
        assert later[0]["actor"] == "playloop"
    # newest first
    stamps = [i["created_at"] for i in items]
    assert stamps == sorted(stamps, reverse=True)
    assert live.client("viewer").get("/api/failures", params={"unresolved": True}).json() == {
        "items": []
    }
    # listing again records nothing more
    before = _events(live)
    live.client("viewer").get("/api/failures")
    assert _events(live) == before


def test_failures_list_rejects_bad_queries(live: Live) -> None:
    client = live.client("viewer")
    assert (
        "unknown query parameter 'status'"
        in _error(client.get("/api/failures", params={"status": "x"}), 422)["message"]
    )
    _error(client.get("/api/failures", params={"unresolved": "maybe"}), 422)
    _error(client.get("/api/failures", params={"limit": 0}), 422)
    assert (
        "NUL" in _error(client.get("/api/failures", params={"playbook": "a\x00"}), 422)["message"]
    )
    _error(live.client(None).get("/api/failures"), 401)
