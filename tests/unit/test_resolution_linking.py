"""The pure core of resolutions: which event resolved a failure, from event lists alone."""

from __future__ import annotations

from typing import Any

from playloop.engine.events import Event
from playloop.learn.linking import (
    Resolution,
    in_execution,
    is_failure,
    later_run,
    link,
    pending,
    workload_diff,
)

T0 = "2025-01-01T00:00:{:02d}.000000+00:00"


class History:
    """Events of one execution, numbered as they are added."""

    def __init__(self, execution_id: int, second: int = 0, **start: Any) -> None:
        self.execution_id = execution_id
        self.events: list[Event] = []
        self.second = second
        self.add("execution.started", status="running", **start)

    def add(self, event_type: str, **fields: Any) -> Event:
        fields.setdefault("playbook_path", "p")
        fields.setdefault("playbook_version", "1")
        event = Event(
            execution_id=self.execution_id,
            seq=len(self.events) + 1,
            event_type=event_type,
            event_id=self.execution_id * 1000 + len(self.events) + 1,
            created_at=T0.format(self.second + len(self.events)),
            **fields,
        )
        self.events.append(event)
        return event


def test_failures_are_failed_steps_items_and_executions() -> None:
    h = History(1)
    kinds = [
        h.add("step.failed", step_name="a", status="failed", error_type="E"),
        h.add("step.timed_out", step_name="a", status="timed_out", error_type="E"),
        h.add("loop.item", step_name="a", status="failed", iteration=0),
        h.add("loop.item", step_name="a", status="timed_out", iteration=1),
        h.add("execution.failed", status="failed", error_message="x"),
    ]
    assert all(is_failure(e) for e in kinds)
    assert not is_failure(h.add("loop.item", step_name="a", status="completed", iteration=0))
    assert not is_failure(h.events[0])


def test_a_decision_before_the_retry_succeeds_counts_and_one_after_does_not() -> None:
    h = History(1)
    f1 = h.add("step.failed", step_name="a", status="failed", attempt=1, error_type="E")
    decision = h.add("decision.made", step_name="gate", actor="ann", meta={"action": "approve"})
    ok = h.add("step.finished", step_name="a", status="completed", attempt=2)
    f2 = h.add("step.failed", step_name="b", status="failed", attempt=1, error_type="E")
    h.add("step.finished", step_name="b", status="completed", attempt=2)
    h.add("decision.made", step_name="gate", actor="ann", meta={"action": "approve"})
    found = [(r.failure.event_id, r.kind, r.by) for r in in_execution(h.events)]
    assert found == [
        (f1.event_id, "decision", decision),
        (f1.event_id, "retry", ok),
        (f2.event_id, "retry", h.events[5]),
    ]


def test_a_retry_must_be_a_later_attempt_of_the_same_step_and_item() -> None:
    h = History(1)
    h.add("loop.item", step_name="l", status="failed", attempt=1, iteration=3)
    h.add("loop.item", step_name="l", status="completed", attempt=2, iteration=4)
    h.add("loop.item", step_name="other", status="completed", attempt=2, iteration=3)
    assert in_execution(h.events) == []
    done = h.add("loop.item", step_name="l", status="completed", attempt=2, iteration=3)
    (r,) = in_execution(h.events)
    assert (r.kind, r.by, r.note) == ("retry", done, "attempt 2 of step 'l' item 3 succeeded")


def test_later_run_needs_a_later_start_the_same_playbook_and_the_step() -> None:
    failed = History(1, second=10, context={"workload": {"n": 1, "deep": {"k": "a"}}})
    failure = failed.add("step.failed", step_name="s", status="failed", attempt=1, error_type="E")
    failed.add("execution.failed", step_name="s", status="failed", error_message="E")
    earlier = History(2, second=0, context={"workload": {}})
    earlier.add("step.finished", step_name="s", status="completed", attempt=1)
    assert later_run(failed.events, earlier.events) == []
    other = History(3, second=40, playbook_path="q", context={"workload": {}})
    other.add("step.finished", step_name="s", status="completed", attempt=1)
    assert later_run(failed.events, other.events) == []
    later = History(
        4, second=40, playbook_version="2", context={"workload": {"n": 2, "deep": {"k": "b"}}}
    )
    later.add("step.finished", step_name="s", status="completed", attempt=1, meta={"via": "jump"})
    assert later_run(failed.events, later.events) == []
    ok = later.add("step.finished", step_name="s", status="completed", attempt=1)
    found = later_run(failed.events, later.events)
    assert [(r.failure.event_type, r.by) for r in found] == [
        ("step.failed", ok),
        ("execution.failed", ok),
    ]
    assert found[0].failure is failure
    assert found[0].changed == {
        "workload": {"deep.k": {"before": "a", "after": "b"}, "n": {"before": 1, "after": 2}},
        "playbook_version": {"before": "1", "after": "2"},
    }


def test_workload_diff_names_added_removed_and_changed_keys() -> None:
    assert workload_diff(
        {"a": 1, "b": {"c": [1]}, "gone": 0}, {"a": 1.0, "b": {"c": [2]}, "new": 1}
    ) == {
        "a": {"before": 1, "after": 1.0},
        "b.c": {"before": [1], "after": [2]},
        "gone": {"before": 0},
        "new": {"after": 1},
    }
    assert workload_diff({"x": {"y": 1}}, {"x": {"y": 1}}) == {}


def test_pending_and_link_count_an_automatic_kind_once() -> None:
    h = History(1)
    failure = h.add("step.failed", step_name="a", status="failed", attempt=1, error_type="E")
    r = Resolution(failure, "retry", "ok")
    twice = [
        h.add("resolution.recorded", meta=r.meta()),
        h.add("resolution.recorded", meta=r.meta()),
        h.add("resolution.recorded", meta=Resolution(failure, "manual", "n1").meta()),
        h.add("resolution.recorded", meta=Resolution(failure, "manual", "n2").meta()),
    ]
    assert pending([r, r], h.events[:2]) == [r]
    assert pending([r], h.events) == []
    (linked,) = link([(failure, e) for e in twice])
    assert [e.seq for e in linked.resolutions] == [3, 5, 6]
    assert linked.to_dict()["resolutions"][0]["kind"] == "retry"
    (alone,) = link([(failure, None)])
    assert not alone.resolved
