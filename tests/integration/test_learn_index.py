"""The vector indexer, similar failures and playbook search on real runs (both backends).

A playbook fails against a real closed port (connection refused); a later run against a
listening port gets through, which resolves the failure (``later_run``). The indexer puts
both in the index; ``similar_failures`` finds the failure with that resolution, and a
third failing run carries the match in its failure event's ``meta.similar``.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from playloop.learn.indexer import Indexer
from playloop.learn.resolutions import record_resolutions
from playloop.learn.similar import search_playbooks, similar_failures
from playloop.learn.vectors import VectorIndex
from playloop.runtime import Engine
from playloop.store.open import open_store

FETCH = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: fetch_orders
  path: tests/learn/fetch_orders
  description: Download the day's orders from the orders service over HTTP
workload: {port: 1}
workflow:
  - step: fetch
    tool:
      kind: http
      method: GET
      url: "http://127.0.0.1:{{ workload.port }}/orders"
      timeout: 5
"""

REPORT = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata:
  name: weekly_report
  path: tests/learn/weekly_report
  description: Summarise sales per region into a weekly report with duckdb
workflow:
  - step: summarise
    tool: {kind: noop, result: {rows: 3}}
"""

ERROR = "ConnectError: GET http://127.0.0.1:9/orders: [Errno 111] Connection refused"


def closed_port() -> int:
    """A port nothing listens on: bound, read, closed (the kernel refuses connections)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def orders_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"orders": 3}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def history(tmp_path: Path, db_url: str, orders_server: int) -> dict[str, object]:
    """A failed run (connection refused) resolved by a later run, and another playbook."""
    (tmp_path / "fetch.yaml").write_text(FETCH)
    (tmp_path / "report.yaml").write_text(REPORT)
    with Engine(tmp_path / "home", db=db_url, concurrency=4, processes=1) as engine:
        failed = engine.run(tmp_path / "fetch.yaml", {"port": closed_port()})
        assert failed["status"] == "failed"
        assert "Connection refused" in failed["error"]["message"]
        fixed = engine.run(tmp_path / "fetch.yaml", {"port": orders_server})
        assert fixed["status"] == "completed"
        record_resolutions(engine, int(fixed["execution_id"]))
        assert engine.run(tmp_path / "report.yaml")["status"] == "completed"
        failure = next(
            e for e in engine.events(int(failed["execution_id"])) if e.event_type == "step.failed"
        )
    return {"failure": failure.event_id, "failed": failed, "fixed": fixed}


def _indexer(tmp_path: Path, db_url: str) -> Indexer:
    return Indexer(open_store(db_url), tmp_path / "home")  # type: ignore[arg-type]


def test_similar_failure_found_with_its_resolution(
    tmp_path: Path, db_url: str, history: dict[str, object]
) -> None:
    indexer = _indexer(tmp_path, db_url)
    try:
        assert indexer.claim()
        done = indexer.catch_up()
        assert done.caught_up and done.failures >= 1 and done.playbooks == 2
        matches = similar_failures(indexer.index, ERROR, k=3)
        assert matches, "the failure is indexed"
        best = matches[0]
        assert best.event_id == str(history["failure"])
        assert best.playbook == "tests/learn/fetch_orders"
        assert best.step == "fetch" and best.tool == "http"
        assert "Connection refused" in best.error
        assert [r["kind"] for r in best.resolutions] == ["later_run"]
        assert best.resolution is not None and "succeeded in execution" in best.resolution
        assert matches == sorted(matches, key=lambda m: -m.score)
        # a filter on another playbook finds nothing; search by meaning finds the playbook
        assert similar_failures(indexer.index, ERROR, playbook="tests/learn/weekly_report") == []
        found = search_playbooks(indexer.index, "weekly sales summary by region", k=2)
        assert found[0].path == "tests/learn/weekly_report"
        assert found[0].steps == ["summarise"]
    finally:
        indexer.close()


