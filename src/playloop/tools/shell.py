"""``shell``: commands in a killable process group; a non-zero exit is an error with stderr."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from playloop.tools.base import Tool, ToolConfig, ToolContext


class ShellConfig(ToolConfig):
    cmds: list[str] | str
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class ShellTool(Tool):
    kind = "shell"
    Config = ShellConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise NotImplementedError
