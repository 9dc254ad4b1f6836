"""A small HTTP client of the playloop API, for the CLI's ``--server`` mode."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class ClientError(RuntimeError):
    """The server refused the request or could not be reached; the message says why."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _message(response: httpx.Response) -> tuple[str, str | None]:
    try:
        error = response.json()["error"]
        message = str(error["message"])
        problems = error.get("problems")
        if problems:
            message = "\n".join(str(p) for p in problems)
        return message, error.get("code")
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}", None


class ApiClient:
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, json=json, params=clean)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the server at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            message, code = _message(response)
            raise ClientError(message, response.status_code, code)
        return response.json()

    # --- resources ---------------------------------------------------------------------

    def catalog_register(self, content: str, filename: str | None = None) -> dict[str, Any]:
        body = {"content": content, "filename": filename}
        return dict(self.request("POST", "/api/catalog/register", json=body))

    def catalog_list(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/catalog/list")["items"])

    def executions(
        self, status: str | None = None, playbook: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None and len(found) < limit:
            page = self.request(
                "GET",
                "/api/executions",
                params={
                    "status": status,
                    "playbook": playbook,
                    "limit": min(500, limit - len(found)),
                    "offset": offset,
                },
            )
            found.extend(page["items"])
            offset = page["next_offset"]
        return found

    def execute(self, path: str, workload: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {"path": path, "workload": dict(workload or {})}
        return dict(self.request("POST", "/api/execute", json=body))

    def summary(self, execution_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/executions/{execution_id}"))

    def cancel(self, execution_id: int, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else None
        return dict(self.request("POST", f"/api/executions/{execution_id}/cancel", json=body))

    def events(self, execution_id: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after = 0
        while True:
            page = self.request(
                "GET",
                f"/api/executions/{execution_id}/events",
                params={"after_seq": after, "limit": 1000},
            )
            found.extend(page["items"])
            if not page["has_more"]:
                return found
            after = page["next_after_seq"]
