"""A python step that has to wait for its child interpreter to start is not a slow step.

The ``python`` tool runs code in long-lived child processes started on first use. The
step that starts one waits for the interpreter; that wait is recorded apart
(``meta.startup_ms``) and left out of ``duration_ms``, which duration statistics and
anomaly detection read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from playloop.runtime import Engine

STEP = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: tick, path: tests/startup/tick}
workflow:
  - step: tick
    tool: {kind: python, code: "result = 1"}
"""

#: how long the slowed child interpreter takes to start (a loaded machine, a heavy site)
SLOW_START = 0.6


def test_a_cold_child_is_not_a_duration_anomaly(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    playbook = tmp_path / "tick.yaml"
    playbook.write_text(STEP)
    home = tmp_path / "home"
    with Engine(home, db=db_url, concurrency=2, processes=1) as engine:
        for _ in range(25):  # warm runs: the baseline (the first one starts the child)
            assert engine.run(playbook)["status"] == "completed"
    # the next engine's child starts slowly: its interpreter runs this sitecustomize first
    site = tmp_path / "slow_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import time\ntime.sleep({SLOW_START})\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    with Engine(home, db=db_url, concurrency=2, processes=1) as engine:
        summary = engine.run(playbook)
        events = engine.events(int(summary["execution_id"]))
    assert summary["status"] == "completed"
    assert [e.meta for e in events if e.event_type == "anomaly.detected"] == []
    finished = next(e for e in events if e.event_type == "step.finished")
    assert finished.duration_ms is not None and finished.duration_ms < SLOW_START * 1000 / 2
    assert finished.meta is not None and finished.meta["startup_ms"] >= SLOW_START * 1000 * 0.9
