"""``http``: one request with httpx; a non-2xx status is a step error typed by its status."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from playloop.tools.base import Tool, ToolConfig, ToolContext


class HttpAuth(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["basic", "bearer"] = "bearer"
    username: str | None = None
    password: str | None = None
    token: str | None = None


class HttpConfig(ToolConfig):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    method: str = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    data: Any = None
    timeout: float | None = None
    auth: HttpAuth | None = None
    verify: bool = True
    follow_redirects: bool = True


class HttpTool(Tool):
    kind = "http"
    Config = HttpConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        raise NotImplementedError
