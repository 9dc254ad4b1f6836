"""Helpers shared by the tool kinds (not a tool: no entry point)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from playloop.tools.base import ToolContext


def resolve_path(path: str, ctx: ToolContext) -> Path:
    """``path`` made absolute: relative paths are relative to the playbook file's directory.

    Without a playbook file (a tool run on its own) they are relative to the current
    directory. ``~`` is expanded.
    """
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    base = ctx.playbook_file.parent if ctx.playbook_file is not None else Path.cwd()
    return (base / p).resolve()


def json_safe(value: Any) -> Any:
    """``value`` with database types turned into JSON types.

    Dates and times become ISO strings, decimals floats (ints when they have no scale),
    UUIDs strings, bytes base64 text, durations seconds; non-finite floats stay floats
    (the event store writes them as null).
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if value.is_finite() and value.as_tuple().exponent == 0:
            return int(value)
        return float(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)
