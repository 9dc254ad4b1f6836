"""API tokens and roles."""

from __future__ import annotations

from playloop.auth.roles import ROLES, Role, UnknownRole, role_at_least
from playloop.auth.tokens import NewToken, TokenInfo, create_token, list_tokens, revoke, verify

__all__ = [
    "ROLES",
    "NewToken",
    "Role",
    "TokenInfo",
    "UnknownRole",
    "create_token",
    "list_tokens",
    "revoke",
    "role_at_least",
    "verify",
]
