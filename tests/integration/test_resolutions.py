"""Failures linked to what resolved them, from real runs through ``Engine`` (both backends)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from playloop.engine.events import Event
from playloop.engine.orchestrator import UnknownExecution
from playloop.learn.resolutions import (
    NotAFailure,
    UnknownEvent,
    list_failures,
    record_resolutions,
    resolve,
)
from playloop.runtime import Engine

WritePlaybook = Callable[..., Path]

HEADER = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: resolutions, path: tests/resolutions}
"""

# ``load`` fails while the workload's batch size is above the quota
QUOTA = (
    HEADER
    + """workload: {batch: 500, quota: 100}
workflow:
  - step: extract
    tool: {kind: noop, result: {rows: 3}}
    next: [{step: load}]
  - step: load
    tool:
      kind: python
      input: {batch: "{{ workload.batch }}", quota: "{{ workload.quota }}"}
      code: |
        if batch > quota:
            raise RuntimeError(f"batch {batch} over quota {quota}")
        result = {"loaded": batch}
"""
)


def flaky(counter: Path, fails: int = 1) -> str:
    return (
        HEADER
        + f"""workflow:
  - step: call
    retry: {{attempts: 4, delay: 0}}
    tool:
      kind: python
      code: |
        import os
        p = "{counter}"
        n = int(open(p).read()) + 1 if os.path.exists(p) else 1
        open(p, "w").write(str(n))
        if n <= {fails}:
            raise ConnectionError(f"unavailable (call {{n}})")
        result = n
"""
    )


def resolutions(events: list[Event]) -> list[dict[str, Any]]:
    return [e.meta or {} for e in events if e.event_type == "resolution.recorded"]


def by_type(events: list[Event], event_type: str) -> list[Event]:
    return [e for e in events if e.event_type == event_type]


def run(engine: Engine, path: Path, workload: dict[str, Any] | None = None) -> int:
    return int(engine.run(path, workload, timeout=60)["execution_id"])


def test_a_flaky_step_that_succeeds_on_retry_gets_a_retry_resolution(
    engine: Engine, write_playbook: WritePlaybook, tmp_path: Path
) -> None:
    execution = run(engine, write_playbook(flaky(tmp_path / "count", fails=2)))
    assert engine.summary(execution)["status"] == "completed"

    appended = record_resolutions(engine, execution)

    events = engine.events(execution)
    failed = by_type(events, "step.failed")
    finished = by_type(events, "step.finished")[0]
    assert [e.attempt for e in failed] == [1, 2]
    assert [e.event_type for e in appended] == ["resolution.recorded"] * 2
    assert all(e.execution_id == execution and e.actor == "playloop" for e in appended)
    metas = resolutions(events)
    assert [m["failure"]["event_id"] for m in metas] == [str(e.event_id) for e in failed]
    for meta in metas:
        assert meta["kind"] == "retry"
        assert meta["failure"]["execution_id"] == str(execution)
        assert meta["resolved_by"]["event_id"] == str(finished.event_id)
        assert meta["note"] == "attempt 3 of step 'call' succeeded"
    # the execution is still what it was: resolutions change no step
    assert engine.summary(execution)["status"] == "completed"


def test_a_flaky_loop_item_gets_a_retry_resolution_for_that_item(
    engine: Engine, write_playbook: WritePlaybook, tmp_path: Path
) -> None:
    body = (
        HEADER
        + f"""workload: {{items: [1, 2, 3]}}
workflow:
  - step: each
    loop: {{in: "{{{{ workload.items }}}}", iterator: it}}
    retry: {{attempts: 2, delay: 0}}
    tool:
      kind: python
      input: {{it: "{{{{ it }}}}"}}
      code: |
        import os
        p = "{tmp_path}/item-" + str(it)
        n = int(open(p).read()) + 1 if os.path.exists(p) else 1
        open(p, "w").write(str(n))
        if it == 2 and n == 1:
            raise ConnectionError("item 2 flaked")
        result = it
"""
    )
    execution = run(engine, write_playbook(body))
    record_resolutions(engine, execution)
    events = engine.events(execution)
    (failed,) = [e for e in events if e.event_type == "loop.item" and e.status == "failed"]
    (meta,) = resolutions(events)
    assert failed.iteration == 1
    assert meta["kind"] == "retry"
    assert meta["failure"]["iteration"] == 1
    assert meta["note"] == "attempt 2 of step 'each' item 1 succeeded"
    resolver = next(e for e in events if e.event_id == int(meta["resolved_by"]["event_id"]))
    assert (resolver.event_type, resolver.iteration, resolver.status) == (
        "loop.item",
        1,
        "completed",
    )


