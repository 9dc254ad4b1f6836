"""``GET /health``: no token needed; says whether the database answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from playloop.api.context import Context
from playloop.api.models import Health
from playloop.api.version import VERSION

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database does not answer."}},
)
def health(ctx: Context) -> Health | JSONResponse:
    """Liveness and database check."""
    try:
        ctx.store.list_executions(limit=1)
    except Exception as exc:  # any database failure is reported, never raised
        body = Health(status="error", db=f"{type(exc).__name__}: {exc}", version=VERSION)
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", db="ok", version=VERSION)
