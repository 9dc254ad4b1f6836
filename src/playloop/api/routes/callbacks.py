"""``POST /api/callbacks/{token}``: an external service calls a waiting step back.

No API token: the signed URL is the credential. A tampered URL is 403, an expired one 410,
a used one 409; the JSON body (or nothing) becomes the step's result.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from playloop.api.context import Context
from playloop.api.errors import ApiError
from playloop.api.routes import documented_body
from playloop.decisions.callbacks import CallbackRefused, verify
from playloop.engine.decisions import DecisionRefused

router = APIRouter(prefix="/api/callbacks", tags=["callbacks"])

Token = Annotated[str, Path(min_length=8, max_length=512, pattern=r"^[A-Za-z0-9_\-]+\.[0-9a-f]+$")]


class CallbackAccepted(BaseModel):
    callback_id: str
    status: str = "accepted"
    seq: int


@router.post("/{token}", responses=documented_body(404, 409, 410))
async def call_back(token: Token, request: Request, ctx: Context) -> CallbackAccepted:
    """The body (JSON, or empty) becomes the waiting step's result; the execution resumes."""
    try:
        callback_id = verify(ctx.engine.home, token)
    except CallbackRefused as refused:
        raise ApiError(refused.status, refused.message, code="callback_refused") from None
    raw = await request.body()
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "the callback body is not valid JSON", code="bad_json") from None
    try:
        event = ctx.engine.callback(callback_id, body)
    except DecisionRefused as refused:
        raise ApiError(refused.status, refused.message, code="callback_refused") from None
    return CallbackAccepted(callback_id=callback_id, seq=event.seq)
