"""Golden histories: record scenarios through the pure core, and replay them as tests.

    python -m tests.golden.replay --record     # rewrite tests/golden/*.json (review the diff!)

A golden file holds a playbook, an event history, one signal and the events and commands
``decide`` must produce for it (or the error folding the history must raise).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from playloop.dsl.load import load_text
from playloop.engine.commands import Command
from playloop.engine.decide import Decision, decide
from playloop.engine.events import Event
from playloop.engine.signals import Cancel, Outcome, Signal, Start, TimerFired
from playloop.engine.state import ExecutionState, fold

GOLDEN = Path(__file__).resolve().parent
EXECUTION_ID = 1001
T0 = 1_800_000_000.0
HEADER = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: golden, path: golden/%s}\n"


def signal_to_json(signal: Signal) -> dict[str, Any]:
    if isinstance(signal, Start):
        return {"type": "start", "workload": dict(signal.workload)}
    if isinstance(signal, Cancel):
        return {"type": "cancel", "actor": signal.actor, "reason": signal.reason}
    if isinstance(signal, TimerFired):
        return {"type": "timer", "command": asdict(signal.command)}
    data = asdict(signal)
    data["type"] = "outcome"
    data["meta"] = dict(signal.meta)
    return data


def signal_from_json(data: dict[str, Any]) -> Signal:
    kind = data["type"]
    if kind == "start":
        return Start(workload=data["workload"])
    if kind == "cancel":
        return Cancel(actor=data["actor"], reason=data["reason"])
    if kind == "timer":
        return TimerFired(Command(**data["command"]))
    fields = {k: v for k, v in data.items() if k != "type"}
    fields["command"] = Command(**fields["command"])
    return Outcome(**fields)


def decision_to_json(d: Decision) -> dict[str, Any]:
    return {
        "events": [e.to_dict() for e in d.events],
        "commands": [asdict(c) for c in d.commands],
        "drop_commands": d.drop_commands,
    }


class Script:
    """Drive one execution through decide, signal by signal, keeping the history."""

    def __init__(self, name: str, body: str) -> None:
        self.name = name
        self.text = HEADER % name + body
        self.flow = load_text(self.text, f"<golden {name}>")
        self.state = ExecutionState(execution_id=EXECUTION_ID)
        self.history: list[Event] = []
        self.commands: list[Command] = []
        self.now = T0

    def send(self, signal: Signal) -> Decision:
        self.now += 1.0
        decision = decide(self.flow, self.state, signal, self.now)
        self.history.extend(decision.events)
        self.commands.extend(decision.commands)
        return decision

    def command(self, step: str, iteration: int | None = None, kind: str = "run") -> Command:
        for cmd in reversed(self.commands):
            if cmd.step == step and cmd.iteration == iteration and cmd.kind == kind:
                return cmd
        raise KeyError(step)

    def ok(self, step: str, result: Any, iteration: int | None = None) -> Outcome:
        return Outcome(command=self.command(step, iteration), ok=True, result=result, duration_ms=5)

    def fail(self, step: str, error_type: str, message: str, timed_out: bool = False) -> Outcome:
        return Outcome(
            command=self.command(step),
            ok=False,
            error_type=error_type,
            error_message=message,
            timed_out=timed_out,
            duration_ms=7,
        )

    def golden(self, description: str, last: Signal) -> dict[str, Any]:
        history = [e.to_dict() for e in self.history]
        now = self.now + 1.0
        decision = self.send(last)
        return {
            "description": description,
            "playbook": self.text,
            "history": history,
            "signal": signal_to_json(last),
            "now": now,
            "expect": decision_to_json(decision),
        }


SEED = """workload: {threshold: 0.9}
workflow:
  - step: validate_data_quality
    tool: {kind: python, code: "result = {'quality_score': 0.85}"}
    next:
      - when: "{{ validate_data_quality.quality_score < workload.threshold }}"
        then:
          - step: await_human_approval
            args: {issue: Data quality below threshold}
      - else:
          - step: load
  - step: await_human_approval
    tool: {kind: noop, result: "{{ args.issue }}"}
  - step: load
    tool: {kind: noop}
"""


def seed_low_score() -> dict[str, Any]:
    s = Script("seed_low", SEED)
    s.send(Start())
    return s.golden(
        "a score under the threshold routes to the approval step with the arc's args",
        s.ok("validate_data_quality", {"quality_score": 0.85, "anomalies": 12}),
    )


def seed_high_score() -> dict[str, Any]:
    s = Script("seed_high", SEED)
    s.send(Start())
    return s.golden(
        "a score at or over the threshold takes the else branch",
        s.ok("validate_data_quality", {"quality_score": 0.95}),
    )


def retry_backoff() -> dict[str, Any]:
    s = Script(
        "retry",
        """workflow:
  - step: flaky
    retry: {attempts: 3, delay: 1, backoff: exponential, on: [ConnectionError]}
    tool: {kind: python, code: "result = 1"}
