"""Random valid chains and fan-outs always finish, events in order, state == fold(events)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from playloop.dsl.flow import Arc, Flow, FlowStep, Routing, ToolCall, graph_index
from playloop.engine.orchestrator import Orchestrator, make_owner
from playloop.engine.state import fold
from playloop.store.sqlite import SqliteStore
from playloop.worker.execute import execute


@st.composite
def dags(draw: st.DrawFn) -> Flow:
    n = draw(st.integers(min_value=1, max_value=12))
    steps: dict[str, FlowStep] = {}
    for i in range(n):
        later = list(range(i + 1, n))
        targets = draw(st.lists(st.sampled_from(later), unique=True, max_size=3)) if later else []
        if later and not targets and i == 0:
            targets = [later[0]]
        mode = draw(st.sampled_from(["exclusive", "inclusive"]))
        arcs = tuple(Arc(step=f"s{j}") for j in targets)
        steps[f"s{i}"] = FlowStep(
            name=f"s{i}",
            tool=ToolCall(kind="noop", config={"result": i}),
            next=Routing(mode=mode, arcs=arcs),  # type: ignore[arg-type]
        )
    preds, reaches = graph_index(steps)
    return Flow(
        name="random",
        path="tests/random",
        steps=steps,
        entry="s0",
        predecessors=preds,
        reaches=reaches,
    )


def _reachable(flow: Flow) -> set[str]:
    """Steps the engine must run: exclusive mode takes the first arc, inclusive all of them."""
    seen: set[str] = set()
    stack = [flow.entry]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        step = flow.steps[name]
        arcs = step.next.arcs if step.next.mode == "inclusive" else step.next.arcs[:1]
        stack.extend(a.step for a in arcs)
    return seen


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flow=dags(), capacity=st.integers(min_value=1, max_value=6))
def test_random_flows_finish_in_order_and_fold_matches(flow: Flow, capacity: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "p.db")
        orch = Orchestrator(store, lambda p, v: flow, lambda f, p: flow)
        owner = make_owner()
        execution_id, out = orch.start(flow, {}, owner=owner, capacity=capacity, lease_seconds=30)
        pending = list(out.leased)
        queued = sum(out.queued.values())
        rounds = 0
        while pending or queued:
            rounds += 1
            assert rounds < 500
            cmd = pending.pop(0)
            signal = execute(cmd, processes=None, home=Path(tmp), playbook_file=None)
            out = orch.advance(
                [(execution_id, signal)],
                owner=owner,
                capacity=capacity - len(pending),
                lease_seconds=30,
                claim_for=[execution_id],
            )
            pending.extend(out.leased)
            queued = len(store.commands_of(execution_id)) - len(pending)
        held = orch.states[execution_id]
        events = store.read_events(execution_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert fold(events) == held
        assert held.status == "completed"
        expected = _reachable(flow)
        assert set(held.steps) == expected
        for name in expected:
            kinds = [
                e.event_type
                for e in events
                if e.step_name == name and e.event_type.startswith("step.")
            ]
            assert kinds == ["step.started", "step.finished"], (name, kinds)
        assert store.commands_of(execution_id) == []
        store.close()
