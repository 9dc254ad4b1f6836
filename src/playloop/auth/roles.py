"""Roles, weakest first: each role may do everything the roles before it may."""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["viewer", "operator", "approver", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)


class UnknownRole(ValueError):
    """The role is not one of viewer, operator, approver, admin."""


def check_role(name: str) -> Role:
    for role in ROLES:
        if role == name:
            return role
    raise UnknownRole(f"unknown role {name!r}: choose one of {', '.join(ROLES)}")


def role_at_least(role: str, minimum: Role) -> bool:
    """True when ``role`` is ``minimum`` or stronger (an unknown role is never enough)."""
    return role in ROLES and ROLES.index(check_role(role)) >= ROLES.index(minimum)
