"""``python``: user code in a killable, long-lived child process (never this interpreter)."""

from __future__ import annotations

from typing import Any

from playloop.tools.base import Tool, ToolConfig, ToolContext


class PythonConfig(ToolConfig):
    code: str
    #: modules to import before the code runs: ``[json, math]`` or ``{np: numpy}``
    libs: list[str] | dict[str, str] | None = None


class PythonTool(Tool):
    kind = "python"
    Config = PythonConfig
    raw_fields = frozenset({"code"})

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise NotImplementedError
