"""An execution's events: paged (``after_seq`` + ``limit``) and live (server-sent events).

The stream polls the store from the last sequence number sent (every ``POLL_SECONDS``), so
it sees events committed by any process, workers included, and ends after the execution's
terminal event. ``Last-Event-ID`` (the seq of the last event a client saw) resumes it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
import orjson
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from playloop.api.auth import Viewer
from playloop.api.context import ApiContext, Context
from playloop.api.models import EventOut, EventPage
from playloop.api.routes import documented, documented_json
from playloop.api.routes.executions import TERMINAL, ExecutionId, existing
from playloop.engine.events import TERMINAL_EXECUTION, Event

router = APIRouter(prefix="/api/executions", tags=["events"])

POLL_SECONDS = 0.2
KEEPALIVE_SECONDS = 15.0
AfterSeq = Annotated[int, Query(ge=0, le=2**62, description="Only events with a larger seq.")]


def event_out(event: Event) -> EventOut:
    return EventOut.model_validate(event.to_dict())


@router.get("/{execution_id}/events", responses=documented(404))
def list_events(
    execution_id: ExecutionId,
    ctx: Context,
    _: Viewer,
    after_seq: AfterSeq = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> EventPage:
    """The execution's events in order, one page at a time."""
    existing(ctx, execution_id)
    events = ctx.store.read_events(execution_id, after_seq)
    page = events[:limit]
    return EventPage(
        items=[event_out(e) for e in page],
        after_seq=after_seq,
        limit=limit,
        has_more=len(events) > limit,
        next_after_seq=page[-1].seq if page else after_seq,
    )


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


def _frame(event: Event) -> bytes:
    data = orjson.dumps(event.to_dict(), option=orjson.OPT_NON_STR_KEYS, default=str)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.event_type.encode(), data)


async def _follow(ctx: ApiContext, execution_id: int, after_seq: int) -> AsyncIterator[bytes]:
    last = after_seq
    quiet_since = time.monotonic()
    yield b": following execution %d\n\n" % execution_id
    while True:
        events = await run_in_threadpool(ctx.store.read_events, execution_id, last)
        for event in events:
            yield _frame(event)
            last = event.seq
            if event.event_type in TERMINAL_EXECUTION:
                return
        if events:
            quiet_since = time.monotonic()
        else:
            row = await run_in_threadpool(ctx.store.get_execution, execution_id)
            if row is None or (row.status in TERMINAL and row.last_seq <= last):
                return  # ended before the events asked for
            if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                yield b": keep-alive\n\n"
                quiet_since = time.monotonic()
        await anyio.sleep(POLL_SECONDS)


@router.get(
    "/{execution_id}/stream",
    response_class=EventStream,
    responses={
        200: {
            "description": "Server-sent events: one per execution event "
            "(id: seq, event: event_type, data: the event as JSON).",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **documented_json(404),
    },
)
def stream(
    execution_id: ExecutionId,
    ctx: Context,
    _: Viewer,
    after_seq: AfterSeq = 0,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> EventStream:
    """Follow the execution's events as they are committed, until it ends."""
    existing(ctx, execution_id)
    start = after_seq
    if last_event_id is not None and last_event_id.strip().isdigit():
        start = max(start, min(int(last_event_id), 2**62))
    return EventStream(
        _follow(ctx, execution_id, start),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
