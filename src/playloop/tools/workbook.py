"""``workbook``: call a named tool from the playbook's ``workbook:`` section.

The reference is resolved when the playbook is loaded (``dsl.normalize`` inlines the named
tool), so this class exists to register the kind and validate its config; it never runs.
"""

from __future__ import annotations

from typing import Any

from playloop.tools.base import Tool, ToolConfig, ToolContext


class WorkbookConfig(ToolConfig):
    name: str


class WorkbookTool(Tool):
    kind = "workbook"
    Config = WorkbookConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise RuntimeError("workbook references are resolved at load time")
