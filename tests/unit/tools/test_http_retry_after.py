"""``Retry-After`` parsing (both forms) for the ``http`` tool."""

from __future__ import annotations

import datetime as dt

from playloop.tools.http import parse_retry_after

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def test_delta_seconds() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(" 0 ", NOW) == 0.0
    assert parse_retry_after("-5", NOW) == 0.0


def test_http_date() -> None:
    assert parse_retry_after("Wed, 01 May 2024 12:01:30 GMT", NOW) == 90.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", NOW) == 0.0


def test_missing_or_garbage() -> None:
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after("nan", NOW) is None
