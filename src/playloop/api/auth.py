"""Bearer tokens and roles: each route declares the weakest role that may call it.

``Viewer``, ``Operator``, ``Approver`` and ``Admin`` are dependencies a route takes as a
parameter; they answer 401 without a valid token and 403 for a weaker role. With
``auth_required=False`` (local, embedded use) every caller is the local admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from playloop.api.context import Context
from playloop.api.errors import ApiError
from playloop.auth.roles import Role, role_at_least
from playloop.auth.tokens import verify

bearer = HTTPBearer(
    auto_error=False,
    description="An API token from `playloop token create --role ROLE`.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name (recorded as the actor of what they do)."""

    name: str
    role: Role
    token_id: str | None = None


LOCAL = Principal(name="local", role="admin")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_INVALID = {"WWW-Authenticate": 'Bearer error="invalid_token"'}

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def require(minimum: Role) -> object:
    """A dependency that returns the caller's ``Principal`` if its role is ``minimum`` or more."""

    def dependency(ctx: Context, credentials: Credentials) -> Principal:
        if not ctx.auth_required:
            return LOCAL
        if credentials is None:
            raise ApiError(
                401,
                "this route needs an API token: send 'Authorization: Bearer <token>' "
                "(create one with `playloop token create --role ROLE`)",
                headers=_CHALLENGE,
            )
        info = verify(ctx.store, credentials.credentials)
        if info is None:
            raise ApiError(401, "the API token is invalid or revoked", headers=_INVALID)
        if not role_at_least(info.role, minimum):
            raise ApiError(
                403,
                f"this route needs the '{minimum}' role or stronger; "
                f"token '{info.name}' has '{info.role}'",
            )
        return Principal(name=info.name, role=info.role, token_id=info.token_id)

    dependency.__name__ = f"require_{minimum}"
    return Depends(dependency)


Viewer = Annotated[Principal, require("viewer")]
Operator = Annotated[Principal, require("operator")]
Approver = Annotated[Principal, require("approver")]
Admin = Annotated[Principal, require("admin")]
