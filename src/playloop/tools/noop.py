"""``noop``: does nothing; returns ``result`` if given (handy for joins and placeholders)."""

from __future__ import annotations

from typing import Any

from playloop.tools.base import Tool, ToolConfig, ToolContext


class NoopConfig(ToolConfig):
    result: Any = None


class NoopTool(Tool):
    kind = "noop"
    Config = NoopConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        return config.result
