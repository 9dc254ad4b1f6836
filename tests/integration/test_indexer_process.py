"""An engine's indexer runs in a child process (``playloop.learn.indexer_process``).

qdrant-edge-py holds the GIL through a shard's flush and its HNSW build; in a child, the
engine's steps never wait for them. These tests check the child's life: it indexes what
the engine commits, the engine reads the index through it, and it never outlives its
engine, whether the engine closes or disappears.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from playloop.learn.documents import FAILURES
from playloop.learn.indexer_process import IndexerProcess
from playloop.learn.similar import similar_failures
from playloop.runtime import Engine

FAILING = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: load_orders, path: tests/child/load_orders}
workflow:
  - step: load
    tool:
      kind: python
      code: "raise ConnectionError('connect ECONNREFUSED 127.0.0.1:5432: is the orders database up?')"
"""


def _ended(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_the_engine_indexes_in_a_child_and_reads_through_it(tmp_path: Path, db_url: str) -> None:
    playbook = tmp_path / "load.yaml"
    playbook.write_text(FAILING)
    with Engine(tmp_path / "home", db=db_url, concurrency=2, processes=1, index=True) as engine:
        learning = engine.learning
        assert learning is not None and learning.child is not None
        child = learning.child.pid
        assert child is not None and child != os.getpid()
        assert learning.child.status() is not None  # up and answering
        summary = engine.run(playbook)
        assert summary["status"] == "failed"
        assert learning.flush(60)
        status = learning.child.status()
        assert status is not None and status["pid"] == child and status["model_loaded"]
        # this process never embedded a text for the index, and finds the failure in it
        index = engine.vector_index()
        assert index.count(FAILURES) == 1
        found = similar_failures(index, "ECONNREFUSED 127.0.0.1:5432 orders database", k=1)
        assert found and found[0].step == "load"
    assert _ended(child, 10), "the indexer process outlived its engine"


def test_the_child_ends_when_its_engine_disappears(tmp_path: Path, db_url: str) -> None:
    handle = IndexerProcess(tmp_path / "home", db_url).start()
    assert handle.proc is not None and handle.alive()
    assert handle.status() is not None  # up and answering
    # the engine killed with -9: its end of the pipe closes without a word
    assert handle.proc.stdin is not None
    handle.proc.stdin.close()
    assert handle.proc.wait(15) == 0
    handle.close(0)  # its pipes


def test_a_dead_indexer_is_started_again_on_a_later_wake(tmp_path: Path, db_url: str) -> None:
    handle = IndexerProcess(tmp_path / "home", db_url).start()
    try:
        assert handle.proc is not None
        first = handle.proc.pid
        handle.proc.kill()
        handle.proc.wait()
        handle.wake()  # too soon after its start: left down, no restart loop
        assert handle.pid == first and not handle.alive()
        handle._started -= 60  # as if it had run a while
        handle.wake()
        assert handle.alive() and handle.pid != first
        assert handle.status() is not None
    finally:
        handle.close(1.0)
    assert not handle.alive()


def test_wakes_never_block_on_a_full_pipe(tmp_path: Path, db_url: str) -> None:
    handle = IndexerProcess(tmp_path / "home", db_url).start()
    try:
        assert handle.pid is not None and handle.status() is not None
        os.kill(handle.pid, signal.SIGSTOP)  # a child that reads nothing for a while
        started = time.monotonic()
        for _ in range(50_000):  # 250 kB of wakes: far more than a pipe holds
            handle.wake()
        assert time.monotonic() - started < 10
        os.kill(handle.pid, signal.SIGCONT)
        assert handle.status(30) is not None  # every line it got was whole
    finally:
        handle.close(1.0)


def test_a_late_answer_is_not_taken_for_the_next_one(tmp_path: Path, db_url: str) -> None:
    handle = IndexerProcess(tmp_path / "home", db_url).start()
    try:
        assert handle.status() is not None
        assert handle.ask("flush 5", 0.0) is None  # gave up at once: its answer comes later
        status = handle.status(30)
        assert status is not None and status["to"] == "status" and status["passes"] >= 1
    finally:
        handle.close(1.0)
