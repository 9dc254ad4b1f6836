"""Error classes from real failures: httpx against a local server, OS errors, PostgreSQL."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from benchmarks.learning.flaky_retry import FlakyServer

from playloop.learn.errors import classify, is_permanent, is_transient
from playloop.tools.base import ToolContext, ToolError, ToolTimeout, error_facts
from playloop.tools.http import HttpConfig, HttpTool


@pytest.fixture(scope="module")
def server() -> Iterator[FlakyServer]:
    with FlakyServer() as running:
        yield running


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_error(url: str, timeout: float | None = None) -> ToolError:
    ctx = ToolContext(execution_id=1, step="s", iteration=None, attempt=1, timeout=timeout)
    with pytest.raises(ToolError) as caught:
        HttpTool().run(HttpConfig(url=url), {}, ctx)
    return caught.value


def _class_of(exc: ToolError) -> str:
    return classify(
        exc.error_type, exc.message, exc.details, timed_out=isinstance(exc, ToolTimeout)
    )


def _key_with(status: int) -> str:
    from benchmarks.learning.flaky_retry import fault_of

    for i in range(1000):
        fault = fault_of(f"k{i}")
        if fault is not None and fault.status == status:
            return f"k{i}"
    raise AssertionError(f"no key fails with {status}")


@pytest.mark.parametrize("status", [503, 429, 400, 404, 500])
def test_http_status_is_the_class(server: FlakyServer, status: int) -> None:
    exc = _http_error(f"{server.url}/r/{status}/{_key_with(status)}")
    assert exc.details["status_code"] == status
    assert _class_of(exc) == f"http.{status}"
    if status == 429:
        assert exc.retry_after == pytest.approx(0.03)


def test_connection_refused_reports_its_errno() -> None:
    exc = _http_error(f"http://127.0.0.1:{_closed_port()}/")
    assert exc.error_type == "ConnectError"
    assert exc.details["errno"] == "ECONNREFUSED"
    assert _class_of(exc) == "errno.ECONNREFUSED"


def test_real_os_errors_give_their_errno_names(tmp_path: Any) -> None:
    with pytest.raises(OSError) as refused:
        socket.create_connection(("127.0.0.1", _closed_port()), timeout=2)
    assert error_facts(refused.value) == {"errno": "ECONNREFUSED"}
    with pytest.raises(OSError) as missing:
        open(tmp_path / "nope")  # noqa: SIM115
    facts = error_facts(missing.value)
    assert facts == {"errno": errno.errorcode[errno.ENOENT]}
    assert classify("FileNotFoundError", str(missing.value), facts) == "errno.ENOENT"


def test_a_cause_chain_is_searched() -> None:
    try:
        try:
            socket.create_connection(("127.0.0.1", _closed_port()), timeout=2)
        except OSError as inner:
            raise RuntimeError("could not load") from inner
    except RuntimeError as outer:
        assert error_facts(outer)["errno"] == "ECONNREFUSED"


def test_httpx_status_error_gives_its_status(server: FlakyServer) -> None:
    response = httpx.get(f"{server.url}/r/raise/{_key_with(503)}")
    with pytest.raises(httpx.HTTPStatusError) as caught:
        response.raise_for_status()
    assert error_facts(caught.value) == {"status_code": 503}


def test_timeouts_and_cancellations() -> None:
    assert classify("TimeoutError", "timed out after 1s", timed_out=True) == "timeout"
    assert classify("ChildExecutionCancelled", "child execution 1 cancelled") == "cancelled"


def test_message_fallback_only_for_known_patterns() -> None:
    assert classify("RuntimeError", "upstream said: Connection refused") == "errno.ECONNREFUSED"
    assert classify("Exception", "ERROR: deadlock detected") == "sqlstate.40P01"
    assert classify("Exception", "HTTP 503 Service Unavailable from GET x") == "http.503"
    assert classify("ValueError", "bad value 503") == "exc.ValueError"
    # structured fields win over the message
    assert classify("X", "Connection refused", {"status_code": 502}) == "http.502"
    # old histories: error types the tools used before classes existed
    assert classify("HTTPError.503", None) == "http.503"
    assert classify("postgres.40001", None) == "sqlstate.40001"


@pytest.mark.parametrize(
    ("error_class", "transient", "permanent"),
    [
        ("http.503", True, False),
        ("http.429", True, False),
        ("http.408", True, False),
        ("http.400", False, True),
        ("http.404", False, True),
        ("http.501", False, True),
        ("timeout", True, False),
        ("errno.ECONNREFUSED", True, False),
        ("errno.ENOENT", False, False),
        ("sqlstate.40001", True, False),
        ("sqlstate.08006", True, False),
        ("sqlstate.23505", False, True),
        ("sqlstate.42P01", False, True),
        ("exc.ValueError", False, False),
        ("exc.TemplateError", False, True),
        ("cancelled", False, True),
    ],
)
def test_transient_and_permanent(error_class: str, transient: bool, permanent: bool) -> None:
    assert is_transient(error_class) is transient
    assert is_permanent(error_class) is permanent


@pytest.mark.postgres_only
def test_postgres_errors_give_their_sqlstate(db_url: str) -> None:
    import psycopg

    from playloop.tools.postgres import _tool_error

    with psycopg.connect(db_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as missing:
            conn.execute("SELECT * FROM no_such_table")
        with pytest.raises(psycopg.Error) as unique:
            conn.execute("CREATE TEMP TABLE t (id int PRIMARY KEY)")
            conn.execute("INSERT INTO t VALUES (1), (1)")
    assert error_facts(missing.value)["sqlstate"] == "42P01"
    exc = _tool_error(unique.value)
    assert exc.details["sqlstate"] == "23505"
    assert _class_of(exc) == "sqlstate.23505"
    assert is_permanent(_class_of(exc))
