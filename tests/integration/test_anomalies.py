"""Anomaly detection on real runs through ``Engine`` (both backends): baselines built from
the event log, ``anomaly.detected`` in the run that had one, and routing on it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playloop.engine.events import AnomalyDetected, Event, payload
from playloop.engine.state import fold
from playloop.runtime import Engine

WritePlaybook = Callable[..., Path]

# ``check`` sleeps ``workload.sleep`` and returns ``workload.score`` (+ a small wobble)
GATE = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: anomaly_gate, path: tests/anomaly_gate}
workload: {score: 0.9, sleep: 0.0, run: 0}
workflow:
  - step: check
    tool:
      kind: python
      input: {score: "{{ workload.score }}", sleep: "{{ workload.sleep }}", run: "{{ workload.run }}"}
      code: |
        import time
        time.sleep(sleep)
        result = {"quality_score": score + 0.01 * (run % 5 - 2)}
    ANOMALY
    next:
      - when: "{{ anomaly and anomaly.kind == 'duration' }}"
        then: [slow]
      - else: [load]
  - step: review
    tool: {kind: noop, result: "{{ args.anomaly }}"}
  - step: slow
    tool: {kind: noop, result: slow}
  - step: load
    tool: {kind: noop, result: loaded}
"""


def gate(
    write: WritePlaybook, anomaly: str = "on_anomaly: {step: review, kinds: [result_drift]}"
) -> Path:
    return write(GATE.replace("ANOMALY", anomaly))


def history(engine: Engine, path: Path, runs: int = 20) -> None:
    for i in range(runs):
        summary = engine.run(path, {"run": i}, timeout=60)
        assert summary["status"] == "completed" and "review" not in summary["steps"], summary
        assert anomalies(engine, summary, "result_drift") == []


def anomalies(engine: Engine, summary: dict[str, Any], kind: str | None = None) -> list[Event]:
    """The run's anomalies (of one kind: a busy machine may slow a step down by chance)."""
    events = engine.events(int(summary["execution_id"]))
    return [
        e
        for e in events
        if e.event_type == "anomaly.detected" and (kind is None or (e.meta or {})["kind"] == kind)
    ]


