"""Pools route steps to workers: a `pool: gpu` step runs only on a `--pool gpu` worker."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from playloop.runtime import Engine
from tests.distributed.helpers import start_worker

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: pools, path: tests/pools}
workflow:
  - step: prepare
    tool: {kind: python, code: "import os; result = os.getppid()"}
    next: [{step: train}]
  - step: train
    pool: gpu
    tool: {kind: python, code: "import os; result = os.getppid()", spec: {timeout: 30}}
    next: [{step: report}]
  - step: report
    tool: {kind: noop, result: done}
"""


def test_pool_steps_run_on_their_pool_only(tmp_path: Path, db_url: str) -> None:
    playbook = tmp_path / "pools.yaml"
    playbook.write_text(PLAYBOOK)
    default = start_worker(db_url, tmp_path / "default", pool="default")
    try:
        with Engine(tmp_path / "client", db=db_url, concurrency=0) as client:
            execution_id = client.start(playbook)
            # the default worker runs `prepare` (once it is up), and must leave `train` alone
            deadline = time.monotonic() + 60
            while (steps := client.summary(execution_id)["steps"]).get("prepare", {}).get(
                "status"
            ) != "completed":
                assert time.monotonic() < deadline, steps
                time.sleep(0.05)
            time.sleep(1.0)  # time enough to claim `train`, were it the default pool's
            summary = client.summary(execution_id)
            assert "train" in summary["steps"] and summary["steps"]["train"]["status"] == "running"
            gpu = start_worker(db_url, tmp_path / "gpu", pool="gpu")
            try:
                summary = client.wait(execution_id, timeout=60)
            finally:
                gpu.send_signal(signal.SIGTERM)
                gpu.wait(timeout=30)
            events = client.events(execution_id)
    finally:
        default.send_signal(signal.SIGTERM)
        default.wait(timeout=30)
    assert summary["status"] == "completed" and summary["result"] == "done"
    actors: dict[str, Any] = {
        e.step_name: e.actor for e in events if e.event_type == "step.finished"
    }
    assert f":{gpu.pid}:" in actors["train"]
    assert f":{default.pid}:" in actors["prepare"]
    assert f":{default.pid}:" in actors["report"]
