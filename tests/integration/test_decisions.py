"""Human decision points: pause, decide, refuse, deadlines, reminders, escalation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from playloop.engine.decisions import DecisionRefused
from playloop.runtime import Engine

GATE = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {{name: gate, path: tests/gate}}
workload: {{score: 0.85}}
workflow:
  - step: validate
    tool: {{kind: python, input: {{s: "{{{{ workload.score }}}}"}}, code: "result = {{'quality_score': s}}"}}
    next:
      - when: "{{{{ validate.quality_score < 0.9 }}}}"
        then: [{{step: review, args: {{issue: low score}}}}]
      - else: [{{step: load}}]
  - step: review
    tool:
      kind: approval
      prompt: "{{{{ args.issue }}}} ({{{{ validate.quality_score }}}})"
      options: [approve, reject, override]
      form: {{threshold: number}}
{extra}
    next:
      - when: "{{{{ decision.action == 'reject' }}}}"
        then: [{{step: rejected}}]
      - else: [{{step: load}}]
  - step: load
    tool: {{kind: noop, result: "loaded by {{{{ current_user }}}} ({{{{ vars.approval_action | default('auto') }}}})"}}
  - step: rejected
    tool: {{kind: noop, result: "rejected: {{{{ decision.comment }}}}"}}
"""


def gate(extra: str = "") -> str:
    lines = "".join(f"      {line}\n" for line in extra.splitlines())
    return GATE.format(extra=lines.rstrip("\n"))


@pytest.fixture
def decider(tmp_path: Path, db_url: str) -> Iterator[Engine]:
    """A second engine (another terminal, or the server): runs no steps, only decides."""
    with Engine(tmp_path / "decider", db=db_url, concurrency=0) as eng:
        yield eng


def wait_paused(engine: Engine, execution_id: int, timeout: float = 20) -> dict[str, Any]:
    deadline = time.time() + timeout
    while True:
        row = engine.store.get_execution(execution_id)
        if row is not None and row.status == "paused":
            pending = engine.store.list_decisions(status="pending")
            return next(d for d in pending if d["execution_id"] == str(execution_id))
        assert time.time() < deadline, f"not paused: {row}"
        time.sleep(0.05)


def test_pause_then_approve_from_another_engine(
    engine: Engine, decider: Engine, write_playbook: Any
) -> None:
    execution_id = engine.start(write_playbook(gate()))
    request = wait_paused(engine, execution_id)
    assert request["prompt"] == "low score (0.85)" and request["options"] == [
        "approve",
        "reject",
        "override",
    ]
    made = decider.decide(request["decision_id"], "approve", actor="ada", comment="checked by hand")
    assert made.event_type == "decision.made" and made.actor == "ada"
    summary = engine.wait(execution_id, timeout=30)
    assert summary["status"] == "completed"
    assert summary["result"] == "loaded by ada (approve)"
    assert summary["steps"]["review"]["result"]["comment"] == "checked by hand"
    types = [e.event_type for e in engine.events(execution_id)]
    assert (
        types.index("decision.requested")
        < types.index("execution.paused")
        < types.index("execution.resumed")
    )
    assert types.index("execution.resumed") < types.index("decision.made")
    row = decider.store.get_decision(request["decision_id"])
    assert row is not None and row["status"] == "decided" and row["decided_by"] == "ada"


def test_bad_decisions_are_refused_and_leave_no_event(
    engine: Engine, decider: Engine, write_playbook: Any
) -> None:
    execution_id = engine.start(write_playbook(gate("approvers: [ada, bob]\nself_approval: false")))
    request = wait_paused(engine, execution_id)
    before = len(engine.events(execution_id))
    cases = [
        ("999-1", "approve", "ada", {}, 404),
        (f"{execution_id}-999", "approve", "ada", {}, 404),
        (request["decision_id"], "ship it", "ada", {}, 422),
        (request["decision_id"], "approve", "mallory", {}, 403),
        (request["decision_id"], "override", "ada", {"threshold": "high"}, 422),
        (request["decision_id"], "override", "ada", {"colour": 1}, 422),
    ]
    for decision_id, action, actor, values, status in cases:
        with pytest.raises(DecisionRefused) as refused:
            decider.decide(decision_id, action, actor=actor, values=values)
        assert refused.value.status == status, (decision_id, action, actor, refused.value.message)
    assert len(engine.events(execution_id)) == before
    decider.decide(request["decision_id"], "override", actor="bob", values={"threshold": 0.8})
    with pytest.raises(DecisionRefused) as again:
        decider.decide(request["decision_id"], "approve", actor="ada")
    assert again.value.status == 409
    assert engine.wait(execution_id, timeout=30)["result"] == "loaded by bob (override)"


def test_self_approval_refused(tmp_path: Path, db_url: str, write_playbook: Any) -> None:
    path = write_playbook(gate("self_approval: false"))
    with Engine(tmp_path / "runner", db=db_url) as runner:
        execution_id = runner.start(path, actor="ada")
        request = wait_paused(runner, execution_id)
        with pytest.raises(DecisionRefused) as refused:
            runner.decide(request["decision_id"], "approve", actor="ada")
        assert refused.value.status == 403 and "started this execution" in refused.value.message
        runner.decide(request["decision_id"], "reject", actor="bob", comment="no")
        assert runner.wait(execution_id, timeout=30)["result"] == "rejected: no"


