"""The seed's control loop end to end, with the real CLI, server and PostgreSQL.

`playloop run examples/quality_gate_approval.yaml` pauses at the approval; a data steward
approves through the HTTP API with a token of role approver and a comment;
`record_decision` inserts who, what, why and when into `execution_decisions` (a real
PostgreSQL database, reached through an encrypted named credential); the run finishes.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "quality_gate_approval.yaml"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "playloop.cli", "server", "start", "--port", "0"],
            env=env, stdout=subprocess.DEVNULL, stderr=sink,
        )  # fmt: skip
    deadline = time.time() + 30
    while not (found := re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text())):
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.05)
    return proc, found.group(1)


def test_low_score_waits_for_an_approval_through_the_api(
    tmp_path: Path, playloop_env: dict[str, str], fresh_pg_url: str
) -> None:
    env = playloop_env
    assert cli(env, "credentials", "set", "warehouse", "--dsn", fresh_pg_url).returncode == 0
    made = cli(env, "token", "create", "--role", "approver", "--name", "data-steward")
    assert made.returncode == 0, made.stderr
    approver = made.stdout.strip()
    viewer = cli(env, "token", "create", "--role", "viewer", "--name", "someone").stdout.strip()
    server, url = start_server(env, tmp_path / "server.log")
    run = subprocess.Popen(
        [sys.executable, "-m", "playloop.cli", "run", str(EXAMPLE), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        with httpx.Client(base_url=url, timeout=30) as api:
            steward = {"Authorization": f"Bearer {approver}"}
            deadline = time.time() + 60
            while True:
                pending = api.get(
                    "/api/decisions", params={"status": "pending"}, headers=steward
                ).json()["items"]
                if pending:
                    break
                assert run.poll() is None and time.time() < deadline, run.communicate()
                time.sleep(0.1)
            (request,) = pending
            assert request["prompt"] == "Data quality below threshold (score 0.85, 12 anomalies)"
            execution = api.get(
                f"/api/executions/{request['execution_id']}", headers=steward
            ).json()
            assert execution["status"] == "paused"
            decide = f"/api/decisions/{request['decision_id']}"
            weak = api.post(
                decide, json={"action": "approve"}, headers={"Authorization": f"Bearer {viewer}"}
            )
            assert weak.status_code == 403
            answer = api.post(
                decide,
                json={"action": "approve", "comment": "anomalies checked by hand"},
                headers=steward,
            )
            assert answer.status_code == 200, answer.text
            again = api.post(decide, json={"action": "reject"}, headers=steward)
            assert again.status_code == 409
        out, errors = run.communicate(timeout=60)
        assert run.returncode == 0, errors
        summary = json.loads(out)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert summary["status"] == "completed"
    assert summary["result"] == {"loaded": True, "score": 0.85}
    assert summary["steps"]["await_human_approval"]["result"]["decided_by"] == "data-steward"
    with psycopg.connect(fresh_pg_url) as conn:
        rows = conn.execute(
            "SELECT execution_id, decision_maker, action, reasoning, decided_at FROM execution_decisions"
        ).fetchall()
    assert len(rows) == 1
    execution_id, maker, action, reasoning, decided_at = rows[0]
    assert (execution_id, maker, action, reasoning) == (
        summary["execution_id"], "data-steward", "approve", "anomalies checked by hand",
    )  # fmt: skip
    assert decided_at is not None


def test_high_score_skips_the_approval(playloop_env: dict[str, str], fresh_pg_url: str) -> None:
    assert (
        cli(playloop_env, "credentials", "set", "warehouse", "--dsn", fresh_pg_url).returncode == 0
    )
    done = cli(playloop_env, "run", str(EXAMPLE), "--set", "score=0.95", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert "await_human_approval" not in summary["steps"]
    assert summary["result"] == {"loaded": True, "score": 0.95}
    with psycopg.connect(fresh_pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM execution_decisions").fetchone() == (0,)
