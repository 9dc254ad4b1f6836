"""Pending and past human decisions; deciding one (role approver)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from playloop.api.auth import Approver, Viewer
from playloop.api.context import Context
from playloop.api.errors import ApiError
from playloop.api.routes import documented, documented_body
from playloop.api.strict import NO_NUL
from playloop.engine.decisions import DecisionRefused

router = APIRouter(prefix="/api/decisions", tags=["decisions"])

DecisionId = Annotated[
    str,
    Path(pattern=r"^[0-9]{1,19}-[0-9]{1,9}$", description="A decision id: <execution_id>-<seq>."),
]
_CODES = {403: "forbidden", 404: "not_found", 409: "conflict", 422: "invalid_decision"}


class DecisionOut(BaseModel):
    decision_id: str
    execution_id: str
    playbook_path: str
    step: str
    status: Literal["pending", "decided", "expired"]
    prompt: str | None = None
    options: list[str] | None = None
    approvers: list[str] | None = None
    deadline: str | None = None
    requested_at: str
    decided_at: str | None = None
    action: str | None = None
    decided_by: str | None = None
    comment: str | None = None
    time_to_decide_ms: int | None = None


class DecisionPage(BaseModel):
    items: list[DecisionOut]


class DecideRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(min_length=1, max_length=64, description="One of the request's options.")
    values: dict[str, Any] = Field(default_factory=dict, description="The form's values.")
    comment: str | None = Field(default=None, max_length=10_000)


class DecideResponse(BaseModel):
    decision_id: str
    action: str
    decided_by: str
    event_id: str
    seq: int


@router.get("", responses=documented())
def list_decisions(
    ctx: Context,
    who: Viewer,
    status: Annotated[Literal["pending", "decided", "expired"] | None, Query()] = None,
    playbook: Annotated[str | None, Query(min_length=1, max_length=1024, pattern=NO_NUL)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DecisionPage:
    """Decisions, newest first (``?status=pending`` for the approvals inbox)."""
    rows = ctx.store.list_decisions(status=status, playbook=playbook, limit=limit)
    return DecisionPage(items=[DecisionOut(**row) for row in rows])


@router.get("/{decision_id}", responses=documented(404))
def get_decision(decision_id: DecisionId, ctx: Context, who: Viewer) -> DecisionOut:
    row = ctx.store.get_decision(decision_id)
    if row is None:
        raise ApiError(404, f"no decision {decision_id}", code="not_found")
    return DecisionOut(**row)


@router.post("/{decision_id}", responses=documented_body(403, 404, 409))
def decide(
    decision_id: DecisionId, body: DecideRequest, ctx: Context, who: Approver
) -> DecideResponse:
    """Approve, reject, override (or a custom option): the execution resumes."""
    try:
        event = ctx.engine.decide(
            decision_id, body.action, actor=who.name, values=body.values, comment=body.comment
        )
    except DecisionRefused as refused:
        raise ApiError(refused.status, refused.message, code=_CODES.get(refused.status)) from None
    return DecideResponse(
        decision_id=decision_id,
        action=body.action,
        decided_by=who.name,
        event_id=str(event.event_id),
        seq=event.seq,
    )
