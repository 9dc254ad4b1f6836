"""playloop: NoETL playbooks run as event-sourced executions that learn from their history.

The small public API::

    import playloop
    summary = playloop.run("examples/hello.yaml", workload={"name": "Ada"})
    flow = playloop.load("examples/hello.yaml")
    with playloop.Engine(home=".playloop") as engine:   # reuse for many runs
        engine.run(flow)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playloop.dsl.errors import PlaybookError
from playloop.dsl.flow import Flow

if TYPE_CHECKING:
    from playloop.runtime import Engine

__version__ = "0.1.0"

__all__ = ["Engine", "Flow", "PlaybookError", "__version__", "load", "run"]


def __getattr__(name: str) -> Any:
    """``Engine`` is imported on first use: commands that never run a playbook (``playloop
    similar``) start without the runtime."""
    if name == "Engine":
        from playloop.runtime import Engine

        return Engine
    raise AttributeError(f"module 'playloop' has no attribute {name!r}")


def load(path: str | Path) -> Flow:
    """Load and validate a playbook; raise ``PlaybookError`` naming file:line:col and field."""
    from playloop.dsl.load import load_file

    return load_file(path)


def run(
    path: str | Path,
    workload: Mapping[str, Any] | None = None,
    *,
    home: str | Path | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run a playbook to the end on the embedded store; return the ``--json`` summary."""
    from playloop.runtime import Engine

    with Engine(home) as engine:
        return engine.run(path, workload, timeout=timeout)
