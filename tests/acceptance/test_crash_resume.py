"""kill -9 of a running ``playloop run`` mid-way, then ``--resume``: nothing lost or doubled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PLAYLOOP = [sys.executable, "-m", "playloop.cli"]


def _chain(n: int, sleep: float) -> str:
    lines = [
        "apiVersion: noetl.io/v2",
        "kind: Playbook",
        "metadata: {name: crash, path: tests/crash}",
        "workflow:",
    ]
    for i in range(n):
        lines += [
            f"  - step: s{i:02d}",
            "    tool:",
            "      kind: python",
            f'      input: {{prev: "{{{{ s{i - 1:02d} if {i} > 0 else 0 }}}}"}}'
            if i
            else "      input: {prev: 0}",
            f'      code: "import time; time.sleep({sleep}); result = prev + 1"',
        ]
        if i < n - 1:
            lines.append(f"    next: [{{step: s{i + 1:02d}}}]")
    return "\n".join(lines) + "\n"


def test_kill_9_mid_run_then_resume_completes_without_loss(
    tmp_path: Path, playloop_env: dict[str, str], db_query: Any
) -> None:
    def count(sql: str) -> int:
        try:
            return int(db_query(sql)[0][0])
        except Exception:  # the database may not exist yet
            return 0

    playbook = tmp_path / "chain.yaml"
    playbook.write_text(_chain(20, 0.15))
    env = playloop_env
    proc = subprocess.Popen(
        [*PLAYLOOP, "run", str(playbook), "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 60
    while count("SELECT count(*) FROM noetl.event WHERE event_type = 'step.finished'") < 8:
        assert time.time() < deadline, "the run never got going"
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    finished_before = count("SELECT count(*) FROM noetl.event WHERE event_type = 'step.finished'")
    assert 8 <= finished_before < 20
    execution_id = db_query("SELECT execution_id FROM noetl.execution")[0][0]

    resumed = subprocess.run(
        [*PLAYLOOP, "run", "--resume", str(execution_id), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "completed"
    assert summary["result"] == 20

    rows = db_query(
        "SELECT seq, event_type, step_name FROM noetl.event WHERE execution_id = ? ORDER BY seq",
        execution_id,
    )
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), "seq has a gap"
    finished = [r[2] for r in rows if r[1] == "step.finished"]
    assert sorted(finished) == [f"s{i:02d}" for i in range(20)], "a step finished twice or never"
    assert [r[1] for r in rows].count("execution.finished") == 1
    assert count("SELECT count(*) FROM noetl.command") == 0
