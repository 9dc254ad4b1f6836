"""Suggestions for one playbook, from its statistics and its structure.

Each ``Suggestion`` names a step, says what to change (``change``: YAML to write where
there is one), why (``evidence``: the figures it rests on) and how sure it is
(``confidence`` in 0..1, from the sample size: ``n / (n + 10)``, so 10 samples give 0.5
and 90 give 0.9). Kinds:

- ``retry``: a retry policy for a step that fails (per error class: what history says);
- ``timeout``: a timeout from the step's duration quantiles;
- ``flaky``: a step that sometimes fails and sometimes passes;
- ``slow``: a step that takes most of the run, or has a long tail (p99 > 10 x p50);
- ``parallel``: a step that runs after another whose result it never reads (no template
  of the step names it), so the two could run side by side;
- ``auto_approve``: a decision step whose requests were always approved, with the
  ``when:`` rule that would have matched every one of them (from the step's context at
  decision time);
- ``always_overridden``: a decision step whose answer is almost always an override.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from playloop.dsl.flow import AutoTimeout, Flow, FlowStep
from playloop.dsl.normalize import template_names
from playloop.dsl.render import TemplateError, is_template
from playloop.engine.decisions import DECISION_KINDS
from playloop.engine.state import fold
from playloop.learn.errors import is_permanent
from playloop.learn.queries import _sql
from playloop.learn.snapshot import MIN_EVIDENCE, Snapshot, StepStats
from playloop.learn.timeouts import MIN_SAMPLES, choose_timeout
from playloop.store.base import EventStore
from playloop.store.generic import fetch

__all__ = ["Suggestion", "confidence", "suggest"]

#: decisions of a step read to find the rule that would have matched them
DECISIONS_READ = 50
#: decisions before an approval pattern is suggested
MIN_DECISIONS = 5


@dataclass(frozen=True, slots=True)
class Suggestion:
    kind: str
    step: str | None
    message: str
    confidence: float
    evidence: Mapping[str, Any] = field(default_factory=dict)
    change: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["evidence"] = dict(self.evidence)
        return data


def confidence(samples: int) -> float:
    return round(min(0.99, samples / (samples + 10)), 2) if samples > 0 else 0.0


def suggest(store: EventStore, flow: Flow, snapshot: Snapshot) -> list[Suggestion]:
    """Every suggestion for ``flow``'s playbook, most confident first."""
    found: list[Suggestion] = []
    for step in flow.steps.values():
        stats = snapshot.step(flow.path, step.name)
        if stats is not None:
            found.extend(_retry(step, stats))
            found.extend(_timeout(flow, step, stats, snapshot))
            found.extend(_flaky(stats))
            found.extend(_slow(flow, stats, snapshot))
            if step.tool.kind in DECISION_KINDS:
                found.extend(_approvals(store, flow, step, stats))
    found.extend(_parallel(flow))
    return sorted(found, key=lambda s: (-s.confidence, s.step or "", s.kind))


def _retry(step: FlowStep, stats: StepStats) -> Iterator[Suggestion]:
    if not stats.failed_attempts:
        return
    helped: dict[str, int] = {}
    useless: list[str] = []
    permanent: list[str] = []
    for name, c in stats.classes.items():
        if is_permanent(name):
            permanent.append(name)
        elif c.retry_successes:
            helped[name] = max(k for k, (_, s) in c.by_attempt.items() if s)
        elif c.retried >= MIN_EVIDENCE:
            useless.append(name)
    evidence = {
        name: {"failures": c.failures, "retried": c.retried, "successes": c.retry_successes}
        for name, c in stats.classes.items()
    }
    samples = sum(c.retried for c in stats.classes.values()) or stats.failed_attempts
    if helped:
        attempts = max(helped.values())
        auto = step.retry is not None and step.retry.auto
        if not auto:
            yield Suggestion(
                "retry",
                step.name,
                f"retries pass for {', '.join(sorted(helped))} (at attempt {attempts} at most)"
                + (
                    f"; never for {', '.join(sorted(useless + permanent))}"
                    if useless or permanent
                    else ""
                )
                + ": let history choose per class",
                confidence(samples),
                evidence,
                f"retry: {{auto: true, max_attempts: {attempts}}}",
            )
    elif (useless or permanent) and step.retry is not None and not step.retry.auto:
        yield Suggestion(
            "retry",
            step.name,
            f"retrying never helped ({', '.join(sorted(useless + permanent))}): "
            "drop the retry or use retry: auto",
            confidence(samples),
            evidence,
            "retry: auto",
        )


def _timeout(flow: Flow, step: FlowStep, stats: StepStats, snap: Snapshot) -> Iterator[Suggestion]:
    d = stats.durations
    if d is None or d.count < MIN_SAMPLES or step.timeout_auto is not None:
        return
    seconds, evidence = choose_timeout(
        snap, playbook=flow.path, step=step.name, bounds=AutoTimeout(min=1.0, max=3600.0)
    )
    if step.timeout is not None and seconds / 2 <= step.timeout <= seconds * 5:
        return
    now = "no timeout" if step.timeout is None else f"timeout {step.timeout:g}s"
    yield Suggestion(
        "timeout",
        step.name,
        f"{now}; p50 {d.p50:g} ms, p99 {d.p99:g} ms over {d.count} runs suggest {seconds:g}s",
        confidence(d.count),
        evidence,
        f"timeout: {seconds:g}s  # or timeout: auto",
    )


