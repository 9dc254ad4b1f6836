"""API tokens: format, hashing, verification, revocation; roles; the id pattern."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playloop.api.models import ID_LIMIT, ID_PATTERN, digits_up_to
from playloop.auth.roles import ROLES, UnknownRole, check_role, role_at_least
from playloop.auth.tokens import (
    active_count,
    create_token,
    get_token,
    hash_token,
    list_tokens,
    revoke,
    verify,
)
from playloop.store.generic import fetch
from playloop.store.open import open_store


@pytest.fixture
def store(db_url: str) -> Iterator[object]:
    opened = open_store(db_url)
    try:
        yield opened
    finally:
        opened.close()


def test_token_format_and_only_its_hash_is_stored(store: object) -> None:
    new = create_token(store, "operator", "ci")
    assert re.fullmatch(r"pl_([0-9a-f]{16})_[0-9a-f]{64}", new.token)
    assert new.token.split("_")[1] == new.info.token_id
    assert new.info.name == "ci"
    assert new.info.role == "operator"
    rows = fetch(store, "api_token_by_id", {"token_id": new.info.token_id})
    assert rows[0][3] == hashlib.sha256(new.token.encode()).hexdigest() == hash_token(new.token)
    assert new.token not in repr(rows)
    assert create_token(store, "viewer").token != new.token


def test_verify(store: object) -> None:
    new = create_token(store, "approver")
    found = verify(store, new.token)
    assert found is not None
    assert found.role == "approver"
    assert get_token(store, new.info.token_id).last_used_at is not None  # type: ignore[union-attr]
    secret = new.token.rsplit("_", 1)[1]
    wrong = new.token[: -len(secret)] + ("0" if secret[0] != "0" else "1") + secret[1:]
    for bad in (wrong, new.token + "0", new.token.upper(), "", "pl__", "Bearer " + new.token):
        assert verify(store, bad) is None, bad


def test_revoke(store: object) -> None:
    new = create_token(store, "admin")
    other = create_token(store, "viewer")
    assert active_count(store) == 2
    assert revoke(store, new.info.token_id) is True
    assert revoke(store, new.info.token_id) is False, "already revoked"
    assert revoke(store, "0" * 16) is False
    assert verify(store, new.token) is None
    assert verify(store, other.token) is not None
    assert active_count(store) == 1
    listed = {t.token_id: t for t in list_tokens(store)}
    assert listed[new.info.token_id].revoked_at is not None
    assert listed[other.info.token_id].revoked_at is None


def test_unknown_role_is_refused(store: object) -> None:
    with pytest.raises(UnknownRole, match="choose one of viewer, operator, approver, admin"):
        create_token(store, "root")


def test_roles_are_ordered() -> None:
    assert ROLES == ("viewer", "operator", "approver", "admin")
    assert role_at_least("admin", "viewer")
    assert role_at_least("operator", "operator")
    assert not role_at_least("operator", "approver")
    assert not role_at_least("root", "viewer")
    assert check_role("viewer") == "viewer"


@given(st.integers(min_value=0, max_value=10**20))
def test_id_pattern_is_exactly_0_to_2_63_minus_1(number: int) -> None:
    assert bool(re.fullmatch(ID_PATTERN, str(number))) == (number < ID_LIMIT)


@pytest.mark.parametrize("limit", [0, 7, 9, 10, 19, 100, 205, 999, 1000, 4096])
def test_digits_up_to_small_limits(limit: int) -> None:
    pattern = re.compile(digits_up_to(limit))
    for number in range(limit + 200):
        assert bool(pattern.fullmatch(str(number))) == (number <= limit), number


def test_id_pattern_edges() -> None:
    for text in ("9223372036854775807", "0", "007"):
        assert re.fullmatch(ID_PATTERN, text), text
    for text in ("9223372036854775808", "-1", "1.0", "", "\uff11", "99999999999999999999"):
        assert not re.fullmatch(ID_PATTERN, text), text


def test_a_fresh_database_has_no_tokens(tmp_path: Path) -> None:
    fresh = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        assert active_count(fresh) == 0
        assert list_tokens(fresh) == []
    finally:
        fresh.close()
