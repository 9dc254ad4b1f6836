"""A step attempt's ``duration_ms`` is the tool's own time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from playloop.engine.commands import Command
from playloop.engine.signals import Outcome
from playloop.worker.execute import execute


def test_a_failure_duration_leaves_out_the_similar_lookup(tmp_path: Path) -> None:
    def slow_lookup(**_: Any) -> list[dict[str, Any]]:
        time.sleep(0.3)  # a lookup may take up to its budget
        return [{"event_id": "1", "score": 0.9}]

    # the python tool without a process pool fails at once
    cmd = Command(1, "run", "s", 1, payload={"tool": "python", "config": {"code": "result = 1"}})
    out = execute(cmd, processes=None, home=tmp_path, playbook_file=None, similar=slow_lookup)
    assert isinstance(out, Outcome) and not out.ok
    assert out.meta["similar"] == [{"event_id": "1", "score": 0.9}]
    assert out.duration_ms is not None and out.duration_ms < 250
    assert "startup_ms" not in out.meta


#: the first step of a fresh process (a worker's: it runs a command before it loads any flow)
FIRST_STEP = """\
from pathlib import Path
from playloop.engine.commands import Command
from playloop.worker.execute import execute

out = execute(
    Command(1, "run", "s", 1, payload={"tool": "noop", "config": {"result": 1}}),
    processes=None, home=Path("."), playbook_file=None,
)
print(out.duration_ms)
"""


def test_the_first_step_of_a_process_leaves_out_loading_the_tools() -> None:
    """Every tool kind (httpx, psycopg, duckdb...) is imported on a process's first step:
    100 ms or more, which is not that step's time."""
    done = subprocess.run(
        [sys.executable, "-c", FIRST_STEP], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 20