def _flaky(stats: StepStats) -> Iterator[Suggestion]:
    rate = stats.attempt_failure_rate
    if rate is None or stats.completed == 0 or stats.attempts < MIN_EVIDENCE:
        return
    if 0.05 <= rate < 0.95:
        yield Suggestion(
            "flaky",
            stats.step,
            f"{rate:.0%} of {stats.attempts} attempts failed, yet {stats.completed} runs passed",
            confidence(stats.attempts),
            {
                "attempts": stats.attempts,
                "failed_attempts": stats.failed_attempts,
                "runs": stats.runs,
                "completed": stats.completed,
                "classes": sorted(stats.classes),
            },
        )


def _slow(flow: Flow, stats: StepStats, snap: Snapshot) -> Iterator[Suggestion]:
    d = stats.durations
    if d is None or d.count < MIN_EVIDENCE:
        return
    run = snap.playbooks.get(flow.path)
    total = run.durations.p50 if run is not None and run.durations is not None else None
    if total and d.p50 >= 0.5 * total and len(flow.steps) > 1 and d.p50 >= 100:
        yield Suggestion(
            "slow",
            stats.step,
            f"takes {d.p50 / total:.0%} of a run (p50 {d.p50:g} ms of {total:g} ms)",
            confidence(d.count),
            {"p50_ms": d.p50, "run_p50_ms": total, "samples": d.count},
        )
    elif d.count >= MIN_SAMPLES and d.p50 > 0 and d.p99 > 10 * d.p50:
        yield Suggestion(
            "slow",
            stats.step,
            f"long tail: p99 {d.p99:g} ms is {d.p99 / d.p50:.0f} x p50 {d.p50:g} ms",
            confidence(d.count),
            {"p50_ms": d.p50, "p99_ms": d.p99, "samples": d.count},
        )


def _names(value: Any) -> set[str]:
    """Top-level names the templates in ``value`` read."""
    out: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if is_template(item):
                with contextlib.suppress(TemplateError):  # validated at load: never here
                    out |= template_names(item)
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return out


def _step_names(step: FlowStep) -> set[str]:
    """Names read by the step's own templates: tool config and input, args, loop items."""
    return _names([dict(step.tool.config), dict(step.tool.input), dict(step.args)]) | (
        _names(step.loop.items) if step.loop else set()
    )


def _parallel(flow: Flow) -> Iterator[Suggestion]:
    for name, step in flow.steps.items():
        preds = flow.predecessors.get(name, ())
        if len(preds) != 1:
            continue
        prev = flow.steps[preds[0]]
        if prev.tool.kind in DECISION_KINDS or prev.next.mode == "inclusive":
            continue
        arcs = [a for a in prev.next.arcs if a.step == name]
        if len(prev.next.arcs) != 1 or any(a.when or a.args or a.set or a.is_else for a in arcs):
            continue  # a conditional arc, or one that hands data over
        reads = _step_names(step)
        if prev.name in reads or "vars" in reads:
            continue
        yield Suggestion(
            "parallel",
            name,
            f"runs after '{prev.name}' but no template of '{name}' reads its result: "
            "the two could run side by side (check side effects first)",
            0.5,
            {"after": prev.name, "reads": sorted(reads)},
            f"fan out from the step before '{prev.name}' "
            "(next: {spec: {mode: inclusive}, arcs: [...]}) and join after",
        )


def _approvals(
    store: EventStore, flow: Flow, step: FlowStep, stats: StepStats
) -> Iterator[Suggestion]:
    total = sum(stats.decisions.values())
    if total < MIN_DECISIONS:
        return
    approve = stats.rate("approve") or 0.0
    override = stats.rate("override") or 0.0
    evidence: dict[str, Any] = {"decisions": dict(stats.decisions)}
    if approve == 1.0:
        rule, ranges = _approval_rule(store, flow, step)
        evidence["context"] = ranges
        yield Suggestion(
            "auto_approve",
            step.name,
            f"all {total} requests were approved"
            + (f"; this rule matches every one: {rule}" if rule else ""),
            confidence(total),
            evidence,
            f'when: "{rule}"  # on the arc that skips the approval' if rule else None,
        )
    elif override >= 0.8:
        yield Suggestion(
            "always_overridden",
            step.name,
            f"{override:.0%} of {total} decisions were overrides: the default is wrong",
            confidence(total),
            evidence,
        )


def _approval_rule(
    store: EventStore, flow: Flow, step: FlowStep
) -> tuple[str | None, dict[str, list[float]]]:
    """A ``when:`` rule true for the context of every approved request: each number the
    step's templates read (a step result's field, a workload value) within its seen range."""
    sql = _sql(store)
    rows = fetch(
        sql,
        "learn_step_decisions",
        {"playbook": flow.path, "step": step.name, "limit": DECISIONS_READ},
    )
    reads = _step_names(step) - {"args", "decision", "execution_id", "playbook"}
    seen: dict[str, list[float]] = {}
    for row in rows:
        decision = sql.event_from_row(row)
        events = [e for e in store.read_events(decision.execution_id) if e.seq < decision.seq]
        if not events:
            continue
        state = fold(events)
        context: dict[str, Any] = {**state.results, "workload": state.workload}
        for name in reads:
            for path, value in _numbers(name, context.get(name)):
                seen.setdefault(path, []).append(value)
    ranges = {p: [min(v), max(v)] for p, v in seen.items() if len(v) == len(rows)}
    if not ranges:
        return None, {}
    parts = [
        f"{p} == {lo:g}" if lo == hi else f"{lo:g} <= {p} <= {hi:g}"
        for p, (lo, hi) in sorted(ranges.items())
    ]
    return "{{ " + " and ".join(parts) + " }}", ranges


def _numbers(path: str, value: Any, depth: int = 0) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool) or depth > 2:
        return
    if isinstance(value, int | float):
        yield path, float(value)
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            if isinstance(key, str) and key.isidentifier():
                yield from _numbers(f"{path}.{key}", inner, depth + 1)
