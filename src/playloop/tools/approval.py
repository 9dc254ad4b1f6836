"""``approval``: a human decision point. It never runs in a worker.

The engine turns an approval step into a ``decision.requested`` event and waits (the
execution is paused and holds no worker, process or connection) until someone decides
through the CLI or the API, an external service calls the decision's ``callback_url``, a
deadline passes, or an escalation moves it on. With ``notify`` a worker POSTs the request
(with its signed ``callback_url``) to a service; see ``playloop.decisions.notify``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from playloop.tools.base import Tool, ToolConfig, ToolContext


class NotifyConfig(BaseModel):
    """Where and how to send a decision request. Rendered when the request is made, with
    ``decision_id``, ``prompt``, ``options``, ``form``, ``approvers``, ``deadline`` and
    ``callback_url`` besides the step's usual names; ``auth`` names a credential whose
    ``headers`` (or ``token``, sent as a bearer token) are added by the worker, so the secret
    never reaches the playbook or the event log."""

    model_config = ConfigDict(extra="forbid")
    url: str
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    #: the JSON body; None: the request itself (decision id, prompt, options, callback_url...)
    body: Any = None
    auth: str | None = None
    #: seconds one attempt may take
    timeout: float = 10.0
    #: attempts in all before ``decision.notify_failed`` says it gave up (backoff between)
    attempts: int = Field(default=5, ge=1, le=50)
    #: how long the callback URL stays valid when the request has no ``timeout`` (a duration)
    callback_expires: str | float = "7d"


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
    #: POST the request (with its callback URL) to a service: {url, headers, body, auth}
    notify: NotifyConfig | None = None


class ApprovalTool(Tool):
    kind = "approval"
    Config = ApprovalConfig
    #: rendered by the engine when the request is made (it sees the decision id and URL)
    raw_fields = frozenset({"notify"})

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise RuntimeError("approval steps are decided by people, not run by workers")
