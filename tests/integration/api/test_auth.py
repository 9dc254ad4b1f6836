"""Every route checks its role: 401 without or with a bad token, 403 with a weaker role."""

from __future__ import annotations

import pytest
from tests.integration.api.conftest import Live

from playloop.auth.roles import ROLES
from playloop.auth.tokens import create_token, revoke

# (method, path, body, the weakest role allowed)
ROUTES = [
    ("GET", "/api/catalog/list", None, "viewer"),
    ("GET", "/api/catalog/tests/api/chain", None, "viewer"),
    ("POST", "/api/catalog/register", {"content": "x: 1"}, "operator"),
    ("POST", "/api/execute", {"path": "no/such/playbook"}, "operator"),
    ("GET", "/api/executions", None, "viewer"),
    ("GET", "/api/executions/1", None, "viewer"),
    ("GET", "/api/executions/1/events", None, "viewer"),
    ("GET", "/api/executions/1/stream", None, "viewer"),
    ("POST", "/api/executions/1/cancel", None, "operator"),
    ("GET", "/api/tokens", None, "admin"),
    ("POST", "/api/tokens", {"role": "viewer", "name": "made-by-test"}, "admin"),
    ("POST", "/api/tokens/0123456789abcdef/revoke", None, "admin"),
    ("GET", "/api/decisions", None, "viewer"),
    ("GET", "/api/decisions/1-1", None, "viewer"),
    ("POST", "/api/decisions/1-1", {"action": "approve"}, "approver"),
    ("POST", "/api/executions/1/feedback", {"label": "good"}, "operator"),
    ("POST", "/api/events/1/resolution", {"note": "fixed"}, "operator"),
    ("GET", "/api/failures", None, "viewer"),
    ("GET", "/api/learn/stats", None, "viewer"),
    ("GET", "/api/learn/suggest?playbook=tests/api/chain", None, "viewer"),
    ("GET", "/api/learn/similar-failures?q=timeout", None, "viewer"),
    ("GET", "/api/learn/search?q=load", None, "viewer"),
    ("POST", "/api/learn/generate", {"description": "load a csv into sqlite"}, "operator"),
]
IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]


def test_every_api_route_is_covered(live: Live) -> None:
    spec = live.client(None).get("/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        # a callback URL carries its own signature instead of a token (tests/acceptance/test_callbacks.py)
        if path.startswith("/api/") and not path.startswith("/api/callbacks/")
    }
    assert len(documented) == len(ROUTES)


@pytest.mark.parametrize(("method", "path", "body", "minimum"), ROUTES, ids=IDS)
def test_without_a_token_is_401(
    live: Live, method: str, path: str, body: object, minimum: str
) -> None:
    response = live.client(None).request(method, path, json=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["code"] == "unauthorized"
    assert "Authorization: Bearer" in error["message"]
    assert "playloop token create" in error["message"]


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        "pl_0123456789abcdef_" + "0" * 64,  # well formed, unknown
        "Bearer x",
        "pl_0123456789abcdef_" + "0" * 63,  # malformed
    ],
)
def test_invalid_token_is_401(live: Live, token: str) -> None:
    response = live.client(None).get(
        "/api/executions", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_token_with_a_wrong_secret_is_401(live: Live) -> None:
    real = live.tokens["admin"]
    forged = real[:-4] + ("0000" if not real.endswith("0000") else "1111")
    response = live.client(token=forged).get("/api/executions")
    assert response.status_code == 401


def test_basic_auth_is_not_a_token(live: Live) -> None:
    response = live.client(None).get("/api/executions", headers={"Authorization": "Basic YTpi"})
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path", "body", "minimum"), ROUTES, ids=IDS)
def test_each_role_gets_403_below_and_through_at_or_above_the_minimum(
    live: Live, method: str, path: str, body: object, minimum: str
) -> None:
    for role in ROLES:
        response = live.client(role).request(method, path, json=body)
        if ROLES.index(role) < ROLES.index(minimum):
            assert response.status_code == 403, (role, response.text)
            error = response.json()["error"]
            assert error["code"] == "forbidden"
            assert f"'{minimum}' role" in error["message"]
            assert f"has '{role}'" in error["message"]
        else:
            assert response.status_code not in (401, 403), (role, response.text)


def test_revoked_token_is_401_at_once(live: Live) -> None:
    new = create_token(live.engine.store, "viewer", "short-lived")
    client = live.client(token=new.token)
    assert client.get("/api/executions").status_code == 200
    assert revoke(live.engine.store, new.info.token_id)
    response = client.get("/api/executions")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_tokens_api_creates_lists_and_revokes(live: Live) -> None:
    admin = live.client("admin")
    created = admin.post("/api/tokens", json={"role": "operator", "name": "ci"})
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith(f"pl_{body['token_id']}_")
    listed = admin.get("/api/tokens").json()["items"]
    assert any(t["token_id"] == body["token_id"] for t in listed)
    assert all("token" not in t and "token_hash" not in t for t in listed)
    worker = live.client(token=body["token"])
    assert worker.post("/api/execute", json={"path": "no/such"}).status_code == 404
    revoked = admin.post(f"/api/tokens/{body['token_id']}/revoke")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    assert worker.get("/api/executions").status_code == 401
    assert admin.post("/api/tokens/ffffffffffffffff/revoke").status_code == 404
    assert admin.post("/api/tokens/not-an-id/revoke").status_code == 422


def test_only_the_hash_is_stored(live: Live) -> None:
    from playloop.store.generic import fetch

    rows = fetch(live.engine.store, "api_token_list")
    stored = {str(value) for row in rows for value in row}
    for token in live.tokens.values():
        assert token not in stored
        assert token.split("_")[2] not in " ".join(stored)


def test_health_and_docs_need_no_token(live: Live) -> None:
    client = live.client(None)
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["db"] == "ok"
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200


def test_without_auth_required_every_route_is_open(open_live: Live) -> None:
    client = open_live.client(None)
    assert client.get("/api/executions").status_code == 200
    assert client.get("/api/tokens").status_code == 200
    assert client.post("/api/execute", json={"path": "no/such"}).status_code == 404
