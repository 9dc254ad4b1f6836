"""``playloop events tail``: follow the event stream in NATS JetStream.

An ephemeral ordered consumer on ``playloop.events.>`` (or one playbook's subjects) prints
each event as it arrives, one line or one JSON object a line, until Ctrl-C. It needs no
database: only the NATS server the publisher writes to. Registered on the ``events`` group
of ``cli.py`` (``events_app.command("tail")(tail)``); runnable alone with
``python -m playloop.cli_events_tail``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import nats
import orjson
import typer
from nats.js.api import DeliverPolicy

from playloop.export.nats import (
    DEFAULT_STREAM,
    DEFAULT_URL,
    ENV_URL,
    SUBJECTS,
    ensure_stream,
    subject_filter,
)


def tail(
    playbook: Annotated[
        str | None,
        typer.Option("--playbook", "-p", help="Only events of this playbook path."),
    ] = None,
    execution: Annotated[
        str | None, typer.Option("--execution", "-e", help="Only events of this execution id.")
    ] = None,
    nats_url: Annotated[
        str | None,
        typer.Option("--nats", help=f"NATS server URL (default: ${ENV_URL}, else {DEFAULT_URL})."),
    ] = None,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay the stream from its start, then follow.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event as a JSON line.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Stop after this many events.")
    ] = None,
    stream: Annotated[
        str, typer.Option("--stream", help="JetStream stream name.")
    ] = DEFAULT_STREAM,
) -> None:
    """Follow events as they are published to NATS JetStream, until Ctrl-C."""
    execution_id: int | None = None
    if execution is not None:
        try:
            execution_id = int(execution)
        except ValueError:
            typer.echo(f"error: execution id must be a number, not {execution!r}", err=True)
            raise typer.Exit(2) from None
    url = nats_url or os.environ.get(ENV_URL) or DEFAULT_URL
    subject = subject_filter(playbook, execution_id)
    render = _json_line if as_json else _text_line
    try:
        asyncio.run(
            follow(
                url,
                subject,
                stream=stream,
                from_start=from_start,
                execution_id=execution_id,
                limit=limit,
                emit=lambda data: _emit(render(data)),
            )
        )
    except KeyboardInterrupt:
        return
    except BrokenPipeError:  # piped into head: stop quietly
        with contextlib.suppress(OSError):  # and keep the final flush at exit silent
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    except (OSError, nats.errors.Error) as exc:
        typer.echo(f"error: cannot follow events at {url}: {exc}", err=True)
        raise typer.Exit(1) from None


async def follow(
    url: str,
    subject: str = SUBJECTS,
    *,
    stream: str = DEFAULT_STREAM,
    from_start: bool = False,
    execution_id: int | None = None,
    limit: int | None = None,
    emit: Callable[[bytes], None],
) -> int:
    """Call ``emit`` with each event's JSON as it arrives; return how many were emitted."""
    nc = await nats.connect(
        url, connect_timeout=2, max_reconnect_attempts=2, reconnect_time_wait=0.5, error_cb=_quiet
    )
    nc.options["max_reconnect_attempts"] = -1  # unreachable at first: fail; later: reconnect
    count = 0
    try:
        js = nc.jetstream()
        await ensure_stream(js, stream)
        policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
        sub = await js.subscribe(
            subject, ordered_consumer=True, deliver_policy=policy, stream=stream
        )
        print(f"following {subject} on {url}", file=sys.stderr, flush=True)
        wanted = None if execution_id is None else f".{execution_id}"
        async for msg in sub.messages:
            if wanted is not None and not msg.subject.endswith(wanted):
                continue
            emit(msg.data)
            count += 1
            if limit is not None and count >= limit:
                break
        await sub.unsubscribe()
    finally:
        await nc.close()
    return count


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _json_line(data: bytes) -> str:
    return data.decode()


def _text_line(data: bytes) -> str:
    event: dict[str, Any] = orjson.loads(data)
    step = event.get("step_name") or ""
    if event.get("iteration") is not None:
        step += f"[{event['iteration']}]"
    parts = [
        str(event.get("created_at", "")),
        str(event.get("playbook_path", "")),
        str(event.get("execution_id", "")),
        f"#{event.get('seq', '')}",
        str(event.get("event_type", "")),
        step,
        str(event.get("status") or ""),
    ]
    if event.get("duration_ms") is not None:
        parts.append(f"{event['duration_ms']}ms")
    if event.get("error_type"):
        parts.append(f"{event['error_type']}: {event.get('error_message') or ''}")
    return " ".join(part for part in parts if part)


async def _quiet(exc: Exception) -> None:
    """Reconnection errors are expected while NATS restarts; nats-py would log each one."""


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command()(tail)

if __name__ == "__main__":
    app()
