"""Send a decision request to its ``notify`` URL: what a worker does with a ``notify`` command.

The engine renders the request when the decision is requested (``engine.decisions``) with a
placeholder for the callback URL; here the worker puts the signed URL in, adds the headers
of the named credential (``auth``), and POSTs the body as JSON with the ``http`` tool. The
outcome goes back to the engine like a step's: a success is ``decision.notified``, a failure
``decision.notify_failed`` and another attempt later. The credential's values are registered
with the redactor when decrypted, so an error quoting them is masked before it is recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playloop.decisions.callbacks import PLACEHOLDER, callback_url
from playloop.engine.commands import Command
from playloop.engine.signals import Outcome
from playloop.tools.base import ToolContext, ToolError
from playloop.tools.http import HttpConfig, HttpTool

Credentials = Callable[[str], dict[str, Any]]


def auth_headers(name: str, credentials: Credentials | None) -> dict[str, str]:
    """The headers a credential adds: its ``headers`` mapping, and ``token`` as a bearer."""
    if credentials is None:
        raise ToolError(
            f"notify: credential '{name}' cannot be resolved: this process has no credential store",
            "CredentialError",
        )
    try:
        values = credentials(name)
    except LookupError as exc:
        raise ToolError(f"notify: {exc}", "CredentialError") from None
    headers = {str(k): str(v) for k, v in dict(values.get("headers") or {}).items()}
    if values.get("token") and not any(k.lower() == "authorization" for k in headers):
        headers["Authorization"] = f"Bearer {values['token']}"
    if not headers:
        raise ToolError(
            f"notify: credential '{name}' holds neither 'headers' nor 'token'", "CredentialError"
        )
    return headers


def send(cmd: Command, *, home: Path, credentials: Credentials | None = None) -> Outcome:
    """POST the request of ``cmd`` (a ``notify`` command); never raises."""
    started = time.perf_counter()
    notify = dict(cmd.payload.get("notify") or {})
    callback = cmd.payload.get("callback") or {}
    try:
        url = callback_url(home, str(callback["id"]), float(callback["expires"]))
        body = _with_url(notify.get("body"), url)
        headers = {str(k): str(v) for k, v in dict(notify.get("headers") or {}).items()}
        if notify.get("auth"):
            headers.update(auth_headers(str(notify["auth"]), credentials))
        config = HttpConfig.model_validate(
            {
                "method": notify.get("method") or "POST",
                "url": _with_url(notify["url"], url),
                "headers": headers,
                "json": body,
                "timeout": notify.get("timeout"),
            }
        )
        ctx = ToolContext(
            execution_id=cmd.execution_id, step=cmd.step, iteration=None, attempt=cmd.attempt,
            home=home,
        )  # fmt: skip
        response = HttpTool().run(config, {}, ctx)
    except ToolError as exc:
        return _failed(cmd, started, exc.error_type, exc.message, exc.retry_after)
    except Exception as exc:  # a malformed payload, a bad URL: reported, never lost
        return _failed(cmd, started, type(exc).__name__, str(exc), None)
    return Outcome(
        command=cmd,
        ok=True,
        result={"status_code": response["status_code"]},
        duration_ms=int((time.perf_counter() - started) * 1000),
    )


def _failed(
    cmd: Command, started: float, error_type: str, message: str, retry_after: float | None
) -> Outcome:
    return Outcome(
        command=cmd,
        ok=False,
        error_type=error_type,
        error_message=message,
        retry_after=retry_after,
        duration_ms=int((time.perf_counter() - started) * 1000),
    )


def _with_url(value: Any, url: str) -> Any:
    """``value`` with the callback placeholder replaced by the signed URL, at any depth."""
    if isinstance(value, str):
        return value.replace(PLACEHOLDER, url)
    if isinstance(value, dict):
        return {k: _with_url(v, url) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_url(v, url) for v in value]
    return value
