"""Suggestions, the ``playloop stats``/``suggest`` commands, on real recorded executions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.learning.flaky_retry import FlakyServer
from tests.integration.test_learned import keys

from playloop.learn.stats import build_snapshot
from playloop.learn.suggest import confidence, suggest
from playloop.runtime import Engine

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\n"


@pytest.fixture(scope="module")
def server() -> Iterator[FlakyServer]:
    with FlakyServer() as running:
        yield running


def write(tmp_path: Path, name: str, text: str) -> Path:
    file = tmp_path / f"{name}.yaml"
    file.write_text(HEAD + text)
    return file


def by_kind(found: list[Any], kind: str) -> list[Any]:
    return [s for s in found if s.kind == kind]


def test_retry_flaky_and_parallel(engine: Engine, tmp_path: Path, server: FlakyServer) -> None:
    file = write(
        tmp_path,
        "chain",
        "metadata: {name: chain, path: test/chain}\n"
        "workflow:\n"
        "  - step: fetch\n"
        '    tool: {kind: http, url: "{{ workload.url }}"}\n'
        "    retry: {attempts: 4, delay: 10ms}\n"
        "    next: [{step: audit}]\n"
        "  - step: audit\n"
        '    tool: {kind: noop, result: "{{ workload.url }}"}\n'
        "    next: [{step: report}]\n"
        "  - step: report\n"
        '    tool: {kind: noop, result: "{{ audit }} {{ fetch.status_code }}"}\n',
    )
    urls = [f"{server.url}/r/sg/{k}" for k in keys(503, 2, n=5)]
    urls += [f"{server.url}/r/sg/{k}" for k in keys(None, n=5)]
    for url in urls:
        assert engine.run(file, {"url": url}, timeout=30)["status"] == "completed"
    flow = engine.load(file)
    found = suggest(engine.store, flow, build_snapshot(engine.store))
    (retry,) = by_kind(found, "retry")
    assert retry.step == "fetch" and retry.change == "retry: {auto: true, max_attempts: 3}"
    assert retry.evidence["http.503"] == {"failures": 10, "retried": 10, "successes": 5}
    assert retry.confidence == confidence(10) == 0.5
    (flaky,) = by_kind(found, "flaky")
    assert flaky.step == "fetch" and flaky.evidence["failed_attempts"] == 10
    # audit reads no result of fetch; report reads audit's (and fetch's)
    (parallel,) = by_kind(found, "parallel")
    assert parallel.step == "audit" and parallel.evidence["after"] == "fetch"
    assert all(0 <= s.confidence <= 1 for s in found)


GATE = """metadata: {name: gate, path: test/gate}
workload: {score: 0.85}
workflow:
  - step: check
    tool: {kind: python, input: {s: "{{ workload.score }}"}, code: "result = {'score': s}"}
    next: [{step: review}]
  - step: review
    tool:
      kind: approval
      prompt: "score {{ check.score }}"
      options: [approve, reject]
    next: [{step: done}]
  - step: done
    tool: {kind: noop, result: ok}
"""


def _approve(engine: Engine, execution_id: int) -> None:
    deadline = time.time() + 20
    while True:
        pending = [
            d
            for d in engine.store.list_decisions(status="pending")
            if d["execution_id"] == str(execution_id)
        ]
        if pending:
            engine.decide(pending[0]["decision_id"], "approve", actor="ada")
            return
        assert time.time() < deadline
        time.sleep(0.05)


def test_auto_approve_candidate_with_its_rule(engine: Engine, tmp_path: Path) -> None:
    file = write(tmp_path, "gate", GATE)
    for score in (0.81, 0.84, 0.86, 0.88, 0.83):
        execution_id = engine.start(file, {"score": score})
        _approve(engine, execution_id)
        assert engine.wait(execution_id, timeout=30)["status"] == "completed"
    found = suggest(engine.store, engine.load(file), build_snapshot(engine.store))
    (auto,) = by_kind(found, "auto_approve")
    assert auto.step == "review" and auto.evidence["decisions"] == {"approve": 5}
    assert auto.change.startswith('when: "{{ 0.81 <= check.score <= 0.88 }}"')
    assert auto.evidence["context"] == {"check.score": [0.81, 0.88]}
    assert auto.confidence == confidence(5)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "playloop.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_stats_and_suggest_commands(
    engine: Engine, tmp_path: Path, server: FlakyServer, playloop_env: dict[str, str]
) -> None:
    file = write(
        tmp_path,
        "one",
        "metadata: {name: one, path: test/one}\nworkflow:\n"
        "  - step: call\n"
        '    tool: {kind: http, url: "{{ workload.url }}"}\n'
        "    retry: {attempts: 3, delay: 10ms}\n",
    )
    for key in keys(503, 1, n=3):
        engine.run(file, {"url": f"{server.url}/r/cli/{key}"}, timeout=30)
    done = _cli(playloop_env, "stats", "--playbook", "test/one", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    (step,) = data["steps"]
    assert step["step"] == "call" and step["tool"] == "http" and step["completed"] == 3
    assert step["error_classes"]["http.503"]["by_attempt"]["2"] == {
        "tries": 3,
        "successes": 3,
        "p": 1.0,
    }
    assert data["playbooks"][0]["name"] == "test/one"
    table = _cli(playloop_env, "stats")
    assert table.returncode == 0 and "http.503" in table.stdout
    found = _cli(playloop_env, "suggest", "test/one", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["playbook"] == "test/one"
    missing = _cli(playloop_env, "suggest", "no/such")
    assert missing.returncode == 2 and "no playbook 'no/such'" in missing.stderr
