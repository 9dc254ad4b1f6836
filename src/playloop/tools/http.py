"""``http``: one request with httpx; a non-2xx status is a step error typed by its status."""

from __future__ import annotations

import atexit
import datetime as dt
import email.utils
import json
import math
import threading
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from playloop.tools.base import (
    Tool,
    ToolConfig,
    ToolContext,
    ToolError,
    ToolTimeout,
    error_facts,
)

#: seconds, when neither the config nor the step sets a timeout
DEFAULT_TIMEOUT = 30.0
#: how much of an error response's body the error message quotes
_BODY_EXCERPT = 500
#: methods whose ``input`` bindings go to the query string rather than the body
_QUERY_METHODS = frozenset({"GET", "DELETE", "HEAD", "OPTIONS"})


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
    #: ``callback``: after the request, wait until the service calls ``{{ callback_url }}``
    wait: Literal["callback"] | None = None
    #: how long the callback URL stays valid (a duration)
    wait_timeout: str | float = "24h"


# One client per ``verify`` setting, shared by every thread (httpx.Client is thread-safe):
# its connection pool keeps connections alive across steps. Everything else (timeout, auth,
# redirects) is set per request.
_clients: dict[bool, httpx.Client] = {}
_clients_lock = threading.Lock()


def _client(verify: bool) -> httpx.Client:
    client = _clients.get(verify)
    if client is None:
        with _clients_lock:
            client = _clients.get(verify)
            if client is None:
                client = httpx.Client(
                    verify=verify,
                    limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                )
                _clients[verify] = client
    return client


def close_clients() -> None:
    """Close the shared clients (and their pooled connections); the next request reopens."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


atexit.register(close_clients)


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


def _query_value(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple) and all(
        isinstance(v, str | int | float | bool) for v in value
    ):
        return list(value)  # repeated parameter: ?a=1&a=2
    return json.dumps(value)


def _response_data(response: httpx.Response) -> Any:
    mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if mime == "application/json" or mime.endswith("+json"):
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            return response.text
    return response.text


class HttpTool(Tool):
    """Sends one request; the result is ``{status_code, headers, data}``.

    ``data`` is the body parsed when the response is JSON, else its text. ``input`` bindings
    go into the query string for GET/DELETE/HEAD/OPTIONS and into the JSON body for the other
    methods (when ``json`` is a mapping or unset; into form ``data`` when that is a mapping);
    they win over a same-named key of the config. ``data`` sends a form (a mapping) or a raw
    body (text). A non-2xx status raises ``ToolError`` typed ``HTTPError.<status>`` carrying
    the server's ``Retry-After``; a timeout raises ``ToolTimeout``; a transport failure is
    typed by its httpx class (``ConnectError``, ``ReadError``...).
    """

    kind = "http"
    Config = HttpConfig

    def run(self, config: Any, input: dict[str, Any], ctx: ToolContext) -> Any:
        method = config.method.upper()
        headers = dict(config.headers)
        params = dict(config.params)
        json_body = config.json_body
        data = config.data
        if input:
            if method in _QUERY_METHODS:
                params.update(input)
            elif isinstance(json_body, dict):
                json_body = {**json_body, **input}
            elif json_body is None and data is None:
                json_body = dict(input)
            elif json_body is None and isinstance(data, dict):
                data = {**data, **input}
        request: dict[str, Any] = {}
        if json_body is not None:
            request["json"] = json_body
        elif isinstance(data, dict):
            request["data"] = data
        elif isinstance(data, str | bytes):
            request["content"] = data
        elif data is not None:
            request["content"] = json.dumps(data)
            headers.setdefault("Content-Type", "application/json")
        auth: httpx.Auth | None = None
        if config.auth is not None:
            auth = _auth(config.auth, headers)
        if config.timeout is not None:
            timeout = config.timeout
        elif ctx.timeout is not None:
            timeout = ctx.timeout
        else:
            timeout = DEFAULT_TIMEOUT
        try:
            response = _client(config.verify).request(
                method,
                config.url,
                params={k: _query_value(v) for k, v in params.items()} or None,
                headers=headers,
                auth=auth,
                timeout=timeout,
                follow_redirects=config.follow_redirects,
                **request,
            )
        except httpx.TimeoutException:
            raise ToolTimeout(timeout) from None
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            name = type(e).__name__
            raise ToolError(
                f"{name}: {method} {config.url}: {e}",
                name,
                details={"url": config.url, **error_facts(e)},
            ) from None
        status = response.status_code
        if not 200 <= status < 300:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            excerpt = response.text[:_BODY_EXCERPT].strip()
            reason = f" {response.reason_phrase}" if response.reason_phrase else ""
            raise ToolError(
                f"HTTP {status}{reason} from {method} {response.url}"
                + (f": {excerpt}" if excerpt else ""),
                f"HTTPError.{status}",
                retry_after=retry_after,
                details={"status_code": status, "retry_after": retry_after, "body": excerpt},
            )
        return {
            "status_code": status,
            "headers": dict(response.headers),
            "data": _response_data(response),
        }


def _auth(auth: HttpAuth, headers: dict[str, str]) -> httpx.Auth | None:
    if auth.type == "basic":
        if auth.username is None:
            raise ToolError("http auth 'basic' needs a username", "ConfigError")
        return httpx.BasicAuth(auth.username, auth.password or "")
    if not auth.token:
        raise ToolError("http auth 'bearer' needs a token", "ConfigError")
    if not any(name.lower() == "authorization" for name in headers):
        headers["Authorization"] = f"Bearer {auth.token}"
    return None
