"""``notify`` on an approval step: a worker POSTs the request with its signed ``callback_url``
(retrying a failure with backoff, each attempt an event), and a call to that URL decides,
checked like ``POST /api/decisions/{id}``; a refused call leaves no event."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.api.conftest import ServerThread
from tests.integration.test_decisions import gate, wait_paused

from playloop.api.app import create_app
from playloop.decisions.callbacks import sign
from playloop.runtime import Engine
from playloop.secrets.credentials import CredentialStore

SECRET = "s3cret-service-token-4711"


class Service:
    """An approval service on 127.0.0.1: keeps what it receives; answers 503 ``fail`` times."""

    def __init__(self, fail: int = 0) -> None:
        self.received: list[tuple[dict[str, str], Any]] = []
        self.fail = fail
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                if service.fail > 0:
                    service.fail -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                service.received.append((dict(self.headers), body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, timeout: float = 20) -> tuple[dict[str, str], Any]:
        deadline = time.time() + timeout
        while not self.received:
            assert time.time() < deadline, "the service got no request"
            time.sleep(0.02)
        return self.received[0]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[Service]:
    svc = Service()
    yield svc
    svc.close()


@pytest.fixture
def api(tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The API of a second engine (the server: it runs no steps) on the same database, with
    callback URLs pointing at it. Both engines share one home (one signing key)."""
    with Engine(engine.home, db=engine.db_url, concurrency=0) as server_engine:
        server = ServerThread(create_app(server_engine, auth_required=False)).start()
        monkeypatch.setenv("PLAYLOOP_PUBLIC_URL", server.url)
        try:
            yield server.url
        finally:
            server.stop()


def notify_gate(url: str, extra: str = "") -> str:
    lines = [
        "approvers: [ada, bob]",
        "self_approval: false",
        "notify:",
        f"  url: {url}/requests",
        "  auth: approvals",
        "  headers: {X-Playbook: '{{ playbook.path }}'}",
        *extra.splitlines(),
    ]
    return gate("\n".join(lines))


def token_id(callback_url: str) -> str:
    body = callback_url.rsplit("/", 1)[1].split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["i"])


def test_the_service_gets_the_request_and_its_callback_decides(
    engine: Engine, api: str, service: Service, write_playbook: Any
) -> None:
    CredentialStore(engine.store, engine.home).set("approvals", "http", {"token": SECRET})
    execution_id = engine.start(write_playbook(notify_gate(service.url)), actor="carol")
    request = wait_paused(engine, execution_id)
    headers, body = service.wait()
    assert headers["Authorization"] == f"Bearer {SECRET}"
    assert headers["X-Playbook"] == "tests/gate"
    assert body["decision_id"] == request["decision_id"]
    assert body["execution_id"] == str(execution_id)
    assert body["prompt"] == "low score (0.85)"
    assert body["options"] == ["approve", "reject", "override"]
    assert body["approvers"] == ["ada", "bob"] and body["form"] == {"threshold": "number"}
    callback = body["callback_url"]
    assert callback.startswith(f"{api}/api/callbacks/")
    assert token_id(callback) == request["decision_id"]
    # the worker records `decision.notified` after the service answered: wait for it
    deadline = time.time() + 20
    while "decision.notified" not in (types := [e.event_type for e in engine.events(execution_id)]):
        assert time.time() < deadline, types
        time.sleep(0.02)
    before = len(types)
    body_hash, mac = callback.rsplit("/", 1)[1].split(".")
    expired = sign(engine.home, request["decision_id"], time.time() - 5)
    refused = [
        (callback, {"action": "ship it", "decided_by": "ada"}, 422),
        (callback, {"action": "approve"}, 422),  # who decided is required
        (callback, {"action": "approve", "decided_by": "ada", "colour": 1}, 422),
        (callback, [1, 2], 422),
        (callback, {"action": "approve", "decided_by": "mallory"}, 403),
        (callback, {"action": "approve", "decided_by": "carol"}, 403),  # started the run
        (callback, {"action": "override", "decided_by": "ada", "values": {"t": 1}}, 422),
        (f"{api}/api/callbacks/{body_hash}.{'0' * len(mac)}", {"action": "approve"}, 403),
        (f"{api}/api/callbacks/{expired}", {"action": "approve", "decided_by": "ada"}, 410),
    ]
    with httpx.Client(timeout=30) as client:
        for url, payload, status in refused:
            answer = client.post(url, json=payload)
            assert answer.status_code == status, (payload, answer.text)
            assert answer.json()["error"]["message"]
        assert len(engine.events(execution_id)) == before  # no partial event
        ok = client.post(
            callback,
            json={"action": "approve", "comment": "fine by the service", "decided_by": "ada"},
        )
        assert ok.status_code == 200, ok.text
        replay = client.post(callback, json={"action": "reject", "decided_by": "bob"})
        assert replay.status_code == 409
    summary = engine.wait(execution_id, timeout=30)
    assert summary["result"] == "loaded by ada (approve)"
    events = engine.events(execution_id)
    types = [e.event_type for e in events]
    assert types.count("decision.notified") == 1 and types.count("decision.made") == 1
    assert types.index("execution.paused") < types.index("decision.made")
    made = next(e for e in events if e.event_type == "decision.made")
    assert made.actor == "ada" and made.meta is not None
    assert made.meta["via"] == "callback" and made.meta["comment"] == "fine by the service"
    row = engine.store.get_decision(request["decision_id"])
    assert row is not None and row["decided_by"] == "ada" and row["status"] == "decided"
    # the secret is in no event
    assert SECRET not in json.dumps([e.to_dict() for e in events], default=str)


