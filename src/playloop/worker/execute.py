"""Run one command's tool and turn what happened into a signal for the orchestrator."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from playloop.decisions.callbacks import PLACEHOLDER, callback_url
from playloop.decisions.notify import send as send_notification
from playloop.engine.commands import Command
from playloop.engine.orchestrator import SpawnChild
from playloop.engine.signals import Outcome
from playloop.tools.base import (
    ChildExecution,
    Tool,
    ToolContext,
    ToolError,
    ToolTimeout,
    error_facts,
)
from playloop.tools.registry import tool
from playloop.worker.processes import ProcessPool

SimilarLookup = Callable[..., list[dict[str, Any]] | None]


def execute(
    cmd: Command,
    *,
    processes: ProcessPool | None,
    home: Path,
    playbook_file: Path | None,
    credentials: Callable[[str], dict[str, Any]] | None = None,
    similar: SimilarLookup | None = None,
) -> Outcome | SpawnChild:
    """Run the command's tool; ``similar`` (when given) finds past failures like a failure
    here, within its own time budget, for the failure event's ``meta.similar``."""
    if cmd.kind == "notify":  # send a decision request to its service
        return send_notification(cmd, home=home, credentials=credentials)
    payload = cmd.payload
    # a process's first step loads every tool kind (their modules, httpx, psycopg...): a
    # start-up cost of the process, not that step's time
    impl: Tool | None = None
    unknown: Exception | None = None
    try:
        impl = tool(payload["tool"])
    except Exception as exc:
        unknown = exc
    started = time.perf_counter()
    meta: dict[str, Any] = {"reclaimed": True} if cmd.claims > 1 else {}
    ctx: ToolContext | None = None

    def duration_ms() -> int:
        """The attempt's time so far, less what it waited for its runtime to start (a python
        child interpreter: ``meta.startup_ms``), so that statistics see the step's own time."""
        elapsed = time.perf_counter() - started
        startup = ctx.startup if ctx is not None else 0.0
        if startup >= 0.001:
            meta["startup_ms"] = round(startup * 1000)
        return max(0, int((elapsed - startup) * 1000))

    def failed(error_type: str, message: str, **extra: Any) -> Outcome:
        duration = duration_ms()  # not the lookup below
        if similar is not None:
            try:
                found = similar(
                    execution_id=cmd.execution_id,
                    step=cmd.step,
                    tool=payload.get("tool"),
                    error_type=error_type,
                    message=message,
                    config=payload.get("config"),
                )
            except Exception:  # a lookup never fails the report
                found = None
            if found:
                meta["similar"] = found
        return Outcome(
            command=cmd,
            ok=False,
            error_type=error_type,
            error_message=message,
            duration_ms=duration,
            meta=meta,
            **extra,
        )

    try:
        if impl is None:
            raise unknown or KeyError("tool")
        raw_config = payload.get("config") or {}
        if payload.get("callback"):  # the step waits for a call: give it its signed URL
            url = callback_url(home, payload["callback"]["id"], payload["callback"]["expires"])
            raw_config = _with_url(raw_config, url)
        config = impl.Config.model_validate(raw_config)
        ctx = ToolContext(
            execution_id=cmd.execution_id,
            step=cmd.step,
            iteration=cmd.iteration,
            attempt=cmd.attempt,
            timeout=payload.get("timeout"),
            playbook_file=playbook_file,
            home=home,
            processes=processes,
            credentials=credentials,
        )
        result = impl.run(config, dict(payload.get("input") or {}), ctx)
    except ToolTimeout as exc:
        return failed(exc.error_type, exc.message, timed_out=True)
    except ToolError as exc:
        if exc.details:
            meta["details"] = {k: v for k, v in exc.details.items() if k != "traceback"}
        return failed(exc.error_type, exc.message, retry_after=exc.retry_after)
    except ValidationError as exc:
        return failed("ConfigError", f"step '{cmd.step}': tool config: {exc}")
    except Exception as exc:
        facts = error_facts(exc)
        if facts:
            meta["details"] = facts
        return failed(type(exc).__name__, str(exc))
    if isinstance(result, ChildExecution):
        return SpawnChild(command=cmd, path=result.path, workload=dict(result.workload))
    try:
        orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as exc:
        return failed("ResultError", f"step '{cmd.step}': result is not JSON-serialisable: {exc}")
    return Outcome(command=cmd, ok=True, result=result, duration_ms=duration_ms(), meta=meta)


def _with_url(value: Any, url: str) -> Any:
    """``value`` with the callback placeholder replaced by the signed URL, at any depth."""
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, url)
    if isinstance(value, dict):
        return {k: _with_url(v, url) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_url(v, url) for v in value]
    return value
