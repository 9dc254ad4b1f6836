"""``duckdb``: a statement against DuckDB (in memory or a file), rows as dicts."""

from __future__ import annotations

from typing import Any

from playloop.tools.base import Tool, ToolConfig, ToolContext


class DuckdbConfig(ToolConfig):
    database: str = ":memory:"
    command: str | None = None
    query: str | None = None
    params: list[Any] | dict[str, Any] | None = None


class DuckdbTool(Tool):
    kind = "duckdb"
    Config = DuckdbConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise NotImplementedError
