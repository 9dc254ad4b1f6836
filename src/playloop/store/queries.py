"""Named SQL queries loaded from ``store/sql/<dialect>/queries.sql`` (``-- name: x`` headers)."""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def sql_text(dialect: str, filename: str) -> str:
    return (files("playloop.store") / "sql" / dialect / filename).read_text(encoding="utf-8")


@cache
def queries(dialect: str) -> dict[str, str]:
    """Every named query of a dialect: ``queries.sql`` and ``queries_<area>.sql`` files."""
    folder = files("playloop.store") / "sql" / dialect
    names = sorted(e.name for e in folder.iterdir() if re.match(r"^queries(_\w+)?\.sql$", e.name))
    named: dict[str, str] = {}
    for filename in names:
        parts = _NAME.split(sql_text(dialect, filename))
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in named:
                raise ValueError(f"query '{name}' defined twice in {dialect}/")
            lines = [ln for ln in body.strip().splitlines() if not ln.lstrip().startswith("--")]
            named[name] = "\n".join(lines).strip()
    return named


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """``(version, filename, sql)`` of every numbered migration, in order."""
    folder = files("playloop.store") / "sql" / dialect / "migrations"
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_.*\.sql$", entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)
