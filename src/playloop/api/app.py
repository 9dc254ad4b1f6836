"""``create_app(engine, auth_required=...)``: the FastAPI application.

The engine given should run no steps itself (``Engine(home, db=URL, concurrency=0)``):
executions started here are queued for worker processes, so a slow step never holds a
server thread and a server restart loses nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI

from playloop.api import errors
from playloop.api.body_limit import MAX_BODY_BYTES, BodyLimit
from playloop.api.context import ApiContext
from playloop.api.routes import (
    callbacks,
    catalog,
    decisions,
    events,
    executions,
    failures,
    feedback,
    generate,
    health,
    learn,
    stats,
    tokens,
)
from playloop.api.strict import reject_unknown_query
from playloop.api.version import VERSION

if TYPE_CHECKING:
    from playloop.runtime import Engine

DESCRIPTION = """\
NoETL playbooks as event-sourced executions. Authenticate with
`Authorization: Bearer <token>` (`playloop token create --role ROLE`); roles, weakest first:
viewer (reads), operator (register, execute, cancel), approver, admin (tokens).
Every error is `{"error": {"code", "message"}}`.
"""


def create_app(
    engine: Engine, *, auth_required: bool, max_body_bytes: int = MAX_BODY_BYTES
) -> FastAPI:
    app = FastAPI(
        title="playloop",
        version=VERSION,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(reject_unknown_query)],
    )
    app.state.playloop = ApiContext(engine=engine, auth_required=auth_required)
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    for module in (
        health,
        catalog,
        executions,
        events,
        tokens,
        decisions,
        callbacks,
        feedback,
        failures,
        learn,
        stats,
        generate,
    ):
        app.include_router(module.router)
    return app
