"""Routes by resource; ``documented`` lists the error statuses a route may answer."""

from __future__ import annotations

from typing import Any

from playloop.api.models import ErrorBody

_WHY = {
    400: "The body is not valid JSON.",
    401: "No API token, or an invalid or revoked one.",
    403: "The token's role is too weak for this route.",
    404: "No such resource.",
    409: "The resource is not in a state that allows this.",
    410: "The resource is gone: the link expired.",
    413: "The request body is over the size limit.",
    422: "The request is invalid: a path, query or body field has a wrong type or value.",
    502: "A service the route depends on (an LLM) failed or is unreachable.",
    503: "The database is unavailable.",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses (plus 401/403/422/503, which any route
    with a token and parameters may answer), all with the one error body."""
    wanted = sorted({401, 403, 422, 503, *statuses})
    return {s: {"model": ErrorBody, "description": _WHY[s]} for s in wanted}


def documented_json(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """As ``documented``, for a route whose success is not JSON (its errors still are)."""
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    return {
        status: {
            "description": spec["description"],
            "content": {"application/json": {"schema": ref}},
        }
        for status, spec in documented(*statuses).items()
    }


def documented_body(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """As ``documented``, for a route with a JSON body (which may be malformed or too big)."""
    return documented(400, 413, *statuses)
