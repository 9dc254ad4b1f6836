"""Routing, joins, loops, retries, timeouts and policies, end to end on real SQLite."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from playloop.engine.events import Event
from playloop.runtime import Engine

HEADER = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: t, path: tests/t}
"""


def run(
    engine: Engine, write_playbook: Any, body: str, workload: dict[str, Any] | None = None
) -> dict[str, Any]:
    return engine.run(write_playbook(HEADER + body), workload, timeout=60)


def events_of(engine: Engine, summary: dict[str, Any]) -> list[Event]:
    return engine.events(int(summary["execution_id"]))


def types(events: list[Event], step: str | None = None) -> list[str]:
    return [e.event_type for e in events if step is None or e.step_name == step]


def test_exclusive_routing_takes_first_true_block(engine: Engine, write_playbook: Any) -> None:
    body = """
workload: {x: 5}
workflow:
  - step: a
    tool: {kind: noop}
    next:
      - when: "{{ workload.x > 10 }}"
        then: [{step: big}]
      - when: "{{ workload.x > 1 }}"
        then: [{step: mid, args: {label: medium}}, {step: also}]
      - else: [{step: small}]
  - step: big
    tool: {kind: noop, result: big}
  - step: mid
    tool: {kind: noop, result: "{{ args.label }}"}
  - step: also
    tool: {kind: noop, result: also}
  - step: small
    tool: {kind: noop, result: small}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "completed"
    assert set(s["steps"]) == {"a", "mid", "also"}
    assert s["steps"]["mid"]["result"] == "medium"
    s = run(engine, write_playbook, body, {"x": 0})
    assert set(s["steps"]) == {"a", "small"}


def test_canonical_inclusive_arcs_fan_out_and_join_waits(
    engine: Engine, write_playbook: Any
) -> None:
    body = """
workflow:
  - step: start
    tool: {kind: noop}
    next:
      spec: {mode: inclusive}
      arcs:
        - {step: slow}
        - {step: fast, set: {picked: fast}}
        - {step: never, when: "{{ false }}"}
  - step: slow
    tool: {kind: python, code: "import time; time.sleep(0.4); result = 'slow'"}
    next: {arcs: [{step: join}]}
  - step: fast
    tool: {kind: python, code: "result = 'fast'"}
    next: {arcs: [{step: join}]}
  - step: never
    tool: {kind: noop}
    next: {arcs: [{step: join}]}
  - step: join
    tool: {kind: python, input: {a: "{{ slow }}", b: "{{ fast }}", v: "{{ vars.picked }}"}, code: "result = [a, b, v]"}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "completed", s
    assert s["result"] == ["slow", "fast", "fast"]
    assert "never" not in s["steps"]
    evs = events_of(engine, s)
    assert types(evs, "join").count("step.started") == 1
    join_start = next(
        e.seq for e in evs if e.step_name == "join" and e.event_type == "step.started"
    )
    slow_end = next(e.seq for e in evs if e.step_name == "slow" and e.event_type == "step.finished")
    assert join_start > slow_end


def test_parallel_branches_really_run_concurrently(engine: Engine, write_playbook: Any) -> None:
    arcs = "\n".join(f"        - {{step: b{i}}}" for i in range(4))
    branches = "\n".join(
        f"""  - step: b{i}
    tool: {{kind: shell, cmds: "sleep 0.6"}}
    next: {{arcs: [{{step: done}}]}}"""
        for i in range(4)
    )
    body = f"""
workflow:
  - step: start
    tool: {{kind: noop}}
    next:
      spec: {{mode: inclusive}}
      arcs:
{arcs}
{branches}
  - step: done
    tool: {{kind: noop}}
"""
    started = time.perf_counter()
    s = run(engine, write_playbook, body)
    elapsed = time.perf_counter() - started
    assert s["status"] == "completed"
    assert elapsed < 1.8, f"4 x 0.6 s branches took {elapsed:.2f}s: not concurrent"


def test_loop_sequential_and_parallel_with_max_in_flight(
    engine: Engine, write_playbook: Any
) -> None:
    body = """
workload: {items: [1, 2, 3, 4, 5, 6]}
workflow:
  - step: work
    loop:
      in: "{{ workload.items }}"
      iterator: n
      spec: {mode: %s, max_in_flight: 2}
    tool: {kind: python, input: {n: "{{ n }}", i: "{{ loop.index0 }}"}, code: "import time; time.sleep(0.05); result = n * 10 + i"}
"""
    for mode, limit in (("sequential", 1), ("parallel", 2)):
        s = run(engine, write_playbook, body % mode)
        assert s["status"] == "completed"
        assert s["steps"]["work"]["result"] == [10, 21, 32, 43, 54, 65]
        running = peak = 0
        for e in events_of(engine, s):
            if e.event_type == "loop.item" and e.status == "running":
                running += 1
                peak = max(peak, running)
            elif e.event_type == "loop.item":
                running -= 1
        assert peak == limit, (mode, peak)


