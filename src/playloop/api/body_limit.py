"""Refuse request bodies over a limit (413) by ``Content-Length`` and by the bytes streamed.

A pure ASGI middleware: a declared length over the limit is refused before the app runs; a
chunked or lying body is counted as it is read, and reading past the limit raises
``BodyTooLarge``, which FastAPI re-raises from its body parsing and the handler in
``errors`` (or this middleware, if nothing responded yet) turns into a 413.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from playloop.api.errors import error_response

MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than the limit of {limit} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value.decode("latin-1").strip()
                if not declared.isdigit():
                    await error_response(400, "invalid Content-Length header")(scope, receive, send)
                    return
                if int(declared) > limit:
                    await error_response(413, BodyTooLarge(limit).detail)(scope, receive, send)
                    return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watch)
        except BodyTooLarge as exc:
            if started:
                raise
            await error_response(413, exc.detail)(scope, receive, send)
