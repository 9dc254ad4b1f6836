"""Every error is ``{"error": {"code", "message"}}`` with a status that says whose fault it is.

``ApiError`` is raised by routes; the handlers here also turn FastAPI's validation errors
(422, or 400 for a body that is not JSON), Starlette's HTTP errors (unknown route, wrong
method) and anything unexpected (500, logged, no internals in the body) into that shape.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("playloop.api")

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
}


class ApiError(Exception):
    """An error a client can act on: an HTTP status, a stable code and a clear message."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        details: Sequence[Mapping[str, Any]] | None = None,
        problems: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.message = message
        self.details = details
        self.problems = problems
        self.headers = headers


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def error_body(
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] | None = None,
    problems: Sequence[str] | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = list(details)
    if problems is not None:
        error["problems"] = list(problems)
    return {"error": error}


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    details: Sequence[Mapping[str, Any]] | None = None,
    problems: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = error_body(code or CODES.get(status, "error"), message, details, problems)
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


#: errors of a database that cannot be reached or is busy (not of a bad query)
_UNAVAILABLE = {"psycopg.OperationalError", "psycopg_pool.PoolTimeout", "psycopg_pool.PoolClosed"}
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open", "disk I/O error")


def database_unavailable(exc: BaseException) -> bool:
    """True for a database that is down, restarting or locked: a 503, not a 500."""
    if isinstance(exc, sqlite3.OperationalError):
        return any(text in str(exc) for text in _SQLITE_UNAVAILABLE)
    return any(f"{c.__module__}.{c.__qualname__}" in _UNAVAILABLE for c in type(exc).__mro__)


def _loc(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "request"


def _validation(exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            where = error.get("loc", ())
            at = f" at character {where[1]}" if len(where) > 1 else ""
            return error_response(
                400, f"the request body is not valid JSON: {reason}{at}", code="malformed_json"
            )
        if tuple(error.get("loc", ())) == ("body",):
            if error.get("type") == "missing":
                return error_response(422, "this route needs a JSON object as the request body")
            if isinstance(error.get("input"), bytes):  # not sent as application/json
                return error_response(
                    400,
                    "the request body must be a JSON object sent with "
                    "Content-Type: application/json",
                    code="malformed_json",
                )
    details = [
        {"loc": [str(p) for p in e.get("loc", ())], "message": e.get("msg", ""), "type": e["type"]}
        for e in errors
    ]
    shown = "; ".join(f"{_loc(e.get('loc', ()))}: {e.get('msg', '')}" for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return error_response(422, f"invalid request: {shown}{more}", details=details)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one JSON shape."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(
            exc.status,
            exc.message,
            code=exc.code,
            details=exc.details,
            problems=exc.problems,
            headers=exc.headers,
        )

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation(exc)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if database_unavailable(exc):
            log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
            return error_response(
                503,
                f"the database is unavailable, try again shortly ({type(exc).__name__})",
                headers={"Retry-After": "1"},
            )
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal error: the server could not handle this request")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
