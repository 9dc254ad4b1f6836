"""``playloop generate`` on the 20 descriptions of benchmarks/learning/: every draft
validates; the ones that need no outside service run to completion on the real engine.
And the LLM path, against an OpenAI-compatible server this test starts (a contract test).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from playloop.dsl.load import load_text
from playloop.learn.generate import Draft, LlmConfig, generate
from playloop.learn.generate.retrieval import open_retriever
from playloop.runtime import Engine

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTIONS = ROOT / "benchmarks" / "learning" / "generate_descriptions.yaml"
#: examples run once before generating, so their steps have a record in the event log
HISTORY = [
    "hello.yaml",
    "quality_gate.yaml",
    "sqlite_report.yaml",
    "loop.yaml",
    "child_playbook.yaml",
]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Engine, Path]]:
    """An engine whose catalog holds every example, some of them run once."""
    tmp = tmp_path_factory.mktemp("generate")
    engine = Engine(tmp / "home", concurrency=4, processes=2)
    for file in sorted((ROOT / "examples").rglob("*.yaml")):
        engine.load(file)
    for name in HISTORY:
        workload = {"database": str(tmp / "sales.db")} if name == "sqlite_report.yaml" else {}
        assert (
            engine.run(engine.load(ROOT / "examples" / name), workload, timeout=60)["status"]
            == "completed"
        )
    yield engine, tmp
    engine.close()


@pytest.fixture(scope="module")
def drafts(catalog: tuple[Engine, Path]) -> list[tuple[dict[str, Any], Draft]]:
    engine, _ = catalog
    cases = yaml.safe_load(DESCRIPTIONS.read_text())
    with open_retriever(engine.home, engine.store) as retriever:
        return [
            (
                case,
                generate(
                    case["description"],
                    store=engine.store,
                    retriever=retriever,
                    llm=LlmConfig.off(),
                ),
            )
            for case in cases
        ]


def test_twenty_varied_descriptions(drafts: list[tuple[dict[str, Any], Draft]]) -> None:
    assert len(drafts) == 20
    assert len({c["id"] for c, _ in drafts}) == 20
    assert sum(c["offline"] for c, _ in drafts) >= 10


def test_every_draft_validates(drafts: list[tuple[dict[str, Any], Draft]]) -> None:
    for case, draft in drafts:
        flow = load_text(draft.text, filename=f"{case['id']}.yaml")
        assert flow.path == draft.flow.path and len(flow.steps) >= 1, case["id"]
        assert draft.source == "composer" and draft.grounding["retrieval"] == "vectors"


def test_drafts_are_grounded_in_the_catalog(drafts: list[tuple[dict[str, Any], Draft]]) -> None:
    by_id = {c["id"]: d for c, d in drafts}
    gate = by_id["quality_gate_approval"]
    assert gate.grounding["playbooks"][0]["path"] in (
        "data/ingestion/quality_gate_approval",
        "data/ingestion/quality_gate_external_approval",
        "data/ingestion/daily_load",
    )
    # the validation step that worked (it ran once above) is taken, with its record
    assert any("validate_data_quality (finished 1 of 1 runs)" in b for b in gate.borrowed)
    child = by_id["child_per_customer"]
    assert "examples/child/greet" in child.text
    assert sum(bool(d.borrowed) for _, d in drafts) >= 4


def test_the_offline_drafts_run_to_completion(
    catalog: tuple[Engine, Path], drafts: list[tuple[dict[str, Any], Draft]]
) -> None:
    engine, tmp = catalog
    ran = 0
    for case, draft in drafts:
        assert (draft.needs == []) == case["offline"], (case["id"], draft.needs)
        if not case["offline"]:
            continue
        file = tmp / "drafts" / f"{case['id']}.yaml"
        file.parent.mkdir(exist_ok=True)
        file.write_text(draft.text)
        workload = {
            key: str(tmp / "data" / f"{case['id']}-{key}")
            for key in draft.flow.workload
            if key in ("database", "duckdb_path")
        }
        summary = engine.run(engine.load(file), workload, timeout=60)
        assert summary["status"] == "completed", (case["id"], summary.get("error"))
        ran += 1
    assert ran == sum(c["offline"] for c, _ in drafts)


# --- the LLM path: a contract test against a small OpenAI-compatible server -------------

BROKEN = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: greet_all, path: drafts/greet_all}
workflow:
  - step: greet
    tool: {kind: python, code: "result = 'hi'", colour: blue}
"""
FIXED = BROKEN.replace(", colour: blue", "")


class _Chat(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []
    headers_seen: list[str | None] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        type(self).headers_seen.append(self.headers.get("Authorization"))
        draft = BROKEN if len(type(self).requests) == 1 else FIXED
        reply = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": f"Here it is:\n```yaml\n{draft}```",
                    },
                    "finish_reason": "stop",
                }
            ],
        }
        data = json.dumps(reply).encode()
        self.send_response(200 if self.path == "/v1/chat/completions" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def chat_server() -> Iterator[str]:
    _Chat.requests = []
    _Chat.headers_seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Chat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_llm_contract_request_shape_and_repair_loop(
    catalog: tuple[Engine, Path], chat_server: str
) -> None:
    engine, _ = catalog
    env = {
        "PLAYLOOP_LLM_URL": chat_server,
        "PLAYLOOP_LLM_MODEL": "tiny-model",
        "PLAYLOOP_LLM_KEY": "sk-test",
    }
    with open_retriever(engine.home, engine.store) as retriever:
        draft = generate(
            "For each customer, run the greet playbook and collect the greetings.",
            store=engine.store,
            retriever=retriever,
            env=env,
        )
    # the request: model, messages, the DSL summary and schema, the retrieved context
    first = _Chat.requests[0]
    assert first["model"] == "tiny-model" and _Chat.headers_seen[0] == "Bearer sk-test"
    roles = [m["role"] for m in first["messages"]]
    assert roles[0] == "system" and roles[-1] == "user" and "assistant" in roles
    system = first["messages"][0]["content"]
    assert "noetl.io/v2" in system and '"$schema"' in system and '"workflow"' in system
    shots = " ".join(m["content"] for m in first["messages"][1:-1])
    assert "examples/child_playbook" in shots  # a retrieved catalog playbook, verbatim
    assert "finished" in first["messages"][-1]["content"]  # the steps that worked
    # the first draft had an unknown key: the error went back, the second one validated
    assert len(_Chat.requests) == 2
    second = _Chat.requests[1]["messages"]
    assert second[-2]["role"] == "assistant" and "colour" in second[-2]["content"]
    assert second[-1]["role"] == "user" and "unknown key 'colour'" in second[-1]["content"]
    assert draft.source == "llm" and draft.attempts == 2 and len(draft.repairs) == 1
    assert load_text(draft.text).path == "drafts/greet_all"


def test_llm_contract_gives_up_after_the_attempts(chat_server: str) -> None:
    from playloop.learn.generate import DraftRejected

    config = LlmConfig(url=chat_server + "/v1", model="m", attempts=1)
    with pytest.raises(DraftRejected, match="after 1 attempts") as info:
        generate("Say hello.", llm=config)
    assert "colour" in str(info.value) and len(_Chat.requests) == 1


def test_llm_contract_unreachable_endpoint_is_an_error() -> None:
    from playloop.learn.generate import LlmError

    with pytest.raises(LlmError, match="cannot reach"):
        generate("Say hello.", llm=LlmConfig(url="http://127.0.0.1:9", attempts=1, timeout=2))
