"""POST /api/catalog/register validates with the DSL; list; get by path and version."""

from __future__ import annotations

import base64

from tests.integration.api.conftest import CHAIN, Live

BROKEN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: broken
  path: tests/api/broken
workflow:
  - step: start
    tool: {kind: noop}
    next:
      - step: nowhere
"""


def test_register_returns_path_version_and_id(fresh: Live) -> None:
    first = fresh.register()
    assert first["path"] == "tests/api/chain"
    assert first["version"] == 1
    assert str(first["catalog_id"]).isdigit()
    again = fresh.register()
    assert again == first, "the same content is the same version"
    changed = fresh.register(CHAIN.replace("n: 1\n", "n: 2\n"))
    assert changed["version"] == 2
    assert changed["catalog_id"] != first["catalog_id"]


def test_register_base64(fresh: Live) -> None:
    encoded = base64.b64encode(CHAIN.encode()).decode()
    response = fresh.client("operator").post(
        "/api/catalog/register", json={"content_base64": encoded}
    )
    assert response.status_code == 200
    assert response.json()["path"] == "tests/api/chain"


def test_invalid_playbook_is_422_with_file_line_col_problems(fresh: Live) -> None:
    response = fresh.client("operator").post(
        "/api/catalog/register", json={"content": BROKEN, "filename": "broken.yaml"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_playbook"
    assert isinstance(error["problems"], list)
    assert error["problems"], error
    assert error["problems"][0].startswith("broken.yaml:10:15: step 'start'")
    assert "nowhere" in error["problems"][0]
    assert error["problems"][0] in error["message"]
    assert fresh.client().get("/api/catalog/list").json()["items"] == []


def test_invalid_yaml_names_line_and_column(fresh: Live) -> None:
    response = fresh.client("operator").post(
        "/api/catalog/register", json={"content": "a: [1, 2\nb: 3\n"}
    )
    assert response.status_code == 422
    problems = response.json()["error"]["problems"]
    assert problems[0].startswith("<content>:")
    assert "invalid YAML" in problems[0]


def test_register_body_needs_exactly_one_content(fresh: Live) -> None:
    client = fresh.client("operator")
    for body in ({}, {"content": CHAIN, "content_base64": "eA=="}):
        response = client.post("/api/catalog/register", json=body)
        assert response.status_code == 422
        assert (
            "exactly one of 'content' and 'content_base64'" in response.json()["error"]["message"]
        )
    bad = client.post("/api/catalog/register", json={"content_base64": "%%%"})
    assert bad.status_code == 422
    assert "not valid base64" in bad.json()["error"]["message"]
    latin1 = base64.b64encode("caf\xe9".encode("latin-1")).decode()
    bad = client.post("/api/catalog/register", json={"content_base64": latin1})
    assert bad.status_code == 422
    assert "UTF-8" in bad.json()["error"]["message"]


def test_list_and_get_latest_or_a_version(fresh: Live) -> None:
    fresh.register()
    fresh.register(CHAIN.replace("n: 1\n", "n: 2\n"))
    client = fresh.client("viewer")
    items = client.get("/api/catalog/list").json()["items"]
    assert sorted((i["path"], i["version"]) for i in items) == [
        ("tests/api/chain", 1),
        ("tests/api/chain", 2),
    ]
    assert all("content" not in i for i in items)
    latest = client.get("/api/catalog/tests/api/chain").json()
    assert latest["version"] == 2
    assert "n: 2" in latest["content"]
    first = client.get("/api/catalog/tests/api/chain", params={"version": 1}).json()
    assert first["version"] == 1
    assert first["content"] == CHAIN


def test_get_unknown_is_404(fresh: Live) -> None:
    client = fresh.client("viewer")
    response = client.get("/api/catalog/no/such/playbook")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found",
        "message": "playbook 'no/such/playbook' (any version) is not in the catalog",
    }
    fresh.register()
    assert client.get("/api/catalog/tests/api/chain", params={"version": 9}).status_code == 404
    assert client.get("/api/catalog/tests/api/chain", params={"version": "x"}).status_code == 422