def test_indexer_is_idempotent_and_rebuildable(
    tmp_path: Path, db_url: str, history: dict[str, object]
) -> None:
    indexer = _indexer(tmp_path, db_url)
    try:
        assert indexer.claim()
        indexer.catch_up()
        first = indexer.counts()
        assert first["failures"] >= 1 and first["playbooks"] == 2
        again = indexer.catch_up()  # nothing new: no point twice
        assert indexer.counts() == first
        assert again.failures == 0 or indexer.counts() == first
        indexer._done.clear()  # a new process: it reads the lag window again
        indexer.catch_up()
        assert indexer.counts() == first
        rebuilt = indexer.rebuild()
        assert rebuilt.caught_up and indexer.counts() == first
        # inside the checkpoint's lag window, what was read is not pending
        assert indexer.pending() == {"events": 0, "catalog": 0}
        checkpoints = indexer.checkpoints()
        assert set(checkpoints) == {"vectors.events", "vectors.catalog"}
    finally:
        indexer.close()


def test_only_one_process_indexes(tmp_path: Path, db_url: str) -> None:
    first = _indexer(tmp_path, db_url)
    second = _indexer(tmp_path, db_url)
    try:
        assert first.claim()
        assert not second.claim()
        first.release()
        assert second.claim()
    finally:
        first.close()
        second.close()


def test_failure_event_carries_similar_past_failures(
    tmp_path: Path, db_url: str, history: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a generous budget: this machine may be busy; the default is 50 ms
    monkeypatch.setenv("PLAYLOOP_SIMILAR_BUDGET_MS", "5000")
    with Engine(tmp_path / "home", db=db_url, concurrency=4, processes=1, index=True) as engine:
        assert engine.learning is not None
        engine.learning.warm_up()
        assert engine.learning.flush(60)
        summary = engine.run(tmp_path / "fetch.yaml", {"port": closed_port()})
        assert summary["status"] == "failed"
        failure = next(
            e for e in engine.events(int(summary["execution_id"])) if e.event_type == "step.failed"
        )
        similar = (failure.meta or {}).get("similar")
        assert similar, failure.meta
        assert similar[0]["event_id"] == str(history["failure"])
        assert similar[0]["playbook"] == "tests/learn/fetch_orders"
        assert similar[0]["resolution"].startswith("later_run: ")
        assert set(similar[0]) == {"event_id", "playbook", "step", "error", "score", "resolution"}
        # success paths carry nothing
        started = [e for e in engine.events(int(history["fixed"]["execution_id"]))]  # type: ignore[index]
        assert all("similar" not in (e.meta or {}) for e in started)


def test_a_second_process_queries_while_one_indexes(
    tmp_path: Path, db_url: str, history: dict[str, object]
) -> None:
    indexer = _indexer(tmp_path, db_url)
    stop = threading.Event()
    errors: list[BaseException] = []

    def keep_indexing() -> None:
        try:
            while not stop.is_set():
                indexer.rebuild()
        except BaseException as exc:
            errors.append(exc)

    assert indexer.claim()
    indexer.catch_up()
    thread = threading.Thread(target=keep_indexing, daemon=True)
    thread.start()
    try:
        env = {**os.environ, "PLAYLOOP_HOME": str(tmp_path / "home"), "PLAYLOOP_DB": db_url}
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-m", "playloop.cli_entry", "similar", ERROR, "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            found = json.loads(done.stdout)
            # mid-rebuild the collection may be empty for a moment: never an error
            assert all(m["playbook"] == "tests/learn/fetch_orders" for m in found)
    finally:
        stop.set()
        thread.join(120)
        indexer.close()
    assert not errors


def test_reader_in_another_process_sees_the_index(
    tmp_path: Path, db_url: str, history: dict[str, object]
) -> None:
    indexer = _indexer(tmp_path, db_url)
    try:
        assert indexer.claim()
        indexer.catch_up()
    finally:
        indexer.close()
    with VectorIndex.open(tmp_path / "home") as index:
        assert similar_failures(index, ERROR, k=1)[0].event_id == str(history["failure"])
