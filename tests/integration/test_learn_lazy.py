"""The learning layer loads the embedding model only when something needs a vector.

``playloop run`` (``Engine(index=True)``) keeps the vector index up to date and attaches
similar past failures, but a run with nothing to embed (no failure, a playbook already
indexed) must not pay for the model: it costs about a third of a second of start-up.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from playloop.learn.indexer import Indexer
from playloop.runtime import Engine
from playloop.store.open import open_store

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.yaml"

#: one Engine(index=True) run in a fresh process; prints the status and whether the model
#: was loaded: in the indexer's process (once it indexed the run), or in this one (its
#: runtime imported: nothing else in playloop imports onnxruntime)
RUN = """\
import sys
from playloop.runtime import Engine

with Engine(sys.argv[1], db=sys.argv[2], index=True, processes=1) as engine:
    status = engine.run(sys.argv[3])["status"]
    assert engine.learning.flush(60)
    indexer = engine.learning.child.status()
print(status, indexer["model_loaded"] or "onnxruntime" in sys.modules)
"""

FAILING = """\
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: load_orders, path: tests/lazy/load_orders}
workflow:
  - step: load
    tool:
      kind: python
      code: "raise ConnectionError('connect ECONNREFUSED 127.0.0.1:5432: is the orders database up?')"
"""


def _run(home: Path, db_url: str, playbook: Path) -> tuple[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(home), db_url, str(playbook)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    status, loaded = done.stdout.split()
    return status, loaded == "True"


def test_a_run_with_nothing_to_embed_never_loads_the_model(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    # the first run registers the playbook: the indexer has a playbook to embed at exit
    assert _run(home, db_url, HELLO) == ("completed", True)
    # the same playbook again, no failure: nothing needs a vector
    assert _run(home, db_url, HELLO) == ("completed", False)
    indexer = Indexer(open_store(db_url), home)  # type: ignore[arg-type]
    try:
        assert indexer.pending() == {"events": 0, "catalog": 0}
        assert indexer.counts()["playbooks"] == 1
    finally:
        indexer.close()


def test_the_first_failure_loads_the_model_and_later_failures_get_matches(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLAYLOOP_SIMILAR_BUDGET_MS", raising=False)  # the default, 50 ms
    playbook = tmp_path / "load.yaml"
    playbook.write_text(FAILING)
    home = tmp_path / "home"
    with Engine(home, db=db_url, concurrency=2, processes=1, index=True) as engine:
        first = engine.run(playbook)  # indexed at exit
    assert first["status"] == "failed"
    with Engine(home, db=db_url, concurrency=2, processes=1, index=True) as engine:
        learning = engine.learning
        assert learning is not None and learning.child is not None
        assert learning.flush(60)  # a pass in the indexer's process: nothing new to embed
        status = learning.child.status()
        assert status is not None and status["passes"] >= 1 and not status["model_loaded"]
        assert not learning.model_loaded()
        cold = engine.run(playbook)
        assert cold["status"] == "failed"
        # the lookup of the cold failure loads the model in the background (past the budget)
        deadline = time.monotonic() + 60
        while not learning.model_loaded():
            assert time.monotonic() < deadline, "the failure never loaded the model"
            time.sleep(0.05)
        learning.lookup.wait_idle(60)
        learning.lookup.budget = 10.0  # a busy machine may be slow; the default is 50 ms
        warm = engine.run(playbook)
        failure = next(
            e for e in engine.events(int(warm["execution_id"])) if e.event_type == "step.failed"
        )
        similar = (failure.meta or {}).get("similar")
        assert similar, failure.meta
        assert similar[0]["playbook"] == "tests/lazy/load_orders"
        assert similar[0]["event_id"] != str(failure.event_id)
