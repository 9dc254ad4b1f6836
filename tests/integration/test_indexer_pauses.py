"""The indexer's thread beside an engine that runs steps makes its passes in the pauses.

Embedding takes a core; on two cores the steps' p99 rose from 2 ms to 20-70 ms while
failures were embedded (``benchmarks.learning.indexing_load``). So a background pass waits
until the engine has run no step for ``IDLE_FOR`` seconds, and ``max_defer`` seconds at
most. ``engine_busy`` here is a plain clock the test moves, as the engine's would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from playloop.engine.events import Event, new_id, utcnow
from playloop.learn.indexer import Indexer
from playloop.store.open import open_store


def _failure(db_url: str) -> None:
    store = open_store(db_url)
    try:
        store.append(
            [
                Event(
                    execution_id=new_id(),
                    seq=1,
                    event_type="step.failed",
                    playbook_path="tests/pauses/load",
                    event_id=new_id(),
                    step_name="load",
                    status="failed",
                    attempt=1,
                    error_type="ConnectionError",
                    error_message="connect ECONNREFUSED 127.0.0.1:5432",
                    created_at=utcnow(),
                )
            ]
        )
    finally:
        store.close()


def _indexer(tmp_path: Path, db_url: str, busy: Callable[[], float], defer: float) -> Indexer:
    return Indexer(
        open_store(db_url),  # type: ignore[arg-type]
        tmp_path / "home",
        poll=0.05,
        gather=0.0,
        lag=0.0,
        engine_busy=busy,
        max_defer=defer,
    )


def _until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held (fails after ``timeout``)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "never happened"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_pass_waits_for_the_steps_to_pause(tmp_path: Path, db_url: str) -> None:
    idle_since: list[float | None] = [None]  # None: steps running

    def busy() -> float:
        return time.monotonic() if idle_since[0] is None else idle_since[0]

    indexer = _indexer(tmp_path, db_url, busy, defer=60.0).start()
    try:
        _until(lambda: indexer.passes >= 1, 30)  # its first pass, at start
        _failure(db_url)
        indexer.wake()
        time.sleep(1.0)  # twenty polls' worth: every one waits for a pause
        assert indexer.pending()["events"] == 1
        idle_since[0] = time.monotonic()  # the steps end
        _until(lambda: indexer.pending()["events"] == 0, 60)
        assert indexer.counts()["failures"] == 1
    finally:
        indexer.close()


def test_a_busy_engine_delays_passes_by_max_defer_at_most(tmp_path: Path, db_url: str) -> None:
    indexer = _indexer(tmp_path, db_url, time.monotonic, defer=1.0).start()  # never idle
    try:
        _until(lambda: indexer.passes >= 1, 30)
        first = indexer.passes
        _failure(db_url)
        indexer.wake()
        # indexed however busy the engine stays: within max_defer (and the pass itself)
        _until(lambda: indexer.pending()["events"] == 0, 60)
        assert indexer.counts()["failures"] == 1
        time.sleep(2.0)
        # it polls every 0.05 s, but passes once per max_defer: a few, not forty
        assert indexer.passes - first <= 5
    finally:
        indexer.close()
