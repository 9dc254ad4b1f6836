"""A live Rich view of a running execution's steps, fed by the engine's committed events."""

from __future__ import annotations

import threading
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from playloop.engine.events import Event

_STYLE = {
    "running": "yellow",
    "waiting": "cyan",
    "completed": "green",
    "failed": "red",
    "timed_out": "red",
    "skipped": "dim",
}


class StepProgress:
    """Tracks one execution (and its children) and renders a table of its steps."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.steps: dict[str, dict[str, Any]] = {}
        self.status = "starting"
        self._lock = threading.Lock()
        self._live = Live(self._table(), console=console, refresh_per_second=8, transient=False)

    def __enter__(self) -> StepProgress:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.update(self._table(), refresh=True)
        self._live.__exit__(None, None, None)

    def on_events(self, events: list[Event]) -> None:
        with self._lock:
            for e in events:
                if e.event_type.startswith("execution.") and e.parent_execution_id is None:
                    self.status = e.status or self.status
                if not e.step_name or not e.event_type.startswith(("step.", "loop.")):
                    continue
                name = (
                    e.step_name
                    if e.parent_execution_id is None
                    else f"  {e.playbook_path}:{e.step_name}"
                )
                row = self.steps.setdefault(
                    name, {"status": "pending", "attempts": 0, "ms": None, "items": ""}
                )
                if e.event_type == "step.started":
                    row["attempts"] = e.attempt or 1
                    if isinstance(e.context, dict) and "items" in e.context:
                        row["items"] = f"0/{len(e.context['items'])}"
                if e.event_type == "loop.item" and e.status == "completed" and row["items"]:
                    done, total = row["items"].split("/")
                    row["items"] = f"{int(done) + 1}/{total}"
                if e.event_type == "loop.item":
                    continue
                row["status"] = e.status or row["status"]
                if e.duration_ms is not None:
                    row["ms"] = e.duration_ms
        self._live.update(self._table())

    def _table(self) -> Table:
        table = Table(title=f"execution: {self.status}", expand=False)
        for column in ("step", "status", "attempts", "items", "ms"):
            table.add_column(column)
        for name, row in self.steps.items():
            style = _STYLE.get(row["status"], "")
            table.add_row(
                name,
                f"[{style}]{row['status']}[/]" if style else row["status"],
                str(row["attempts"]),
                row["items"],
                "" if row["ms"] is None else str(row["ms"]),
            )
        return table
