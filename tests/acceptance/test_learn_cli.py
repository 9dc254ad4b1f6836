"""`playloop learn update|rebuild` through the real CLI: the index follows the event log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FAILING = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: refused, path: tests/learn_cli/refused}
workflow:
  - step: call
    tool: {kind: http, url: "http://127.0.0.1:9/", method: GET}
"""


def playloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_update_indexes_new_failures_and_rebuild_gives_the_same_counts(tmp_path: Path) -> None:
    playbook = tmp_path / "refused.yaml"
    playbook.write_text(FAILING)
    home = str(tmp_path / "home")
    assert playloop("run", str(playbook), "--home", home, "--no-index").returncode == 1
    updated = playloop("learn", "update", "--home", home, "--json")
    assert updated.returncode == 0, updated.stderr
    assert json.loads(updated.stdout)["counts"]["failures"] == 1
    # the checkpoint lags a few seconds behind (late commits): a second pass may read the
    # failure again, and must not index it twice
    again = json.loads(playloop("learn", "update", "--home", home, "--json").stdout)
    assert again["counts"]["failures"] == 1
    rebuilt = playloop("learn", "rebuild", "--home", home, "--json")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert json.loads(rebuilt.stdout)["counts"] == {"failures": 1, "playbooks": 1, "decisions": 0}
    found = playloop("similar", "connection refused", "--home", home, "--json")
    assert found.returncode == 0, found.stderr
    assert "tests/learn_cli/refused" in found.stdout
