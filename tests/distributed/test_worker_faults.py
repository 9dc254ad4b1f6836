"""Real worker processes: one killed with kill -9 mid-step loses nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from playloop.runtime import Engine
from tests.distributed.helpers import fan_out, start_worker


def test_three_workers_one_killed_mid_step(tmp_path: Path, db_url: str, db_query: Any) -> None:
    playbook = tmp_path / "fan.yaml"
    playbook.write_text(fan_out(60, 0.2))
    workers = [start_worker(db_url, tmp_path / f"w{i}") for i in range(3)]
    try:
        with Engine(tmp_path / "client", db=db_url, concurrency=0) as client:
            execution_id = client.start(playbook)
            deadline = time.time() + 60
            while True:  # wait until the victim holds a running step
                finished = db_query(
                    "SELECT count(*) FROM noetl.event WHERE event_type = 'step.finished'"
                )[0][0]
                held = db_query(
                    "SELECT count(*) FROM noetl.command WHERE lease_owner LIKE ?",
                    f"%:{workers[0].pid}:%",
                )[0][0]
                if finished >= 10 and held > 0:
                    break
                assert time.time() < deadline, "workers never got going"
                time.sleep(0.05)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait()
            summary = client.wait(execution_id, timeout=90)
        assert summary["status"] == "completed"
        assert summary["result"] == "joined"
        rows = db_query(
            "SELECT seq, event_type, step_name, meta FROM noetl.event WHERE execution_id = ? ORDER BY seq",
            execution_id,
        )
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        finished_steps = sorted(r[2] for r in rows if r[1] == "step.finished")
        assert finished_steps == sorted(["start", "join", *(f"b{i}" for i in range(60))])
        reclaimed = [
            r for r in rows if r[1] == "step.finished" and r[3] and "reclaimed" in str(r[3])
        ]
        assert reclaimed, "the killed worker's step was not taken over"
        assert db_query("SELECT count(*) FROM noetl.command")[0][0] == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
