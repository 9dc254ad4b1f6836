"""``python``: user code in a killable, long-lived child process (never this interpreter)."""

from __future__ import annotations

import logging
from typing import Any

from playloop.tools.base import Tool, ToolConfig, ToolContext, ToolError

log = logging.getLogger("playloop.tools.python")


class PythonConfig(ToolConfig):
    code: str
    #: modules to import before the code runs: ``[json, math]`` or ``{np: numpy}``
    libs: list[str] | dict[str, str] | None = None


class PythonTool(Tool):
    """Runs ``code`` with the ``input`` bindings as its variables.

    The result is ``main(**input)`` when the code defines a callable ``main``, else the
    variable ``result``, else None; it must be JSON-serialisable. An exception in the code
    is a step error typed by its class name (``ValueError``, ``KeyError``...).
    """

    kind = "python"
    Config = PythonConfig
    raw_fields = frozenset({"code"})

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        if ctx.processes is None:
            raise ToolError(
                "the python tool needs a process pool to run code in "
                "(ToolContext.processes is None)",
                "ConfigError",
            )
        run = ctx.processes.execute(
            config.code, input, config.libs, ctx.timeout, on_startup=ctx.started_up
        )
        if run.logs:
            if ctx.on_output is not None:
                ctx.on_output(run.logs)
            else:
                log.info("step %s printed:\n%s", ctx.step, run.logs.rstrip("\n"))
        return run.result