def test_loop_over_empty_list_finishes_with_empty_result(
    engine: Engine, write_playbook: Any
) -> None:
    body = """
workflow:
  - step: work
    loop: {in: "{{ [] }}", iterator: x}
    tool: {kind: noop}
    next: [{step: after}]
  - step: after
    tool: {kind: noop, result: "{{ work | length }}"}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "completed"
    assert s["result"] == 0


def test_retry_with_backoff_then_success(
    engine: Engine, write_playbook: Any, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    body = f"""
workflow:
  - step: flaky
    retry: {{attempts: 4, delay: 0.1, backoff: exponential, jitter: 0.1}}
    tool:
      kind: python
      code: |
        import os
        p = "{counter}"
        n = int(open(p).read()) + 1 if os.path.exists(p) else 1
        open(p, "w").write(str(n))
        if n < 3:
            raise ConnectionError("down")
        result = n
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "completed"
    assert s["steps"]["flaky"]["attempts"] == 3
    evs = events_of(engine, s)
    retries = [e for e in evs if e.event_type == "step.retrying"]
    assert [e.attempt for e in retries] == [2, 3]
    delays = [e.meta["delay"] for e in retries if e.meta]
    assert 0.09 <= delays[0] <= 0.11 and 0.18 <= delays[1] <= 0.22  # exponential, +-10 % jitter
    assert types(evs, "flaky").count("step.failed") == 2
    assert [e.error_type for e in evs if e.event_type == "step.failed"] == ["ConnectionError"] * 2


def test_retry_on_filter_skips_other_error_types(engine: Engine, write_playbook: Any) -> None:
    body = """
workflow:
  - step: bad
    retry: {attempts: 5, delay: 0, on: [ConnectionError]}
    tool: {kind: python, code: "raise ValueError('not transient')"}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "failed"
    assert s["steps"]["bad"]["attempts"] == 1
    assert s["error"]["type"] == "ValueError"
    assert "not transient" in s["error"]["message"]


def test_failed_step_without_route_fails_the_execution(engine: Engine, write_playbook: Any) -> None:
    body = """
workflow:
  - step: a
    tool: {kind: shell, cmds: "echo oops >&2; exit 3"}
    next: [{step: b}]
  - step: b
    tool: {kind: noop}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "failed"
    assert s["error"]["step"] == "a"
    assert "oops" in s["error"]["message"]
    assert "b" not in s["steps"]
    assert types(events_of(engine, s))[-1] == "execution.failed"


def test_timeout_kills_user_code_and_retry_policy_applies(
    engine: Engine, write_playbook: Any
) -> None:
    body = """
workflow:
  - step: spin
    timeout: 1s
    retry: {attempts: 2, delay: 0, on: [TimeoutError]}
    tool:
      kind: python
      code: |
        while True:
            pass
"""
    started = time.perf_counter()
    s = run(engine, write_playbook, body)
    elapsed = time.perf_counter() - started
    assert s["status"] == "failed"
    assert s["steps"]["spin"]["status"] == "timed_out"
    assert s["steps"]["spin"]["attempts"] == 2
    assert elapsed < 4.0
    evs = events_of(engine, s)
    assert types(evs, "spin").count("step.timed_out") == 2
    # the pool replaced the killed processes: a new run works
    assert (
        run(
            engine,
            write_playbook,
            "workflow:\n  - step: ok\n    tool: {kind: python, code: 'result = 1'}\n",
        )["result"]
        == 1
    )


def test_policy_rules_continue_jump_and_retry(engine: Engine, write_playbook: Any) -> None:
    body = """
workflow:
  - step: first
    tool:
      kind: python
      code: "raise KeyError('missing')"
      spec:
        policy:
          rules:
            - when: "{{ error.type == 'KeyError' }}"
              then: {do: continue}
    next: [{step: second}]
  - step: second
    tool:
      kind: python
      code: "result = {'status': 'bad'}"
      spec:
        policy:
          rules:
            - when: "{{ output.status == 'bad' }}"
              then: {do: jump, to: recover}
    next: [{step: unreachable}]
  - step: unreachable
    tool: {kind: noop}
  - step: recover
    tool: {kind: noop, result: recovered}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "completed", s
    assert s["steps"]["first"]["result"]["error"]["type"] == "KeyError"
    assert "unreachable" not in s["steps"]
    assert s["result"] == "recovered"


def test_cancel_stops_a_running_execution(engine: Engine, write_playbook: Any) -> None:
    path = write_playbook(
        HEADER
        + """
