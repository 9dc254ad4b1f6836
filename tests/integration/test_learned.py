"""Statistics from recorded executions, learned retries and learned timeouts (real runs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from benchmarks.learning.flaky_retry import FlakyServer, fault_of

from playloop.learn.stats import StatsCache, build_snapshot
from playloop.runtime import Engine


@pytest.fixture(scope="module")
def server() -> Iterator[FlakyServer]:
    with FlakyServer() as running:
        yield running


def keys(status: int | None, times: int | None = None, n: int = 5, skip: int = 0) -> list[str]:
    """Request keys the flaky server answers with ``status`` for ``times`` attempts."""
    found = []
    for i in range(5000):
        fault = fault_of(f"k{i}")
        if (fault is None and status is None) or (
            fault is not None and fault.status == status and (times is None or fault.times == times)
        ):
            found.append(f"k{i}")
    return found[skip : skip + n]


def playbook(tmp_path: Path, name: str, retry: str, path: str = "test/flaky") -> Path:
    file = tmp_path / f"{name}.yaml"
    file.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\n"
        f"metadata: {{name: {name}, path: {path}}}\n"
        "workflow:\n"
        "  - step: call\n"
        '    tool: {kind: http, url: "{{ workload.url }}", timeout: 5}\n'
        f"    retry: {retry}\n"
    )
    return file


def run_all(engine: Engine, file: Path, urls: list[str]) -> list[dict[str, Any]]:
    ids = [engine.start(file, {"url": url}) for url in urls]
    return [engine.wait(i, timeout=60) | {"id": i} for i in ids]


FIXED = "{attempts: 6, delay: 10ms, backoff: exponential, max_delay: 50ms}"
AUTO = "{auto: true, max_attempts: 6, delay: 10ms, max_delay: 50ms}"


def test_stats_from_recorded_executions(
    engine: Engine, tmp_path: Path, server: FlakyServer
) -> None:
    file = playbook(tmp_path, "fixed", FIXED)
    urls = [f"{server.url}/r/s/{k}" for k in keys(503, 2, n=6)]
    urls += [f"{server.url}/r/s/{k}" for k in keys(None, n=4)]
    urls += [f"{server.url}/r/s/{k}" for k in keys(404, n=2)]
    done = run_all(engine, file, urls)
    assert [d["status"] for d in done].count("completed") == 10
    snap = build_snapshot(engine.store)
    step = snap.step("test/flaky", "call")
    assert step is not None and step.tool == "http"
    assert (step.runs, step.completed, step.failed) == (12, 10, 2)
    # 6 requests fail twice each, 2 fail on all 6 attempts
    assert step.failed_attempts == 6 * 2 + 2 * 6
    assert step.attempts == 6 * 3 + 4 + 2 * 6
    assert step.durations is not None and step.durations.count == 10
    assert step.durations.p50 <= step.durations.p99
    c503 = step.classes["http.503"]
    # attempt 2 after a 503 fails (6 times), attempt 3 succeeds (6 times)
    assert c503.by_attempt == {2: (6, 0), 3: (6, 6)}
    assert c503.retried == 12 and c503.retry_successes == 6
    assert c503.recovery is not None and c503.recovery.count == 6
    c404 = step.classes["http.404"]
    assert c404.retried == 10 and c404.retry_successes == 0
    playbook_stats = snap.playbooks["test/flaky"]
    assert (playbook_stats.total, playbook_stats.completed, playbook_stats.failed) == (12, 10, 2)
    assert snap.tools["http"].failed == step.failed_attempts
    # the failure events carry their class
    failed = [e for d in done for e in engine.events(d["id"]) if e.event_type == "step.failed"]
    assert {e.meta["error_class"] for e in failed if e.meta} == {"http.503", "http.404"}


def test_refresh_is_incremental(engine: Engine, tmp_path: Path, server: FlakyServer) -> None:
    file = playbook(tmp_path, "fixed", FIXED)
    cache = StatsCache(engine.store, max_age=3600)
    run_all(engine, file, [f"{server.url}/r/i/{k}" for k in keys(None, n=3)])
    first = cache.refresh()
    assert first.steps[("test/flaky", "call")].completed == 3
    assert cache.maybe_refresh() is first  # not stale: the store is not read
    run_all(engine, file, [f"{server.url}/r/i/{k}" for k in keys(None, n=2, skip=3)])
    second = cache.refresh()
    assert second.checkpoint > first.checkpoint
    assert second.steps[("test/flaky", "call")].completed == 5
    assert second.events == build_snapshot(engine.store).events  # nothing counted twice


def _retrying(engine: Engine, execution_id: int) -> list[dict[str, Any]]:
    return [e.meta or {} for e in engine.events(execution_id) if e.event_type == "step.retrying"]


def _last_failure(engine: Engine, execution_id: int) -> dict[str, Any]:
    failed = [e for e in engine.events(execution_id) if e.event_type == "step.failed"]
    return failed[-1].meta or {}


def test_retry_auto_defaults_without_history(
    engine: Engine, tmp_path: Path, server: FlakyServer
) -> None:
    file = playbook(tmp_path, "auto", AUTO)
    ok, permanent, long = run_all(
        engine,
        file,
        [
            f"{server.url}/r/d/{keys(503, 2, n=1)[0]}",
            f"{server.url}/r/d/{keys(400, n=1)[0]}",
            f"{server.url}/r/d/{keys(503, 4, n=1)[0]}",
        ],
    )
    assert ok["status"] == "completed"
    evidence = [m["evidence"] for m in _retrying(engine, ok["id"])]
    assert [e["source"] for e in evidence] == ["default", "default"]
    assert [e["delay"] for e in evidence] == [0.01, 0.02]
    assert evidence[0]["class"] == "http.503"
    # a permanent class is never retried; the choice is recorded on the failure
    assert permanent["status"] == "failed" and not _retrying(engine, permanent["id"])
    assert _last_failure(engine, permanent["id"])["evidence"]["reason"] == "permanent error class"
    # the default makes 3 attempts
    assert long["status"] == "failed" and len(_retrying(engine, long["id"])) == 2
    reason = _last_failure(engine, long["id"])["evidence"]["reason"]
    assert reason == "no history: the default makes 3 attempts"


def test_retry_auto_learns_from_history(
    engine: Engine, tmp_path: Path, server: FlakyServer
) -> None:
    learn = playbook(tmp_path, "learn", FIXED)
    history = [f"{server.url}/r/h/{k}" for k in keys(503, 4, n=4)]
    history += [f"{server.url}/r/h/{k}" for k in keys(500, n=2)]
    run_all(engine, learn, history)
    engine.stats.refresh()
    auto = playbook(tmp_path, "auto", AUTO)
    slow, broken = run_all(
        engine,
        auto,
        [f"{server.url}/r/a/{keys(503, 4, n=1, skip=4)[0]}", f"{server.url}/r/a/{keys(500)[2]}"],
    )
    # history says 503s pass at attempt 5: past the default's 3 attempts
    assert slow["status"] == "completed"
    evidence = [m["evidence"] for m in _retrying(engine, slow["id"])]
    assert len(evidence) == 4 and {e["source"] for e in evidence} == {"history"}
    assert evidence[-1]["success_probability_at_attempt"] == 1.0
    assert evidence[0]["attempts_seen"] == 16 and evidence[0]["scope"] == "step"
    # 500 here never passed on retry (10 tries): not retried at all, though 5xx is transient
    assert broken["status"] == "failed" and not _retrying(engine, broken["id"])
    assert _last_failure(engine, broken["id"])["evidence"]["reason"] == "never succeeded on retry"


def test_retry_after_is_honoured(engine: Engine, tmp_path: Path, server: FlakyServer) -> None:
    file = playbook(tmp_path, "auto", AUTO)
    (done,) = run_all(engine, file, [f"{server.url}/r/ra/{keys(429, 2, n=1)[0]}"])
    assert done["status"] == "completed"
    evidence = [m["evidence"] for m in _retrying(engine, done["id"])]
    assert [e["source"] for e in evidence] == ["retry-after", "retry-after"]
    assert all(e["delay"] == 0.03 for e in evidence)


def test_policy_rule_mode_learned(engine: Engine, tmp_path: Path, server: FlakyServer) -> None:
    file = tmp_path / "rule.yaml"
    file.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: rule, path: test/rule}\n"
        "workflow:\n"
        "  - step: call\n"
        "    tool:\n"
        "      kind: http\n"
        '      url: "{{ workload.url }}"\n'
        "      spec:\n"
        "        policy:\n"
        "          rules:\n"
        '            - when: "{{ error is not none }}"\n'
        "              then: {do: retry, mode: learned, attempts: 4, delay: 10ms}\n"
    )
    ok, permanent = run_all(
        engine,
        file,
        [f"{server.url}/r/p/{keys(503, 1, n=1)[0]}", f"{server.url}/r/p/{keys(404, n=1)[0]}"],
    )
    assert ok["status"] == "completed"
    assert [m["evidence"]["source"] for m in _retrying(engine, ok["id"])] == ["default"]
    assert permanent["status"] == "failed" and not _retrying(engine, permanent["id"])


def test_timeout_auto(engine: Engine, tmp_path: Path) -> None:
    file = tmp_path / "t.yaml"
    file.write_text(
        "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: t, path: test/timeout}\n"
        "workflow:\n"
        "  - step: work\n"
        "    tool: {kind: noop, result: 1}\n"
        "    timeout: {auto: true, min: 2s, max: 5m}\n"
    )

    def started_meta(execution_id: int) -> dict[str, Any]:
        events = engine.events(execution_id)
        return next(e.meta for e in events if e.event_type == "step.started") or {}

    first = engine.run(file, timeout=30)
    meta = started_meta(int(first["execution_id"]))
    assert meta["timeout"] == {
        "seconds": 300.0,
        "source": "default",
        "samples": 0,
        "min": 2.0,
        "max": 300.0,
    }
    for _ in range(20):
        engine.run(file, timeout=30)
    engine.stats.refresh()
    last = engine.run(file, timeout=30)
    learned = started_meta(int(last["execution_id"]))["timeout"]
    assert learned["source"] == "history" and learned["samples"] >= 20
    # noop steps take ~0 ms: the learned timeout is clamped to min
    assert learned["seconds"] == 2.0
