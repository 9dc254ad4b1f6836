"""The seed's control loop through an external approval service, with the real CLI, server
and PostgreSQL.

`playloop run examples/quality_gate_external_approval.yaml` pauses at the approval; a worker
(here the run's own) POSTs the request with its signed `callback_url` to an approval service
the test starts on 127.0.0.1, with the service's token from a named credential; the service
calls the URL back with approve, a comment and the steward's name; `record_decision` inserts
who, what, why and when into `execution_decisions`; the run finishes. The token is in no
event.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.acceptance.test_quality_gate_approval import cli, start_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quality_gate_external_approval.yaml"
TOKEN = "svc-token-5f1d7c2e9a"


class ApprovalService:
    """Receives decision requests and answers each one by calling its callback URL."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.answers: list[httpx.Response] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length))
                service.requests.append((dict(self.headers), request))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                threading.Thread(target=service.decide, args=(request,), daemon=True).start()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def decide(self, request: dict[str, Any]) -> None:
        answer = {
            "action": "approve",
            "comment": "anomalies reviewed in the approvals app",
            "decided_by": "data-steward",
        }
        self.answers.append(httpx.post(request["callback_url"], json=answer, timeout=30))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[ApprovalService]:
    svc = ApprovalService()
    yield svc
    svc.close()


def test_an_external_service_approves_through_the_callback_url(
    tmp_path: Path, playloop_env: dict[str, str], fresh_pg_url: str, service: ApprovalService
) -> None:
    env = dict(playloop_env)
    assert cli(env, "credentials", "set", "warehouse", "--dsn", fresh_pg_url).returncode == 0
    saved = cli(
        env, "credentials", "set", "approvals", "--header", f"Authorization: Bearer {TOKEN}"
    )
    assert saved.returncode == 0 and "(http)" in saved.stdout, saved.stderr
    server, url = start_server(env, tmp_path / "server.log")
    env["PLAYLOOP_PUBLIC_URL"] = url  # callback URLs point at the server
    try:
        done = subprocess.run(
            [sys.executable, "-m", "playloop.cli", "run", str(EXAMPLE), "--json",
             "--set", f"approval_service={service.url}"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "completed"
    assert summary["result"] == {"loaded": True, "score": 0.85}

    ((headers, request),) = service.requests
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert request["summary"] == "Data quality below threshold (score 0.85, 12 anomalies)"
    assert request["options"] == ["approve", "reject", "override"]
    assert request["approvers"] == ["data-steward"]
    assert request["callback_url"].startswith(f"{url}/api/callbacks/")
    assert request["request_id"].startswith(summary["execution_id"] + "-")
    (answer,) = service.answers
    assert answer.status_code == 200, answer.text

    with psycopg.connect(fresh_pg_url) as conn:
        rows = conn.execute(
            "SELECT execution_id, decision_maker, action, reasoning, decided_at FROM execution_decisions"
        ).fetchall()
    assert len(rows) == 1
    execution_id, maker, action, reasoning, decided_at = rows[0]
    assert (execution_id, maker, action, reasoning) == (
        summary["execution_id"], "data-steward", "approve", "anomalies reviewed in the approvals app",
    )  # fmt: skip
    assert decided_at is not None

    shown = cli(env, "events", summary["execution_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    assert TOKEN not in shown.stdout
    events = json.loads(shown.stdout)
    types = [e["event_type"] for e in events]
    assert types.index("execution.paused") < types.index("decision.made")
    assert types.count("decision.notified") == 1
    made = next(e for e in events if e["event_type"] == "decision.made")
    assert made["actor"] == "data-steward" and made["meta"]["via"] == "callback"
