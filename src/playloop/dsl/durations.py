"""Durations as playbooks write them: ``500ms``, ``2s``, ``1.5m``, ``1h30m``, ``1d`` or seconds."""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)")
_WHOLE = re.compile(r"^(?:\s*(?:\d+(?:\.\d+)?|\.\d+)\s*(?:ms|s|m|h|d))+\s*$")
_HELP = (
    "use seconds (a number) or a number with a unit ms, s, m, h, d such as '500ms', '2s', '1h30m'"
)


def parse_duration(value: object) -> float:
    """Seconds as a float; raise ``ValueError`` naming the bad value otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"invalid duration {value!r}: {_HELP}")
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            if not _WHOLE.match(text):
                raise ValueError(f"invalid duration {value!r}: {_HELP}") from None
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite number >= 0")
    return seconds
