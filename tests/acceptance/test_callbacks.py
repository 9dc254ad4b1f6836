"""The seed's second form: an http step posts to an external approval service with a signed
``callback_url`` and waits; the service calls it back; tampered, expired and replayed calls
are refused (403, 410, 409)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from playloop.decisions.callbacks import sign

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: callback, path: tests/callback}}
workload: {{service: "{service}"}}
workflow:
  - step: ask_service
    tool:
      kind: http
      method: POST
      url: "{{{{ workload.service }}}}/requests"
      json: {{issue: low score, callback_url: "{{{{ callback_url }}}}"}}
      wait: callback
      wait_timeout: 60s
    next:
      - when: "{{{{ ask_service.action == 'approve' }}}}"
        then: [{{step: load}}]
      - else: [{{step: stop}}]
  - step: load
    tool: {{kind: noop, result: "loaded: {{{{ ask_service.comment }}}}"}}
  - step: stop
    tool: {{kind: noop, result: stopped}}
"""


class ApprovalService(BaseHTTPRequestHandler):
    """A small approval service: it receives requests and keeps them for the test."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        ApprovalService.received.append(json.loads(self.rfile.read(length)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    ApprovalService.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ApprovalService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_external_service_calls_back(
    tmp_path: Path, playloop_env: dict[str, str], service: str
) -> None:
    env = dict(playloop_env)
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "playloop.cli", "server", "start", "--port", "0", "--no-auth"],
            env=env, stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    deadline = time.time() + 30
    while not (found := re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text())):
        assert server.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.05)
    url = found.group(1)
    env["PLAYLOOP_PUBLIC_URL"] = url
    playbook = tmp_path / "callback.yaml"
    playbook.write_text(PLAYBOOK.format(service=service))
    run = subprocess.Popen(
        [sys.executable, "-m", "playloop.cli", "run", str(playbook), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while not ApprovalService.received:
            assert run.poll() is None and time.time() < deadline, run.communicate()
            time.sleep(0.05)
        request = ApprovalService.received[0]
        assert request["issue"] == "low score"
        callback = request["callback_url"]
        assert callback.startswith(f"{url}/api/callbacks/")
        token = callback.rsplit("/", 1)[1]
        body, mac = token.split(".")
        tampered = f"{url}/api/callbacks/{body}.{'0' * len(mac)}"
        callback_id = json.loads(
            __import__("base64").urlsafe_b64decode(body + "=" * (-len(body) % 4))
        )["i"]
        expired = (
            f"{url}/api/callbacks/{sign(Path(env['PLAYLOOP_HOME']), callback_id, time.time() - 5)}"
        )
        with httpx.Client(timeout=30) as client:
            assert client.post(tampered, json={"action": "approve"}).status_code == 403
            assert client.post(expired, json={"action": "approve"}).status_code == 410
            ok = client.post(callback, json={"action": "approve", "comment": "fine by the service"})
            assert ok.status_code == 200, ok.text
            replay = client.post(callback, json={"action": "reject"})
            assert replay.status_code == 409
        out, errors = run.communicate(timeout=60)
        assert run.returncode == 0, errors
        summary = json.loads(out)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert summary["result"] == "loaded: fine by the service"
    assert summary["steps"]["ask_service"]["result"] == {
        "action": "approve",
        "comment": "fine by the service",
    }
    done = subprocess.run(
        [sys.executable, "-m", "playloop.cli", "events", summary["execution_id"], "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    types = [e["event_type"] for e in json.loads(done.stdout)]
    assert "callback.received" in types and "execution.paused" in types
    assert types.count("callback.received") == 1
