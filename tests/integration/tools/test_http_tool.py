"""The ``http`` tool against a real HTTP server on 127.0.0.1 (an ephemeral port)."""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from playloop.tools.base import ToolContext, ToolError, ToolTimeout
from playloop.tools.http import HttpConfig, HttpTool, close_clients

STOP = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def _send(
        self, status: int, body: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        self._json(
            200,
            {
                "method": self.command,
                "path": parts.path,
                "query": parse_qs(parts.query),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": raw.decode(),
            },
        )

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/json":
            self._json(200, {"ok": True, "items": [1, 2, 3]})
        elif path == "/problem":
            self._send(200, b'{"type": "x"}', "application/problem+json")
        elif path == "/text":
            self._send(200, b"hello, world", "text/plain; charset=utf-8")
        elif path == "/missing":
            self._send(404, b"no such thing", "text/plain")
        elif path == "/busy":
            self._json(503, {"error": "overloaded"}, {"Retry-After": "7"})
        elif path == "/busy-date":
            when = email.utils.formatdate(time.time() + 30, usegmt=True)
            self._send(503, b"later", "text/plain", {"Retry-After": when})
        elif path == "/redirect":
            self._send(302, b"", "text/plain", {"Location": "/json"})
        elif path == "/slow":
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and not STOP.is_set():
                time.sleep(0.02)
            with contextlib.suppress(OSError):  # the client may have given up
                self._json(200, {"slow": True})
        else:
            self._echo()

    def do_POST(self) -> None:
        self._echo()

    do_PUT = do_POST
    do_DELETE = do_GET


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # the default 5 drops concurrent SYNs: 1 s retransmits


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        STOP.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
        close_clients()


def _ctx(timeout: float | None = None) -> ToolContext:
    return ToolContext(execution_id=1, step="call", iteration=None, attempt=1, timeout=timeout)


def call(
    config: dict[str, Any], input: dict[str, Any] | None = None, timeout: float | None = None
) -> Any:
    return HttpTool().run(HttpConfig.model_validate(config), dict(input or {}), _ctx(timeout))


def test_json_response_is_parsed(base_url: str) -> None:
    out = call({"url": f"{base_url}/json"})
    assert out["status_code"] == 200
    assert out["data"] == {"ok": True, "items": [1, 2, 3]}
    assert out["headers"]["content-type"].startswith("application/json")
    json.dumps(out)  # the whole result is JSON-serialisable


def test_plus_json_content_type_is_parsed(base_url: str) -> None:
    assert call({"url": f"{base_url}/problem"})["data"] == {"type": "x"}


def test_text_response(base_url: str) -> None:
    out = call({"url": f"{base_url}/text"})
    assert out["data"] == "hello, world"


def test_404_is_typed_with_a_body_excerpt(base_url: str) -> None:
    with pytest.raises(ToolError) as info:
        call({"url": f"{base_url}/missing"})
    err = info.value
    assert err.error_type == "HTTPError.404"
    assert "404" in err.message and "no such thing" in err.message
    assert err.details["status_code"] == 404
    assert err.retry_after is None


def test_503_with_retry_after_seconds(base_url: str) -> None:
    with pytest.raises(ToolError) as info:
        call({"url": f"{base_url}/busy"})
    err = info.value
    assert err.error_type == "HTTPError.503"
    assert err.retry_after == 7.0
    assert err.details == {
        "status_code": 503,
        "retry_after": 7.0,
        "body": '{"error": "overloaded"}',
    }


def test_503_with_retry_after_http_date(base_url: str) -> None:
    with pytest.raises(ToolError) as info:
        call({"url": f"{base_url}/busy-date"})
    assert info.value.retry_after is not None
    assert 25 <= info.value.retry_after <= 31


def test_post_json_with_input_merged_into_the_body(base_url: str) -> None:
    out = call(
        {"method": "post", "url": f"{base_url}/echo", "json": {"a": 1, "b": "config"}},
        {"b": "input", "c": [1, 2]},
    )
    echoed = out["data"]
    assert echoed["method"] == "POST"
    assert json.loads(echoed["body"]) == {"a": 1, "b": "input", "c": [1, 2]}
    assert echoed["headers"]["content-type"] == "application/json"


def test_post_input_alone_becomes_the_json_body(base_url: str) -> None:
    out = call({"method": "PUT", "url": f"{base_url}/echo"}, {"x": 1})
    assert json.loads(out["data"]["body"]) == {"x": 1}


def test_get_input_goes_to_the_query_string(base_url: str) -> None:
    out = call(
        {"url": f"{base_url}/echo", "params": {"page": 2}}, {"q": "daily load", "tags": ["a", "b"]}
    )
    assert out["data"]["query"] == {"page": ["2"], "q": ["daily load"], "tags": ["a", "b"]}


def test_form_data_and_raw_body(base_url: str) -> None:
    out = call({"method": "POST", "url": f"{base_url}/echo", "data": {"k": "v w"}})
    assert out["data"]["body"] == "k=v+w"
    out = call(
        {
            "method": "POST",
            "url": f"{base_url}/echo",
            "data": "raw text",
            "headers": {"Content-Type": "text/plain"},
        }
    )
    assert out["data"]["body"] == "raw text"


def test_custom_headers(base_url: str) -> None:
    out = call({"url": f"{base_url}/echo", "headers": {"X-Request-Id": "abc"}})
    assert out["data"]["headers"]["x-request-id"] == "abc"


def test_basic_auth(base_url: str) -> None:
    out = call(
        {
            "url": f"{base_url}/echo",
            "auth": {"type": "basic", "username": "ada", "password": "s3cret"},
        }
    )
    expected = "Basic " + base64.b64encode(b"ada:s3cret").decode()
    assert out["data"]["headers"]["authorization"] == expected


def test_bearer_auth(base_url: str) -> None:
    out = call({"url": f"{base_url}/echo", "auth": {"type": "bearer", "token": "tok-123"}})
    assert out["data"]["headers"]["authorization"] == "Bearer tok-123"


def test_bearer_without_token_is_a_config_error(base_url: str) -> None:
    with pytest.raises(ToolError) as info:
        call({"url": f"{base_url}/echo", "auth": {"type": "bearer"}})
    assert info.value.error_type == "ConfigError"


def test_redirects_followed_or_not(base_url: str) -> None:
    assert call({"url": f"{base_url}/redirect"})["data"]["ok"] is True
    with pytest.raises(ToolError) as info:
        call({"url": f"{base_url}/redirect", "follow_redirects": False})
    assert info.value.error_type == "HTTPError.302"


def test_config_timeout(base_url: str) -> None:
    started = time.monotonic()
    with pytest.raises(ToolTimeout) as info:
        call({"url": f"{base_url}/slow", "timeout": 0.3})
    assert time.monotonic() - started < 2
    assert info.value.error_type == "TimeoutError"


def test_step_timeout_applies_when_config_has_none(base_url: str) -> None:
    with pytest.raises(ToolTimeout):
        call({"url": f"{base_url}/slow"}, timeout=0.3)


def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # nothing listens on the port now
    with pytest.raises(ToolError) as info:
        call({"url": f"http://127.0.0.1:{port}/"})
    assert info.value.error_type == "ConnectError"


def test_unsupported_scheme() -> None:
    with pytest.raises(ToolError) as info:
        call({"url": "ftp://127.0.0.1/x"})
    assert info.value.error_type == "UnsupportedProtocol"


def test_concurrent_requests_share_the_client(base_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda i: call({"url": f"{base_url}/echo"}, {"i": i}), range(40)))
    assert [r["data"]["query"]["i"] for r in results] == [[str(i)] for i in range(40)]
