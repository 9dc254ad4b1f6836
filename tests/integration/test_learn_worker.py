"""A failure run by a worker process (``playloop worker start``) carries ``meta.similar``.

The worker keeps no index: it reads the one another process keeps. Here that is the
embedded Qdrant Edge index of a home shared with another process, which holds the shard
open (as a server's indexer does) and answers the worker's reads.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.distributed.helpers import WORKER, start_worker

from playloop.engine.events import Event
from playloop.learn.documents import FAILURES
from playloop.learn.vectors import VectorIndex
from playloop.runtime import Engine

FAILING = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: load_orders, path: tests/worker/load_orders}
workflow:
  - step: load
    tool:
      kind: python
      code: "raise ConnectionError('connect ECONNREFUSED 127.0.0.1:5432: is the orders database up?')"
"""


def _failure(engine: Engine, execution_id: int) -> Event:
    return next(e for e in engine.events(execution_id) if e.event_type == "step.failed")


def _stop(worker: subprocess.Popen[bytes]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=60)


@pytest.mark.parametrize("no_similar", [False, True], ids=["similar", "no-similar"])
def test_a_failure_run_by_a_worker_carries_similar_past_failures(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, no_similar: bool
) -> None:
    playbook = tmp_path / "load.yaml"
    playbook.write_text(FAILING)
    home = tmp_path / "home"
    # an earlier failure, indexed into the home's Edge index (at the engine's exit)
    with Engine(home, db=db_url, concurrency=2, processes=1, index=True) as engine:
        earlier = engine.run(playbook)
        earlier_failure = _failure(engine, int(earlier["execution_id"]))
    assert earlier["status"] == "failed"
    # the first failure of the worker loads the model: give it time on a busy machine
    monkeypatch.setenv("PLAYLOOP_SIMILAR_BUDGET_MS", "30000")
    with VectorIndex.open(home) as owner:
        # this process holds the failures shard open, as a server's indexer would
        assert owner.count(FAILURES) == 1
        if no_similar:
            worker = _start_worker_without_similar(db_url, home)
        else:
            worker = start_worker(db_url, home)
        try:
            with Engine(tmp_path / "client", db=db_url, concurrency=0) as client:
                summary = client.wait(client.start(playbook), timeout=90)
                assert summary["status"] == "failed"
                failure = _failure(client, int(summary["execution_id"]))
        finally:
            _stop(worker)
        assert owner.count(FAILURES) == 1
    log = (home / "worker.log").read_text()
    # the worker ran the step (the client runs none)
    assert f":{worker.pid}:" in str(failure.actor), log
    similar = (failure.meta or {}).get("similar")
    if no_similar:
        assert similar is None
        return
    assert similar, log
    assert similar[0]["event_id"] == str(earlier_failure.event_id)
    assert similar[0]["playbook"] == "tests/worker/load_orders"
    assert similar[0]["score"] >= 0.5


def _start_worker_without_similar(db_url: str, home: Path) -> subprocess.Popen[bytes]:
    with (home / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, "start", "--db", db_url, "--home", str(home),
             "--concurrency", "2", "--processes", "1", "--grace", "5", "--no-similar"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