def test_a_failed_notification_is_retried_and_never_holds_the_pause(
    engine: Engine, api: str, write_playbook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("playloop.engine.decisions.NOTIFY_BACKOFF", 0.2)
    CredentialStore(engine.store, engine.home).set("approvals", "http", {"token": SECRET})
    flaky = Service(fail=2)
    try:
        execution_id = engine.start(write_playbook(notify_gate(flaky.url)))
        request = wait_paused(engine, execution_id)
        _, body = flaky.wait()
        deadline = time.time() + 20
        while "decision.notified" not in (
            types := [e.event_type for e in engine.events(execution_id)]
        ):
            assert time.time() < deadline, types
            time.sleep(0.05)
    finally:
        flaky.close()
    events = engine.events(execution_id)
    failed = [e for e in events if e.event_type == "decision.notify_failed"]
    assert [e.attempt for e in failed] == [1, 2]
    assert all(
        e.error_type == "HTTPError.503" and e.meta and e.meta["retry_in"] > 0 for e in failed
    )
    notified = next(e for e in events if e.event_type == "decision.notified")
    assert notified.attempt == 3 and notified.meta and notified.meta["status_code"] == 202
    # the execution paused before the first attempt came back
    types = [e.event_type for e in events]
    assert types.index("execution.paused") < types.index("decision.notify_failed")
    engine.decide(request["decision_id"], "reject", actor="bob", comment="no")
    assert engine.wait(execution_id, timeout=30)["result"] == "rejected: no"
    assert body["decision_id"] == request["decision_id"]


def test_a_service_that_never_answers_gives_up_and_the_decision_still_waits(
    engine: Engine, write_playbook: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("playloop.engine.decisions.NOTIFY_BACKOFF", 0.1)
    path = write_playbook(gate("notify: {url: 'http://127.0.0.1:9/requests', attempts: 2}"))
    execution_id = engine.start(path)
    request = wait_paused(engine, execution_id)
    deadline = time.time() + 20
    while not any(
        e.event_type == "decision.notify_failed" and (e.meta or {}).get("gave_up")
        for e in engine.events(execution_id)
    ):
        assert time.time() < deadline
        time.sleep(0.05)
    failed = [e for e in engine.events(execution_id) if e.event_type == "decision.notify_failed"]
    assert len(failed) == 2 and failed[0].error_type == "ConnectError"
    engine.decide(request["decision_id"], "approve", actor="ada")
    assert engine.wait(execution_id, timeout=30)["status"] == "completed"


def test_a_bad_notify_template_fails_the_step(engine: Engine, write_playbook: Any) -> None:
    path = write_playbook(gate("notify: {url: '{{ workload.nowhere }}/requests'}"))
    summary = engine.run(path, timeout=30)
    assert summary["status"] == "failed"
    assert summary["error"]["step"] == "review" and summary["error"]["type"] == "TemplateError"