""",
    )
    s.send(Start())
    s.send(s.fail("flaky", "ConnectionError", "refused"))
    s.send(TimerFired(s.command("flaky", kind="timer")))
    return s.golden(
        "the second failure waits 2 s (exponential) on a timer for attempt 3",
        s.fail("flaky", "ConnectionError", "refused again"),
    )


def retry_exhausted() -> dict[str, Any]:
    s = Script(
        "exhausted",
        """workflow:
  - step: flaky
    retry: {attempts: 2, delay: 0}
    tool: {kind: python, code: "result = 1"}
""",
    )
    s.send(Start())
    s.send(s.fail("flaky", "ConnectionError", "refused"))
    return s.golden(
        "the last attempt fails: no route, so the execution fails",
        s.fail("flaky", "ConnectionError", "still refused"),
    )


FAN = """workflow:
  - step: start
    tool: {kind: noop}
    next: {spec: {mode: inclusive}, arcs: [{step: a}, {step: b}]}
  - step: a
    tool: {kind: noop}
    next: {arcs: [{step: join}]}
  - step: b
    tool: {kind: noop}
    next: {arcs: [{step: join}]}
  - step: join
    tool: {kind: noop}
"""


def join_waits() -> dict[str, Any]:
    s = Script("join_waits", FAN)
    s.send(Start())
    s.send(s.ok("start", None))
    return s.golden("the first branch arrives at the join: the join waits", s.ok("a", "A"))


def join_starts() -> dict[str, Any]:
    s = Script("join_starts", FAN)
    s.send(Start())
    s.send(s.ok("start", None))
    s.send(s.ok("a", "A"))
    return s.golden("the last live branch arrives: the join starts", s.ok("b", "B"))


def timeout_fails() -> dict[str, Any]:
    s = Script(
        "timeout",
        """workflow:
  - step: spin
    timeout: 2s
    tool: {kind: python, code: "while True: pass"}
""",
    )
    s.send(Start())
    return s.golden(
        "a timed-out step with no retry fails the execution",
        s.fail("spin", "TimeoutError", "timed out after 2s", timed_out=True),
    )


def loop_parallel() -> dict[str, Any]:
    s = Script(
        "loop",
        """workflow:
  - step: work
    loop: {in: "{{ [10, 20, 30] }}", iterator: x, spec: {mode: parallel, max_in_flight: 2}}
    tool: {kind: python, input: {x: "{{ x }}"}, code: "result = x"}
""",
    )
    s.send(Start())
    return s.golden(
        "an iteration completes: the third item is dispatched (max_in_flight 2)",
        s.ok("work", 10, iteration=0),
    )


def cancel_running() -> dict[str, Any]:
    s = Script(
        "cancel",
        """workflow:
  - step: long
    tool: {kind: shell, cmds: "sleep 100"}
""",
    )
    s.send(Start())
    return s.golden(
        "cancel drops the queued commands and ends the execution",
        Cancel(actor="ops", reason="wrong input"),
    )


def stale_outcome() -> dict[str, Any]:
    s = Script(
        "stale",
        """workflow:
  - step: flaky
    retry: {attempts: 3, delay: 0}
    tool: {kind: python, code: "result = 1"}
""",
    )
    s.send(Start())
    first = s.command("flaky")
    s.send(s.fail("flaky", "ConnectionError", "refused"))
    late = Outcome(command=first, ok=True, result="late", duration_ms=1)
    return s.golden("a late report for an attempt that is over changes nothing", late)


def unknown_event_in_history() -> dict[str, Any]:
    s = Script("unknown", "workflow:\n  - step: a\n    tool: {kind: noop}\n")
    s.send(Start())
    bad = s.history[-1].to_dict()
    bad.update(seq=len(s.history) + 1, event_type="step.exploded")
    return {
        "description": "a history with an unknown event type is rejected by fold",
        "playbook": s.text,
        "history": [e.to_dict() for e in s.history] + [bad],
        "signal": signal_to_json(s.ok("a", 1)),
        "now": s.now + 1,
        "expect_error": "UnknownEventType",
    }


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "seed_low_score": seed_low_score,
    "seed_high_score": seed_high_score,
    "retry_backoff": retry_backoff,
    "retry_exhausted": retry_exhausted,
    "join_waits": join_waits,
    "join_starts": join_starts,
    "timeout_fails": timeout_fails,
    "loop_parallel": loop_parallel,
    "cancel_running": cancel_running,
    "stale_outcome": stale_outcome,
    "unknown_event_in_history": unknown_event_in_history,
}


def replay(golden: dict[str, Any]) -> dict[str, Any]:
    """Fold the history, decide on the signal, and return what decide produced."""
    flow = load_text(golden["playbook"], "<golden>")
    history = [Event.from_dict(e) for e in golden["history"]]
    state = fold(history)
    decision = decide(flow, state, signal_from_json(golden["signal"]), golden["now"])
    assert fold(history + decision.events) == state, "decide's state differs from fold(events)"
    return json.loads(json.dumps(decision_to_json(decision)))


def record() -> None:
    for name, scenario in SCENARIOS.items():
        path = GOLDEN / f"{name}.json"
        path.write_text(json.dumps(scenario(), indent=2, sort_keys=True) + "\n")
        print("wrote", path)


if __name__ == "__main__":
    if "--record" in sys.argv:
        record()
