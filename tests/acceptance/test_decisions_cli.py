"""A second terminal resumes a paused `playloop run`: decisions list, approve, override."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: cli_gate, path: tests/cli_gate}
workflow:
  - step: review
    tool: {kind: approval, prompt: "ship it?", options: [approve, reject, override], form: {size: integer}}
    next: [{step: after}]
  - step: after
    tool: {kind: noop, result: "{{ decision.action }} by {{ decision.decided_by }}: {{ decision.comment }}"}
"""


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_second_terminal_approves_a_paused_run(
    tmp_path: Path, playloop_env: dict[str, str]
) -> None:
    playbook = tmp_path / "gate.yaml"
    playbook.write_text(PLAYBOOK)
    run = subprocess.Popen(
        [sys.executable, "-m", "playloop.cli", "run", str(playbook), "--json"],
        env=playloop_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 60
        while True:
            listed = cli(playloop_env, "decisions", "list", "--json")
            pending = (
                json.loads(listed.stdout)
                if listed.returncode == 0 and listed.stdout.strip()
                else []
            )
            if pending:
                break
            assert run.poll() is None and time.time() < deadline, run.communicate()
            time.sleep(0.2)
        decision_id = pending[0]["decision_id"]
        refused = cli(playloop_env, "approve", "999-1")
        assert refused.returncode == 2 and "no decision" in refused.stderr
        bad = cli(playloop_env, "override", decision_id, "--set", "size=big")
        assert bad.returncode == 2 and "must be a integer" in bad.stderr
        done = cli(playloop_env, "approve", decision_id, "--comment", "looks right", "--as", "ada")
        assert done.returncode == 0, done.stderr
        out, errors = run.communicate(timeout=60)
        assert run.returncode == 0, errors
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert json.loads(out)["result"] == "approve by ada: looks right"
    again = cli(playloop_env, "reject", decision_id)
    assert again.returncode == 2 and "already decided" in again.stderr
    stats = json.loads(cli(playloop_env, "decisions", "stats", "--json").stdout)
    assert stats[0]["count"] == 1 and stats[0]["approve_rate"] == 1.0
