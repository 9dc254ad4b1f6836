"""``approval``: a human decision point. It never runs in a worker.

The engine turns an approval step into a ``decision.requested`` event and waits (the
execution is paused and holds no worker, process or connection) until someone decides
through the CLI or the API, a deadline passes, or an escalation moves it on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from playloop.tools.base import Tool, ToolConfig, ToolContext


class ApprovalConfig(ToolConfig):
    prompt: str = "Approve?"
    #: the actions a person may take; ``override`` usually comes with ``form`` values
    options: list[str] = Field(default_factory=lambda: ["approve", "reject"])
    #: fields a person fills in: name -> string | number | integer | boolean
    form: dict[str, str] = Field(default_factory=dict)
    #: users who may decide (token names); empty: anyone with the approver role
    approvers: list[str] = Field(default_factory=list)
    #: false: the person who started the execution may not decide it
    self_approval: bool = True
    timeout: str | float | None = None
    on_timeout: Literal["approve", "reject", "fail", "escalate"] = "fail"
    remind_every: str | float | None = None
    escalate_to: list[str] = Field(default_factory=list)
    escalate_after: str | float | None = None
    #: POST the request (with its callback URL) to a service: {url, headers, body}
    notify: dict[str, Any] | None = None


class ApprovalTool(Tool):
    kind = "approval"
    Config = ApprovalConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise RuntimeError("approval steps are decided by people, not run by workers")