workflow:
  - step: long
    tool: {kind: shell, cmds: "sleep 2"}
    next: [{step: after}]
  - step: after
    tool: {kind: noop}
"""
    )
    execution_id = engine.start(path)
    time.sleep(0.3)
    engine.cancel(execution_id, actor="tester")
    s = engine.wait(execution_id, timeout=10)
    assert s["status"] == "cancelled"
    time.sleep(2.2)  # the late report of the killed-off step changes nothing
    evs = engine.events(execution_id)
    assert types(evs)[-1] == "execution.cancelled"
    assert "after" not in engine.summary(execution_id)["steps"]


def test_runtime_template_error_names_step_and_template(
    engine: Engine, write_playbook: Any
) -> None:
    body = """
workflow:
  - step: a
    tool: {kind: noop, result: {x: 1}}
    next: [{step: b}]
  - step: b
    tool: {kind: noop, result: "{{ a.missing_key }}"}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "failed"
    assert s["error"]["type"] == "TemplateError"
    assert "step 'b'" in s["error"]["message"] and "a.missing_key" in s["error"]["message"]


def test_workbook_tool_and_entry_step(engine: Engine, write_playbook: Any) -> None:
    body = """
executor: {spec: {entry_step: begin}}
workbook:
  - name: double
    tool: {kind: python, code: "result = x * 2"}
workflow:
  - step: ignored_first
    tool: {kind: noop}
  - step: begin
    tool: {kind: workbook, name: double, input: {x: 21}}
"""
    s = run(engine, write_playbook, body)
    assert s["status"] == "completed"
    assert s["result"] == 42
    assert "ignored_first" not in s["steps"]


def test_single_expression_template_keeps_type(engine: Engine, write_playbook: Any) -> None:
    body = """
workload: {numbers: [1, 2, 3]}
workflow:
  - step: a
    tool: {kind: python, input: {xs: "{{ workload.numbers }}", label: "n={{ workload.numbers | length }}"}, code: "result = [type(xs).__name__, label]"}
"""
    s = run(engine, write_playbook, body)
    assert s["result"] == ["list", "n=3"]


def test_every_event_is_in_order_and_state_equals_fold(engine: Engine, write_playbook: Any) -> None:
    from playloop.engine.state import fold

    s = run(
        engine,
        write_playbook,
        """
workflow:
  - step: a
    loop: {in: "{{ [1, 2, 3] }}", iterator: i, spec: {mode: parallel}}
    tool: {kind: python, input: {i: "{{ i }}"}, code: "result = i"}
    next: [{step: b}]
  - step: b
    tool: {kind: noop}
""",
    )
    evs = events_of(engine, s)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1))
    state = fold(evs)
    assert state.status == "completed" and state.results["a"] == [1, 2, 3]
    ids = [e.event_id for e in evs]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("score,expected", [(0.85, "await_human_approval"), (0.95, "load")])
def test_seed_query_runs_verbatim(
    engine: Engine, score: float, expected: str, db_query: Any
) -> None:
    root = Path(__file__).resolve().parents[2]
    s = engine.run(root / "examples" / "quality_gate.yaml", {"score": score})
    assert s["status"] == "completed"
    assert expected in s["steps"]
    rows = db_query(
        "SELECT execution_id, step_name, status, duration_ms, error_message\n"
        "FROM noetl.event WHERE playbook_path = 'data/ingestion/daily_load' ORDER BY created_at DESC;"
    )
    assert any(r[1] == expected and r[2] == "completed" for r in rows)
    assert rows[-1][1] is None and rows[-1][2] == "running"  # the oldest: execution.started


def test_record_appends_to_an_ended_execution(engine: Engine, write_playbook: Any) -> None:
    s = run(engine, write_playbook, "workflow:\n  - step: a\n    tool: {kind: noop, result: 1}\n")
    execution_id = int(s["execution_id"])
    event = engine.record(
        execution_id, "feedback.received", actor="ab-test", meta={"label": "good", "score": 0.9}
    )
    events = engine.events(execution_id)
    assert events[-1].event_type == "feedback.received" and events[-1].seq == event.seq == len(
        events
    )
    assert events[-1].meta == {"label": "good", "score": 0.9} and events[-1].actor == "ab-test"
    assert engine.summary(execution_id)["status"] == "completed"
    with pytest.raises(Exception, match="lacks 'meta'"):
        engine.record(execution_id, "feedback.received", actor="x")
    assert len(engine.events(execution_id)) == len(events)