def test_a_drifted_score_routes_to_on_anomaly_with_the_anomaly_as_args(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    path = gate(write_playbook)
    history(engine, path)
    drifted = engine.run(path, {"score": 0.5, "run": 2}, timeout=60)
    assert drifted["status"] == "completed"
    assert set(drifted["steps"]) == {"check", "review"}
    (event,) = anomalies(engine, drifted, "result_drift")
    typed = payload(event)
    assert isinstance(typed, AnomalyDetected) and typed.meta is not None
    meta = typed.meta
    assert (event.step_name, event.attempt) == ("check", 1)
    assert (meta.kind, meta.step, meta.metric, meta.value) == (
        "result_drift", "check", "quality_score", 0.5,
    )  # fmt: skip
    assert meta.baseline.n == 20 and abs(meta.baseline.median - 0.9) < 1e-9
    assert meta.score > meta.threshold == 3.5
    assert meta.evidence["direction"] == "low"
    # the review step got the anomaly as args; the routing is in the event log
    assert drifted["result"] == event.meta
    events = engine.events(int(drifted["execution_id"]))
    finished = next(e for e in events if e.event_type == "step.finished" and e.step_name == "check")
    assert finished.meta is not None and finished.meta["on_anomaly"] == "result_drift"
    assert finished.meta["next"] == [{"step": "review", "args": {"anomaly": event.meta}}]
    # folded state: the anomaly belongs to the step's run
    assert event.meta in fold(events).steps["check"].anomalies
    # the next normal run is normal again
    after = engine.run(path, {"run": 3}, timeout=60)
    assert "review" not in after["steps"] and anomalies(engine, after, "result_drift") == []


def test_next_arcs_see_the_anomaly_and_on_anomaly_kinds_filter(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    path = gate(write_playbook)
    history(engine, path)
    slow = engine.run(path, {"sleep": 0.3, "run": 2}, timeout=60)
    # a duration anomaly is not a kind on_anomaly routes: the next arcs see it instead
    assert set(slow["steps"]) == {"check", "slow"}
    (event,) = anomalies(engine, slow, "duration")
    assert event.meta is not None
    assert (event.meta["kind"], event.meta["metric"]) == ("duration", "duration_ms")
    assert event.meta["value"] >= 300 and event.meta["baseline"]["median"] < 100


def test_a_step_can_opt_out(engine: Engine, write_playbook: WritePlaybook) -> None:
    path = gate(write_playbook, "anomaly: {enabled: false}")
    history(engine, path)
    drifted = engine.run(path, {"score": 0.5, "sleep": 0.3}, timeout=60)
    assert "load" in drifted["steps"] and anomalies(engine, drifted) == []


def test_an_engine_without_detection_records_none(
    tmp_path: Path, db_url: str, write_playbook: WritePlaybook
) -> None:
    path = gate(write_playbook)
    with Engine(tmp_path / "home", db=db_url, anomalies=False) as engine:
        history(engine, path)
        drifted = engine.run(path, {"score": 0.5}, timeout=60)
        assert "load" in drifted["steps"] and anomalies(engine, drifted) == []


FLAKY = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: anomaly_flaky, path: tests/anomaly_flaky}
workload: {fail: false}
workflow:
  - step: call
    retry: {attempts: 6}
    tool:
      kind: python
      input: {fail: "{{ workload.fail }}"}
      code: |
        if fail:
            raise ConnectionError("upstream down")
        result = {"ok": True}
"""


def test_a_failure_burst_is_one_failure_rate_anomaly(
    engine: Engine, write_playbook: WritePlaybook
) -> None:
    path = write_playbook(FLAKY)
    for _ in range(40):  # 40 attempts, none failed: the window (20) and 21 before it
        assert engine.run(path, timeout=60)["status"] == "completed"
    burst = engine.run(path, {"fail": True}, timeout=60)
    assert burst["status"] == "failed" and burst["steps"]["call"]["attempts"] == 6
    (event,) = anomalies(engine, burst, "failure_rate")
    meta = event.meta or {}
    assert meta["kind"] == "failure_rate" and meta["metric"] == "failure_rate"
    # the window is the last 20 attempts, the long-run rate that of the attempts before
    # it, smoothed: at attempt 4, 4 failures in 20 at a rate of 1 / (24 + 2) have
    # p = 0.0065; at attempt 5, 5 in 20 at 1 / (25 + 2) have p = 0.00068 < 0.001
    assert event.attempt == 5
    assert meta["evidence"]["failures"] == 5 and meta["evidence"]["window"] == 20
    evidence = meta["evidence"]
    assert (evidence["baseline_attempts"], evidence["baseline_failures"]) == (25, 0)
    assert evidence["p_value"] == 0.000677
    assert meta["evidence"]["error_type"] == "ConnectionError"
    assert meta["evidence"]["p_value"] < 0.001 and meta["score"] > meta["threshold"]
    events = engine.events(int(burst["execution_id"]))
    kinds = [e.event_type for e in events if e.step_name == "call" and e.attempt == 5]
    assert kinds == ["step.retrying", "step.started", "step.failed", "anomaly.detected"]
    # the spike goes on in the next run: no second anomaly for it
    again = engine.run(path, {"fail": True}, timeout=60)
    assert again["status"] == "failed" and anomalies(engine, again, "failure_rate") == []


def test_baselines_come_from_the_store_and_from_other_engines(
    tmp_path: Path, db_url: str, write_playbook: WritePlaybook
) -> None:
    path = gate(write_playbook)
    with Engine(tmp_path / "a", db=db_url) as first:
        history(first, path, runs=12)
    with Engine(tmp_path / "b", db=db_url) as second, Engine(tmp_path / "c", db=db_url) as other:
        history(second, path, runs=3)  # loads the 12 stored runs, observes its own 3
        history(other, path, runs=5)  # another process: read by a refresh
        assert second.detector is not None
        baselines = second.detector.baselines
        assert (
            len(baselines.steps[("tests/anomaly_gate", "check")].fields["quality_score"].values)
            == 15
        )
        baselines.refresh(force=True)
        assert (
            len(baselines.steps[("tests/anomaly_gate", "check")].fields["quality_score"].values)
            == 20
        )
        baselines.refresh(force=True)  # read once only
        assert (
            len(baselines.steps[("tests/anomaly_gate", "check")].fields["quality_score"].values)
            == 20
        )
        drifted = second.run(path, {"score": 0.5}, timeout=60)
        assert set(drifted["steps"]) == {"check", "review"}
        (event,) = anomalies(second, drifted, "result_drift")
        assert (event.meta or {})["baseline"]["n"] == 20
