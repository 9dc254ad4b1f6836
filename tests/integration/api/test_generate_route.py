"""POST /api/learn/generate: operator only; a validated draft is returned, nothing stored."""

from __future__ import annotations

import pytest
from tests.integration.api.conftest import Live

from playloop.dsl.load import load_text


def _catalog_size(live: Live) -> int:
    return len(live.engine.store.catalog_list())


def test_generate_returns_a_validated_draft_and_registers_nothing(live: Live) -> None:
    live.register()
    before = _catalog_size(live)
    response = live.client("operator").post(
        "/api/learn/generate",
        json={
            "description": "Extract the orders from SQLite, clean them, and print a report.",
            "llm": False,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert load_text(body["content"]).path == body["path"] == "drafts/extract_orders_sqlite_clean"
    assert body["steps"] == ["extract_orders", "clean_orders", "print_orders"]
    assert body["source"] == "composer" and body["needs"] == []
    assert body["grounding"]["retrieval"] in ("vectors", "lexical")
    assert _catalog_size(live) == before
    executions = live.client("viewer").get("/api/executions").json()["items"]
    assert all(e["playbook_path"] != body["path"] for e in executions)


def test_generate_needs_the_operator_role(live: Live) -> None:
    response = live.client("viewer").post("/api/learn/generate", json={"description": "x"})
    assert response.status_code == 403


def test_generate_refuses_a_blank_description(live: Live) -> None:
    for description in ["", "   ", "a\x00b"]:
        response = live.client("operator").post(
            "/api/learn/generate", json={"description": description}
        )
        assert response.status_code == 422, description


def test_an_unreachable_llm_is_a_502(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYLOOP_LLM_URL", "http://127.0.0.1:9")
    response = live.client("operator").post(
        "/api/learn/generate", json={"description": "Say hello."}
    )
    assert response.status_code == 502 and response.json()["error"]["code"] == "llm_unavailable"
