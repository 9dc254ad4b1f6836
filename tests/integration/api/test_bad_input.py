"""Bad input to every route is a 4xx with a clear JSON message and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.integration.api.conftest import Live

from playloop.api.body_limit import MAX_BODY_BYTES

BODY_ROUTES = [
    "/api/catalog/register",
    "/api/execute",
    "/api/executions/1/cancel",
    "/api/tokens",
]
ID_ROUTES = [
    ("GET", "/api/executions/{}"),
    ("GET", "/api/executions/{}/events"),
    ("GET", "/api/executions/{}/stream"),
    ("POST", "/api/executions/{}/cancel"),
]
NOT_IDS = [
    "1;DROP TABLE noetl.event",
    "1 OR 1=1",
    "1'--",
    "-1",
    "1.5",
    "abc",
    "0x10",
    "9223372036854775808",  # 2**63
    "99999999999999999999999",
    "%00",
]


def _snapshot(live: Live) -> tuple[object, ...]:
    store = live.engine.store
    _, events = store.query("SELECT event_id FROM noetl.event ORDER BY event_id")
    _, executions = store.query("SELECT execution_id, status FROM noetl.execution")
    _, catalog = store.query("SELECT catalog_id FROM noetl.catalog")
    return tuple(events), tuple(executions), tuple(catalog)


@pytest.fixture
def unchanged(live: Live) -> Iterator[None]:
    before = _snapshot(live)
    yield
    assert _snapshot(live) == before, "bad input changed the database"


def _error(response: object, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    assert body["error"]["message"]
    return dict(body["error"])


@pytest.fixture(scope="module", autouse=True)
def _something_stored(live: Live) -> None:
    live.register()
    live.start()


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("path", BODY_ROUTES)
def test_malformed_json_is_400(live: Live, path: str) -> None:
    for raw in (b"{bad", b'{"path": ', b"\xff\xfe", b"{'path': 'x'}"):
        response = live.client().post(
            path, content=raw, headers={"Content-Type": "application/json"}
        )
        error = _error(response, 400)
        assert error["code"] == "malformed_json"
        assert "not valid JSON" in error["message"]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("path", BODY_ROUTES)
def test_a_body_that_is_not_json_is_400(live: Live, path: str) -> None:
    response = live.client().post(path, content=b"path=x", headers={"Content-Type": "text/plain"})
    error = _error(response, 400)
    assert "Content-Type: application/json" in error["message"]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        ("/api/execute", [], "body"),
        ("/api/execute", "x", "body"),
        ("/api/execute", {"path": 7}, "body.path"),
        ("/api/execute", {"path": "a", "workload": "w"}, "body.workload"),
        ("/api/execute", {"catalog_id": "abc"}, "body.catalog_id"),
        ("/api/execute", {"catalog_id": -1}, "body.catalog_id"),
        ("/api/execute", {"catalog_id": 2**63}, "body.catalog_id"),
        ("/api/execute", {"path": "a", "version": 0}, "body.version"),
        ("/api/execute", {"path": "a", "version": True}, "body.version"),
        ("/api/catalog/register", {"content": 5}, "body.content"),
        ("/api/catalog/register", {"content": ["a"]}, "body.content"),
        ("/api/executions/1/cancel", {"reason": {"a": 1}}, "body.reason"),
        ("/api/tokens", {"role": "root"}, "body.role"),
        ("/api/tokens", {"role": "admin", "name": ""}, "body.name"),
    ],
)
def test_wrong_types_are_422_naming_the_field(
    live: Live, path: str, body: object, where: str
) -> None:
    error = _error(live.client().post(path, json=body), 422)
    assert error["code"] == "invalid_request"
    assert f"{where}:" in error["message"] or where == "body", error


@pytest.mark.usefixtures("unchanged")
def test_a_missing_body_is_422(live: Live) -> None:
    error = _error(live.client().post("/api/execute"), 422)
    assert "JSON object as the request body" in error["message"]


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("path", BODY_ROUTES)
def test_oversized_body_is_413_by_content_length(live: Live, path: str) -> None:
    big = b'{"content": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = live.client().post(path, content=big, headers={"Content-Type": "application/json"})
    error = _error(response, 413)
    assert error["code"] == "payload_too_large"
    assert str(MAX_BODY_BYTES) in error["message"]


@pytest.mark.usefixtures("unchanged")
def test_oversized_body_is_413_when_streamed_without_length(live: Live) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"content": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'"}'

    response = live.client().post(
        "/api/catalog/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    _error(response, 413)


def test_a_body_just_under_the_limit_is_read(live: Live) -> None:
    payload = b'{"content": "' + b"x" * (MAX_BODY_BYTES - 100) + b'"}'
    response = live.client("operator").post(
        "/api/catalog/register", content=payload, headers={"Content-Type": "application/json"}
    )
    assert _error(response, 422)["code"] == "invalid_playbook"


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("method_path", ID_ROUTES, ids=[p for _, p in ID_ROUTES])
def test_ids_that_are_not_64_bit_integers_are_422(live: Live, method_path: tuple[str, str]) -> None:
    method, template = method_path
    for text in NOT_IDS:
        response = live.client().request(method, template.format(text))
        assert response.status_code in (404, 422), (text, response.text)
        if response.status_code == 404:  # a '/' or '?' in the text made it another route
            continue
        error = _error(response, 422)
        assert "path.execution_id" in error["message"], error


@pytest.mark.usefixtures("unchanged")
def test_the_largest_id_is_a_404_not_an_error(live: Live) -> None:
    response = live.client().get(f"/api/executions/{2**63 - 1}")
    assert _error(response, 404)["message"] == f"no execution {2**63 - 1}"


@pytest.mark.usefixtures("unchanged")
def test_sql_in_query_parameters_is_only_data(live: Live) -> None:
    client = live.client()
    response = client.get("/api/executions", params={"playbook": "x' OR '1'='1"})
    assert response.status_code == 200
    assert response.json()["items"] == []
    path = client.get("/api/catalog/x'; DROP TABLE noetl.catalog; --")
    assert _error(path, 404)["code"] == "not_found"
    injected = client.post("/api/execute", json={"path": "'; DELETE FROM noetl.event; --"})
    _error(injected, 404)


@pytest.mark.usefixtures("unchanged")
def test_unknown_routes_and_methods_are_json(live: Live) -> None:
    client = live.client()
    error = _error(client.get("/api/nothing/here"), 404)
    assert error["message"] == "no route GET /api/nothing/here"
    error = _error(client.delete("/api/executions"), 405)
    assert error["code"] == "method_not_allowed"
    _error(client.get("/api/execute"), 405)


@pytest.mark.usefixtures("unchanged")
def test_query_values_out_of_range_are_422(live: Live) -> None:
    client = live.client()
    for params in (
        {"after_seq": -1},
        {"after_seq": "x"},
        {"limit": 1001},
        {"limit": "1;"},
    ):
        response = client.get("/api/executions/1/events", params=params)
        _error(response, 422)
    _error(client.get("/api/catalog/x", params={"version": 0}), 422)
