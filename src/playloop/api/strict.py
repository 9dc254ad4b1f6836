"""Unknown query parameters are an error (422), not silently ignored.

``GET /api/executions?stauts=failed`` would otherwise list every execution; request bodies
already reject unknown fields.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from playloop.api.errors import ApiError

#: a pattern for text parameters: no database text type can hold a NUL character
NO_NUL = r"^[^\x00]*$"


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _allowed(route: APIRoute) -> frozenset[str]:
    cached: frozenset[str] | None = getattr(route, "_playloop_query", None)
    if cached is None:
        cached = frozenset(_query_names(route.dependant))
        route._playloop_query = cached  # type: ignore[attr-defined]
    return cached


def reject_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value:  # no database text type can hold a NUL
            raise ApiError(
                422, f"query parameter '{key.replace(chr(0), '')}' contains a NUL character"
            )
    allowed = _allowed(route)
    unknown = sorted({key for key in request.query_params if key not in allowed})
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ApiError(
            422,
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)} (this route takes: {known})",
        )
