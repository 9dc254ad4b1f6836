"""API tokens: ``pl_<token_id>_<secret>``, stored as a sha256 hash, checked in constant time.

The token id is public (it names the token in lists and logs and finds its row); the secret
is 256 random bits. Only ``sha256(token)`` is stored: a high-entropy secret needs no slow
password hash, and a leaked table yields no usable token. A token is looked up by its id and
its hash compared with ``hmac.compare_digest``, so neither the lookup nor the comparison
depends on the secret's bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from playloop.auth.roles import Role, check_role
from playloop.store.generic import execute, fetch

PREFIX = "pl"
#: ``last_used_at`` is written at most this often per token (a write per request would
#: contend with the engine for SQLite's single writer)
TOUCH_EVERY_SECONDS = 60
_TOKEN = re.compile(r"^pl_([0-9a-f]{16})_([0-9a-f]{64})$")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    name: str
    role: Role
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just created: ``token`` is shown once and never stored."""

    info: TokenInfo
    token: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: Any) -> str | None:
    """ISO-8601 UTC, as event timestamps; read back as text (SQLite) or ``datetime`` (PostgreSQL)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return str(value)


def _info(row: tuple[Any, ...]) -> TokenInfo:
    token_id, name, role, _hash, created_at, last_used_at, revoked_at = row
    return TokenInfo(
        token_id=str(token_id),
        name=str(name),
        role=check_role(str(role)),
        created_at=_iso(created_at) or "",
        last_used_at=_iso(last_used_at),
        revoked_at=_iso(revoked_at),
    )


def _params(**values: Any) -> dict[str, Any]:
    """Named parameters plus ``now`` (SQLite writes it; PostgreSQL uses ``now()``)."""
    now = _now()
    return {
        "now": _iso(now),
        "stale_before": _iso(now - timedelta(seconds=TOUCH_EVERY_SECONDS)),
        "stale_seconds": TOUCH_EVERY_SECONDS,
        **values,
    }


def create_token(store: object, role: str, name: str | None = None) -> NewToken:
    """Create a token with this role; the returned ``token`` is the only copy of the secret."""
    checked = check_role(role)
    token_id = secrets.token_hex(8)
    token = f"{PREFIX}_{token_id}_{secrets.token_hex(32)}"
    label = name or f"{checked}-{token_id[:6]}"
    execute(
        store,
        "api_token_insert",
        _params(token_id=token_id, name=label, role=checked, token_hash=hash_token(token)),
    )
    rows = fetch(store, "api_token_by_id", {"token_id": token_id})
    return NewToken(info=_info(rows[0]), token=token)


def verify(store: object, token: str) -> TokenInfo | None:
    """The token's details when it is well formed, known, unrevoked and its secret matches."""
    match = _TOKEN.match(token)
    if match is None:
        return None
    token_id = match.group(1)
    rows = fetch(store, "api_token_by_id", {"token_id": token_id})
    if not rows:
        hmac.compare_digest(hash_token(token), hash_token(""))  # same work as a known id
        return None
    info = _info(rows[0])
    if not hmac.compare_digest(str(rows[0][3]), hash_token(token)) or info.revoked_at:
        return None
    execute(store, "api_token_touch", _params(token_id=token_id))
    return info


def list_tokens(store: object) -> list[TokenInfo]:
    """Every token, revoked ones included (their hashes are never returned)."""
    return [_info(row) for row in fetch(store, "api_token_list")]


def active_count(store: object) -> int:
    rows = fetch(store, "api_token_count_active")
    return int(rows[0][0])


def get_token(store: object, token_id: str) -> TokenInfo | None:
    rows = fetch(store, "api_token_by_id", {"token_id": token_id})
    return _info(rows[0]) if rows else None


def revoke(store: object, token_id: str) -> bool:
    """Revoke a token by its id; False when no such unrevoked token exists."""
    return execute(store, "api_token_revoke", _params(token_id=token_id)) == 1