def test_a_later_successful_run_with_a_changed_workload_resolves_the_failure(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    path = write_playbook(QUOTA)
    failed = run(engine, path)
    assert engine.summary(failed)["status"] == "failed"
    assert record_resolutions(engine, failed) == []  # nothing fixed it yet

    fixed = run(engine, path, {"batch": 50})
    assert engine.summary(fixed)["status"] == "completed"
    appended = record_resolutions(engine, fixed)

    assert {e.execution_id for e in appended} == {failed}  # recorded in the failure's log
    events = engine.events(failed)
    step_failed = by_type(events, "step.failed")[0]
    execution_failed = by_type(events, "execution.failed")[0]
    success = next(
        e for e in engine.events(fixed) if e.event_type == "step.finished" and e.step_name == "load"
    )
    metas = resolutions(events)
    assert [m["failure"]["event_id"] for m in metas] == [
        str(step_failed.event_id),
        str(execution_failed.event_id),
    ]
    for meta in metas:
        assert meta["kind"] == "later_run"
        assert meta["resolved_by"]["execution_id"] == str(fixed)
        assert meta["resolved_by"]["event_id"] == str(success.event_id)
        assert meta["changed"] == {"workload": {"batch": {"before": 500, "after": 50}}}
        assert meta["note"] == (
            f"step 'load' succeeded in execution {fixed} (workload batch: 500 -> 50)"
        )
    # idempotent: from either side, any number of times
    assert record_resolutions(engine, fixed) == []
    assert record_resolutions(engine, failed) == []
    assert len(resolutions(engine.events(failed))) == 2


def test_a_later_run_of_a_new_playbook_version_names_the_version(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    failed = run(engine, write_playbook(QUOTA))
    raised = QUOTA.replace("quota: 100", "quota: 1000")
    fixed = run(engine, write_playbook(raised))  # same file, new catalog version
    assert engine.summary(fixed)["status"] == "completed"
    # recorded from the failed run's side (catching up after the fact works too)
    record_resolutions(engine, failed)
    metas = resolutions(engine.events(failed))
    assert len(metas) == 2
    assert metas[0]["changed"] == {
        "workload": {"quota": {"before": 100, "after": 1000}},
        "playbook_version": {"before": "1", "after": "2"},
    }
    assert "playbook version 1 -> 2" in metas[0]["note"]


def test_the_first_later_success_is_the_resolution(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    path = write_playbook(QUOTA)
    failed = run(engine, path)
    first = run(engine, path, {"batch": 10})
    second = run(engine, path, {"batch": 20})
    record_resolutions(engine, second)  # the second run looks back, finds the first fixed it
    metas = resolutions(engine.events(failed))
    assert {m["resolved_by"]["execution_id"] for m in metas} == {str(first)}
    assert record_resolutions(engine, first) == []


def test_a_run_of_another_playbook_resolves_nothing(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    failed = run(engine, write_playbook(QUOTA, "a.yaml"))
    other = QUOTA.replace("tests/resolutions", "tests/other")
    fixed = run(engine, write_playbook(other, "b.yaml"), {"batch": 1})
    assert engine.summary(fixed)["status"] == "completed"
    assert record_resolutions(engine, fixed) == []
    assert record_resolutions(engine, failed) == []


def test_a_policy_that_carries_on_past_an_error_is_no_retry(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    body = (
        HEADER
        + """workflow:
  - step: first
    tool:
      kind: python
      code: "raise KeyError('missing')"
      spec:
        policy:
          rules:
            - then: {do: continue}
"""
    )
    execution = run(engine, write_playbook(body))
    assert engine.summary(execution)["status"] == "completed"
    assert record_resolutions(engine, execution) == []
    (linked,) = list_failures(engine, unresolved=True)
    assert linked.failure.error_type == "KeyError"


def test_a_decision_after_a_failure_resolves_it(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    body = (
        HEADER
        + """workflow:
  - step: check
    tool:
      kind: python
      code: "raise ValueError('score 0.85 below 0.9')"
      spec:
        policy:
          rules:
            - then: {do: continue}
"""
    )
    execution = run(engine, write_playbook(body))
    decision = engine.record(
        execution,
        "decision.made",
        step_name="check",
        actor="alice",
        meta={"decision_id": "d-1", "action": "override", "comment": "known sensor drift"},
    )
    record_resolutions(engine, execution)
    (meta,) = resolutions(engine.events(execution))
    assert meta["kind"] == "decision"
    assert meta["note"] == "override by alice: known sensor drift"
    assert meta["resolved_by"]["event_id"] == str(decision.event_id)
    resolution = by_type(engine.events(execution), "resolution.recorded")[0]
    assert resolution.actor == "alice"


def test_a_manual_resolution_names_the_failure(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    execution = run(engine, write_playbook(QUOTA))
    failure = by_type(engine.events(execution), "step.failed")[0]

    event = resolve(engine, failure.event_id, "  raised the quota by hand  ", actor="bob")

    assert (event.execution_id, event.event_type, event.actor) == (
        execution,
        "resolution.recorded",
        "bob",
    )
    assert event.meta is not None
    assert event.meta["kind"] == "manual"
    assert event.meta["note"] == "raised the quota by hand"
    assert event.meta["failure"]["event_id"] == str(failure.event_id)
    assert event.meta["failure"]["seq"] == failure.seq
    (linked, *_) = [f for f in list_failures(engine) if f.failure.event_id == failure.event_id]
    assert [r.event_id for r in linked.resolutions] == [event.event_id]
    unresolved = list_failures(engine, unresolved=True)
    assert [f.failure.event_type for f in unresolved] == ["execution.failed"]


def test_resolving_what_is_no_failure_appends_nothing(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    execution = run(engine, write_playbook(QUOTA))
    events = engine.events(execution)
    started = by_type(events, "execution.started")[0]
    with pytest.raises(NotAFailure, match=r"execution\.started event, not a failure"):
        resolve(engine, started.event_id, "nothing", actor="bob")
    with pytest.raises(UnknownEvent, match="no event 12345"):
        resolve(engine, 12345, "nothing", actor="bob")
    with pytest.raises(ValueError, match="note is empty"):
        resolve(engine, by_type(events, "step.failed")[0].event_id, "  ", actor="bob")
    with pytest.raises(UnknownExecution):
        record_resolutions(engine, 12345)
    assert len(engine.events(execution)) == len(events)


def test_listing_catches_up_and_filters(engine: Engine, write_playbook: WritePlaybook) -> None:
    path = write_playbook(QUOTA)
    failed = run(engine, path)
    fixed = run(engine, path, {"batch": 5})
    still = run(engine, write_playbook(QUOTA.replace("tests/resolutions", "tests/b"), "b.yaml"))

    # nothing recorded yet: listing records the later run's resolutions first
    unresolved = list_failures(engine, unresolved=True)
    assert {f.failure.execution_id for f in unresolved} == {still}
    everything = list_failures(engine)
    assert [f.failure.created_at for f in everything] == sorted(
        (f.failure.created_at for f in everything), reverse=True
    )
    of_first = [f for f in everything if f.failure.execution_id == failed]
    assert {f.failure.event_type for f in of_first} == {"step.failed", "execution.failed"}
    for linked in of_first:
        (resolution,) = linked.resolutions
        assert resolution.meta is not None and resolution.meta["kind"] == "later_run"
        assert linked.to_dict()["resolutions"][0]["resolved_by"]["execution_id"] == str(fixed)
    only_b = list_failures(engine, playbook="tests/b")
    assert {f.failure.execution_id for f in only_b} == {still}
    assert list_failures(engine, playbook="tests/none") == []
    # listing again records nothing more
    count = len(engine.events(failed))
    list_failures(engine)
    assert len(engine.events(failed)) == count


def test_recording_from_the_engines_loop_thread_is_refused(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    refused: list[str] = []

    def listener(events: list[Event]) -> None:  # runs on the engine's loop thread
        try:
            record_resolutions(engine, events[0].execution_id)
        except RuntimeError as exc:
            refused.append(str(exc))

    engine.subscribe(listener)
    run(engine, write_playbook(QUOTA))
    assert refused
    assert "another thread than the engine's loop" in refused[0]


# --- recorded where executions end -----------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float = 30) -> None:
    import time

    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_records_the_resolutions_of_the_executions_it_ends(
    tmp_path: Path, db_url: str, write_playbook: WritePlaybook
) -> None:
    """Nobody runs `playloop run` or `playloop failures`: the worker that ended it records."""
    path = write_playbook(flaky(tmp_path / "count", fails=1))
    with (
        Engine(tmp_path / "server", db=db_url, concurrency=0) as server,
        Engine(tmp_path / "worker", db=db_url, claim_any=True, record_resolutions=True) as worker,
    ):
        worker.serve()
        execution = server.start(path)
        assert server.wait(execution, timeout=60)["status"] == "completed"
        wait_for(lambda: bool(resolutions(server.events(execution))))
        (meta,) = resolutions(server.events(execution))
        assert meta["kind"] == "retry"


def test_a_worker_links_a_clean_run_to_the_failure_another_run_left_open(
    tmp_path: Path, db_url: str, write_playbook: WritePlaybook
) -> None:
    """The worker skips runs with nothing to link; one that gets through a step an earlier
    run failed (with a changed workload) is not skipped, though it failed nothing itself."""
    path = write_playbook(QUOTA)
    with (
        Engine(tmp_path / "server", db=db_url, concurrency=0) as server,
        Engine(tmp_path / "worker", db=db_url, claim_any=True, record_resolutions=True) as worker,
    ):
        worker.serve()
        failed = server.start(path)
        assert server.wait(failed, timeout=60)["status"] == "failed"
        clean = [server.start(path, workload={"batch": 10}) for _ in range(3)]
        for execution in clean:
            assert server.wait(execution, timeout=60)["status"] == "completed"
        failures = {e.event_id for e in server.events(failed) if e.event_type.endswith("failed")}

        def linked() -> list[int]:
            return [
                int(meta["failure"]["event_id"])
                for meta in resolutions(server.events(failed))
                if meta["kind"] == "later_run"
            ]

        wait_for(lambda: len(linked()) >= len(failures))
        time.sleep(0.3)  # the other clean runs' passes: they must add nothing
        assert sorted(linked()) == sorted(failures)  # step.failed and execution.failed, once each


def test_two_processes_record_each_resolution_once(
    tmp_path: Path, db_url: str, write_playbook: WritePlaybook
) -> None:
    """Three later runs that fix the same failure end at once, each in its own process
    (each records in the background and again after its run): one later_run resolution."""
    import os
    import subprocess
    import sys

    path = write_playbook(QUOTA)
    with Engine(tmp_path / "home", db=db_url) as engine:
        failed = run(engine, path)
        assert engine.summary(failed)["status"] == "failed"
    env = {**os.environ, "PLAYLOOP_HOME": str(tmp_path / "home"), "PLAYLOOP_DB": db_url}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "playloop.cli", "run", str(path), "--set", "batch=50"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in runs:
        _, errors = proc.communicate(timeout=120)
        assert proc.returncode == 0, errors
    with Engine(tmp_path / "home", db=db_url) as engine:
        metas = resolutions(engine.events(failed))
    later = [m for m in metas if m["kind"] == "later_run"]
    assert len(later) == 2, metas  # the step.failed and the execution.failed, once each
    assert len({m["failure"]["event_id"] for m in later}) == 2
