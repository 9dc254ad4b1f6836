"""The HTTP server killed with kill -9 and restarted: running executions finish."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx

from tests.distributed.helpers import chain, start_server, start_worker


def test_server_kill_9_and_restart(tmp_path: Path, db_url: str, db_query: Any) -> None:
    workers = [start_worker(db_url, tmp_path / f"w{i}") for i in range(2)]
    server, url = start_server(db_url, tmp_path / "server")
    port = int(url.rsplit(":", 1)[1])
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            registered = api.post(
                "/api/catalog/register", json={"content": chain("srvkill", 12, 0.15)}
            )
            assert registered.status_code == 200, registered.text
            ids = []
            for _ in range(4):
                started = api.post("/api/execute", json={"path": "tests/srvkill"})
                assert started.status_code == 202, started.text
                ids.append(started.json()["execution_id"])
        deadline = time.time() + 60
        while (
            db_query("SELECT count(*) FROM noetl.event WHERE event_type = 'step.finished'")[0][0]
            < 6
        ):
            assert time.time() < deadline
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait()
        server, url = start_server(db_url, tmp_path / "server", port)
        with httpx.Client(base_url=url, timeout=30) as api:
            deadline = time.time() + 90
            pending = set(ids)
            while pending:
                assert time.time() < deadline, f"still running: {pending}"
                for execution_id in list(pending):
                    body = api.get(f"/api/executions/{execution_id}").json()
                    if body["status"] != "running":
                        assert body["status"] == "completed", body
                        assert body["result"] == 12
                        pending.discard(execution_id)
                time.sleep(0.2)
        for execution_id in ids:
            rows = db_query(
                "SELECT step_name FROM noetl.event WHERE execution_id = ? AND event_type = 'step.finished'",
                int(execution_id),
            )
            assert sorted(r[0] for r in rows) == sorted(f"s{i}" for i in range(12))
    finally:
        for proc in [server, *workers]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [server, *workers]:
            proc.wait(timeout=30)
