"""``sqlite``: a statement against a SQLite file, parameters bound, rows as dicts."""

from __future__ import annotations

from typing import Any

from playloop.tools.base import Tool, ToolConfig, ToolContext


class SqliteConfig(ToolConfig):
    database: str
    command: str | None = None
    query: str | None = None
    params: list[Any] | dict[str, Any] | None = None


class SqliteTool(Tool):
    kind = "sqlite"
    Config = SqliteConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise NotImplementedError