def test_deadline_rejects_and_reminders_and_escalation_are_events(
    engine: Engine, write_playbook: Any
) -> None:
    extra = "approvers: [ada]\ntimeout: 1.2s\non_timeout: reject\nremind_every: 0.3s\nescalate_to: [boss]\nescalate_after: 0.5s"
    started = time.perf_counter()
    summary = engine.run(write_playbook(gate(extra)), timeout=30)
    elapsed = time.perf_counter() - started
    assert summary["result"] == "rejected: the deadline passed"
    assert 1.1 < elapsed < 5
    events = engine.events(int(summary["execution_id"]))
    types = [e.event_type for e in events]
    assert types.count("decision.reminded") >= 2
    escalated = [e for e in events if e.event_type == "decision.escalated"]
    assert (
        len(escalated) == 1
        and escalated[0].meta is not None
        and escalated[0].meta["approvers"] == ["ada", "boss"]
    )
    made = next(e for e in events if e.event_type == "decision.made")
    assert (
        made.actor == "system:deadline"
        and made.meta is not None
        and made.meta["action"] == "reject"
    )
    assert types.index("decision.expired") < types.index("decision.made")


def test_deadline_fail_fails_the_execution(engine: Engine, write_playbook: Any) -> None:
    summary = engine.run(write_playbook(gate("timeout: 0.5s\non_timeout: fail")), timeout=30)
    assert summary["status"] == "failed"
    assert summary["error"]["type"] == "DecisionExpired"


def test_high_score_skips_the_decision(engine: Engine, write_playbook: Any) -> None:
    summary = engine.run(write_playbook(gate()), {"score": 0.95}, timeout=30)
    assert summary["status"] == "completed" and "review" not in summary["steps"]


def test_a_deadline_that_passes_while_nothing_runs_fires_on_restart(
    tmp_path: Path, db_url: str, write_playbook: Any
) -> None:
    path = write_playbook(gate("timeout: 1s\non_timeout: reject"))
    with Engine(tmp_path / "first", db=db_url) as first:
        execution_id = first.start(path)
        wait_paused(first, execution_id)
    # every process is gone while the deadline passes
    time.sleep(1.5)
    with Engine(tmp_path / "second", db=db_url) as second:
        summary = second.resume(execution_id, timeout=30)
    assert summary["status"] == "completed"
    assert summary["result"] == "rejected: the deadline passed"


def test_decision_stats(engine: Engine, decider: Engine, write_playbook: Any) -> None:
    from playloop.cli_decisions import decision_stats

    path = write_playbook(gate())
    actions = ["approve", "approve", "reject", "override"]
    ids = [engine.start(path) for _ in actions]
    for execution_id, action in zip(ids, actions, strict=True):
        request = wait_paused(engine, execution_id)
        values = {"threshold": 0.5} if action == "override" else {}
        decider.decide(request["decision_id"], action, actor="ada", values=values)
        engine.wait(execution_id, timeout=30)
    (stats,) = decision_stats(engine.store.list_decisions(limit=100))
    assert stats["step"] == "review" and stats["count"] == 4 and stats["decided"] == 4
    assert (stats["approve_rate"], stats["reject_rate"], stats["override_rate"]) == (
        0.5,
        0.25,
        0.25,
    )
    assert (
        stats["time_to_decide_p50_ms"] is not None
        and stats["time_to_decide_p95_ms"] >= stats["time_to_decide_p50_ms"]
    )


def test_a_deadline_that_passes_while_the_server_and_workers_are_down_fires_on_restart(
    tmp_path: Path, db_url: str, write_playbook: Any
) -> None:
    """Distributed: the server pauses the run; nothing runs while the deadline passes; a
    worker started later fires it (no `--resume`: a timer is a command in the database)."""
    path = write_playbook(gate("timeout: 1s\non_timeout: reject"))
    with (
        Engine(tmp_path / "server", db=db_url, concurrency=0) as server,
        Engine(tmp_path / "worker", db=db_url, claim_any=True) as worker,
    ):
        worker.serve()
        execution_id = server.start(path)
        wait_paused(server, execution_id)
    time.sleep(1.5)  # the server and the worker are gone while the deadline passes
    with (
        Engine(tmp_path / "server2", db=db_url, concurrency=0) as server,
        Engine(tmp_path / "worker2", db=db_url, claim_any=True) as worker,
    ):
        worker.serve()
        summary = server.wait(execution_id, timeout=30)
    assert summary["result"] == "rejected: the deadline passed"


ASK_AGAIN = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: ask_again, path: tests/ask_again}
workflow:
  - step: review
    tool:
      kind: approval
      prompt: "ship it?"
      options: [approve, reject]
      timeout: 1h
      on_timeout: reject
      remind_every: 30m
      notify: {url: "http://127.0.0.1:9/unreachable", attempts: 5}
    next:
      - when: "{{ decision.action == 'reject' }}"
        then: [{step: review}]
      - else: [{step: done}]
  - step: done
    tool: {kind: noop, result: shipped}
"""


def test_a_decision_step_asked_again_leaves_no_stale_timers_behind(
    engine: Engine, decider: Engine, write_playbook: Any
) -> None:
    """Rejected, the step asks again: the first request's deadline, reminder and notify
    retries are gone with it, so the second request's own commands have room."""
    execution_id = engine.start(write_playbook(ASK_AGAIN))
    first = wait_paused(engine, execution_id)
    decider.decide(first["decision_id"], "reject", actor="ada")
    deadline = time.time() + 20
    while True:
        pending = [
            d
            for d in engine.store.list_decisions(status="pending")
            if d["execution_id"] == str(execution_id)
        ]
        if pending and pending[0]["decision_id"] != first["decision_id"]:
            break
        assert time.time() < deadline, "not asked again"
        time.sleep(0.05)
    decider.decide(pending[0]["decision_id"], "approve", actor="bob")
    summary = engine.wait(execution_id, timeout=30)
    assert summary["status"] == "completed" and summary["result"] == "shipped"
    assert engine.store.commands_of(execution_id) == []
    requested = [e for e in engine.events(execution_id) if e.event_type == "decision.requested"]
    assert len(requested) == 2
