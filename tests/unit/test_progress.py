from __future__ import annotations

import io

from rich.console import Console

from playloop.engine.events import Event
from playloop.progress import StepProgress


def test_progress_table_tracks_steps_and_loops() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    events = [
        Event(1, 1, "execution.started", status="running"),
        Event(
            1,
            2,
            "step.started",
            step_name="fetch",
            status="running",
            attempt=1,
            context={"items": [1, 2]},
        ),
        Event(1, 3, "loop.item", step_name="fetch", status="completed", iteration=0),
        Event(1, 4, "step.failed", step_name="fetch", status="failed", duration_ms=12),
    ]
    with StepProgress(console) as progress:
        progress.on_events(events)
    assert progress.steps["fetch"] == {"status": "failed", "attempts": 1, "ms": 12, "items": "1/2"}
    assert progress.status == "running"
    assert "fetch" in buffer.getvalue()
