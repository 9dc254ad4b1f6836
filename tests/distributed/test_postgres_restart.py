"""PostgreSQL restarted (pg_ctl restart) mid-run: workers reconnect, the execution completes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from playloop.runtime import Engine
from tests.distributed.helpers import start_worker

pytestmark = pytest.mark.postgres_only


def _chain(n: int, sleep: float) -> str:
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        "metadata: {name: chain, path: tests/pgrestart}",
        "workflow:",
    ]
    for i in range(n):
        prev = f'"{{{{ s{i - 1} }}}}"' if i else "0"
        lines.append(f"  - step: s{i}")
        lines.append(
            f"    tool: {{kind: python, input: {{x: {prev}}}, code: 'import time; time.sleep({sleep}); result = x + 1'}}"
        )
        if i < n - 1:
            lines.append(f"    next: [{{step: s{i + 1}}}]")
    return "\n".join(lines) + "\n"


def _pg_ctl(*args: str) -> None:
    bindir = os.environ["PLAYLOOP_TEST_PG_BINDIR"]
    base = Path(os.environ["PLAYLOOP_SERVICES_DIR"])
    cmd = [
        f"{bindir}/pg_ctl",
        "-D",
        str(base / "pg"),
        "-l",
        str(base / "pg.log"),
        "-w",
        "-t",
        "60",
        *args,
    ]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    # the restarted server must not inherit our pipes: its log goes to the file
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_postgres_restart_mid_run(tmp_path: Path, db_url: str, db_query: Any) -> None:
    playbook = tmp_path / "chain.yaml"
    playbook.write_text(_chain(30, 0.1))
    workers = [start_worker(db_url, tmp_path / f"w{i}") for i in range(2)]
    try:
        with Engine(tmp_path / "client", db=db_url, concurrency=0) as client:
            execution_id = client.start(playbook)
            deadline = time.time() + 60
            while (
                db_query("SELECT count(*) FROM noetl.event WHERE event_type = 'step.finished'")[0][
                    0
                ]
                < 8
            ):
                assert time.time() < deadline
                time.sleep(0.05)
            _pg_ctl("restart", "-m", "fast")
            summary = client.wait(execution_id, timeout=120)
        assert summary["status"] == "completed"
        assert summary["result"] == 30
        rows = db_query(
            "SELECT seq, event_type, step_name FROM noetl.event WHERE execution_id = ? ORDER BY seq",
            execution_id,
        )
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert sorted(r[2] for r in rows if r[1] == "step.finished") == sorted(
            f"s{i}" for i in range(30)
        )
        assert all(w.poll() is None for w in workers), "a worker died with the database restart"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
