"""``playbook``: run another playbook as a child execution; its final result is ours."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from playloop.tools.base import ChildExecution, Tool, ToolConfig, ToolContext


class PlaybookConfig(ToolConfig):
    #: a file relative to the calling playbook's file, else a catalog path
    path: str
    workload: dict[str, Any] = Field(default_factory=dict)


class PlaybookTool(Tool):
    kind = "playbook"
    Config = PlaybookConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        workload = {**input, **config.workload}
        return ChildExecution(path=config.path, workload=workload)
