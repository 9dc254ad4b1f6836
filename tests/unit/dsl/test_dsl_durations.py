"""``parse_duration``: the duration spellings a playbook may use."""

from __future__ import annotations

import pytest

from playloop.dsl.durations import parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (2, 2.0),
        (1.5, 1.5),
        ("2", 2.0),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("500ms", 0.5),
        ("3m", 180.0),
        ("4h", 14400.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        (" 10 S ", 10.0),
        (".5s", 0.5),
        (0, 0.0),
    ],
)
def test_valid_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2x", "invalid duration '2x': use seconds"),
        ("five minutes", "invalid duration 'five minutes'"),
        ("", "invalid duration ''"),
        ("s", "invalid duration 's'"),
        (-1, "invalid duration -1: must be a finite number >= 0"),
        ("-2s", "invalid duration '-2s'"),
        ("inf", "invalid duration 'inf': must be a finite number"),
        (True, "invalid duration True"),
        (None, "invalid duration None"),
        ([1], "invalid duration [1]"),
    ],
)
def test_invalid_durations_say_what_is_wrong(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("]", r"\]")):
        parse_duration(value)
