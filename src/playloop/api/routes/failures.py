"""Failures and their resolutions: list them (viewer), resolve one by hand (operator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from playloop.api.auth import Operator, Viewer
from playloop.api.context import Context
from playloop.api.errors import ApiError, not_found
from playloop.api.models import ID_LIMIT, EventOut
from playloop.api.routes import documented, documented_body
from playloop.api.routes.events import event_out
from playloop.api.strict import NO_NUL
from playloop.learn.linking import KINDS
from playloop.learn.resolutions import MAX_NOTE, NotAFailure, UnknownEvent, list_failures, resolve

router = APIRouter(tags=["failures"])

EventId = Annotated[int, Path(ge=0, lt=ID_LIMIT, description="A 64-bit event id.")]


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(
        min_length=1,
        max_length=MAX_NOTE,
        pattern=r"^[^\x00]*[^\x00\s\x1c-\x1f][^\x00]*$",  # \s and str.strip() agree
        description="What resolved the failure (not blank; no NUL characters).",
    )


class ResolutionOut(BaseModel):
    event_id: str
    kind: str | None = Field(description=f"One of {', '.join(KINDS)}.")
    note: str | None
    actor: str | None
    created_at: str
    resolved_by: dict[str, Any] | None = Field(
        description="The event that resolved it: {execution_id, seq, event_id, event_type}."
    )
    changed: dict[str, Any] | None = Field(
        description="A later run's differences: {workload: {key: {before, after}}, "
        "playbook_version: {before, after}}."
    )


class FailureOut(BaseModel):
    event_id: str
    execution_id: str
    seq: int
    playbook_path: str
    playbook_version: str | None
    event_type: str
    step_name: str | None
    iteration: int | None
    attempt: int | None
    error_type: str | None
    error_message: str | None
    created_at: str
    resolved: bool
    resolutions: list[ResolutionOut]


class FailureList(BaseModel):
    items: list[FailureOut]


@router.post(
    "/api/events/{event_id}/resolution", status_code=201, responses=documented_body(404, 409)
)
def resolve_failure(
    event_id: EventId, body: ResolveRequest, ctx: Context, who: Operator
) -> EventOut:
    """Record by hand what resolved a failure event: a ``resolution.recorded`` event (kind
    ``manual``) in the failure's execution; returns it. 409 when the event is no failure."""
    try:
        event = resolve(ctx.engine, event_id, body.note, actor=who.name)
    except UnknownEvent:
        raise not_found(f"no event {event_id}") from None
    except NotAFailure as exc:
        raise ApiError(409, str(exc), code="not_a_failure") from None
    except ValueError as exc:  # the note (the body's pattern should have caught it)
        raise ApiError(422, f"invalid request: body.note: {exc}") from None
    return event_out(event)


@router.get("/api/failures", responses=documented())
def failures(
    ctx: Context,
    _: Viewer,
    playbook: Annotated[
        str | None,
        Query(
            min_length=1, max_length=1024, pattern=NO_NUL, description="Only this playbook path."
        ),
    ] = None,
    unresolved: Annotated[bool, Query(description="Only failures nothing resolved yet.")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FailureList:
    """Failures (failed or timed-out steps and loop items, failed executions), newest first,
    each with its resolutions: a retry, a decision, a later run, a note by hand."""
    found = list_failures(ctx.engine, playbook=playbook, unresolved=unresolved, limit=limit)
    return FailureList(items=[FailureOut.model_validate(f.to_dict()) for f in found])
