"""A step attempt's ``duration_ms`` is the tool's own time."""

from __future__ import annotations

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
