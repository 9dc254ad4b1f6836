"""Start, list, show and cancel executions.

The server's engine runs no steps (``concurrency=0``): starting an execution appends its
first events and queues its commands, which worker processes claim.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from playloop.api.auth import Operator, Viewer
from playloop.api.context import ApiContext, Context
from playloop.api.errors import ApiError, not_found
from playloop.api.models import (
    ID_LIMIT,
    CancelRequest,
    CancelResponse,
    ExecuteRequest,
    ExecuteResponse,
    ExecutionOut,
    ExecutionPage,
    ExecutionStatus,
    ExecutionSummary,
)
from playloop.api.routes import documented, documented_body
from playloop.api.strict import NO_NUL
from playloop.engine.orchestrator import UnknownExecution
from playloop.store.base import CatalogEntry, ExecutionRow

router = APIRouter(tags=["executions"])

ExecutionId = Annotated[int, Path(ge=0, lt=ID_LIMIT, description="A 64-bit execution id.")]
TERMINAL = ("completed", "failed", "cancelled")


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def execution_out(row: ExecutionRow) -> ExecutionOut:
    return ExecutionOut(
        execution_id=str(row.execution_id),
        playbook_path=row.playbook_path,
        playbook_version=row.playbook_version,
        parent_execution_id=_id(row.parent_execution_id),
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        error_message=row.error_message,
    )


def existing(ctx: ApiContext, execution_id: int) -> ExecutionRow:
    row = ctx.store.get_execution(execution_id)
    if row is None:
        raise not_found(f"no execution {execution_id}")
    return row


def _catalog_entry(ctx: ApiContext, body: ExecuteRequest) -> CatalogEntry:
    if body.catalog_id is not None:
        # the store has no lookup by id: find the entry's path and version in the listing
        for entry in ctx.store.catalog_list():
            if entry.catalog_id == body.catalog_id:
                found = ctx.store.catalog_get(entry.path, entry.version)
                if found is not None:
                    return found
        raise not_found(f"no catalog entry {body.catalog_id}")
    assert body.path is not None
    found = ctx.store.catalog_get(body.path, body.version)
    if found is None:
        which = f"version {body.version}" if body.version is not None else "any version"
        raise not_found(
            f"playbook '{body.path}' ({which}) is not in the catalog: "
            "register it with POST /api/catalog/register"
        )
    return found


@router.post("/api/execute", status_code=202, responses=documented_body(404))
def execute(body: ExecuteRequest, ctx: Context, who: Operator) -> ExecuteResponse:
    """Start an execution of a catalog playbook; workers run its steps."""
    parent = None
    if body.parent_execution_id is not None:
        existing(ctx, body.parent_execution_id)
        parent = int(body.parent_execution_id)
    entry = _catalog_entry(ctx, body)
    flow = ctx.flow(entry.path, entry.version)
    execution_id = ctx.engine.start(
        flow, body.workload or {}, parent_execution_id=parent, actor=who.name
    )
    row = ctx.store.get_execution(execution_id)
    return ExecuteResponse(
        execution_id=str(execution_id),
        status=row.status if row is not None else "running",
        playbook_path=flow.path,
        playbook_version=flow.version,
    )


@router.get("/api/executions", responses=documented())
def list_executions(
    ctx: Context,
    _: Viewer,
    status: ExecutionStatus | None = None,
    playbook: Annotated[
        str | None,
        Query(
            min_length=1, max_length=1024, pattern=NO_NUL, description="Only this playbook path."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> ExecutionPage:
    """Executions, newest first, one page at a time."""
    rows = ctx.store.list_executions(
        status=status, playbook=playbook, limit=limit + 1, offset=offset
    )
    more = len(rows) > limit
    return ExecutionPage(
        items=[execution_out(r) for r in rows[:limit]],
        limit=limit,
        offset=offset,
        has_more=more,
        next_offset=offset + limit if more else None,
    )


@router.get(
    "/api/executions/{execution_id}",
    responses=documented(404),
    response_model_exclude_unset=True,  # the same keys as ``playloop executions show --json``
)
def get_execution(execution_id: ExecutionId, ctx: Context, _: Viewer) -> ExecutionSummary:
    """The execution's summary: status, each step's status, attempts and result, the error."""
    try:
        summary: dict[str, Any] = ctx.engine.summary(execution_id)
    except UnknownExecution:
        raise not_found(f"no execution {execution_id}") from None
    return ExecutionSummary.model_validate(summary)


@router.post("/api/executions/{execution_id}/cancel", responses=documented_body(404, 409))
def cancel(
    execution_id: ExecutionId,
    ctx: Context,
    who: Operator,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> CancelResponse:
    """Cancel a running or paused execution (its queued steps are dropped)."""
    row = existing(ctx, execution_id)
    if row.status in TERMINAL:
        raise ApiError(409, f"execution {execution_id} has already ended: {row.status}")
    try:
        ctx.engine.cancel(execution_id, actor=who.name, reason=body.reason if body else None)
    except UnknownExecution:
        raise not_found(f"no execution {execution_id}") from None
    after = existing(ctx, execution_id)
    return CancelResponse(execution_id=str(execution_id), status=after.status)
