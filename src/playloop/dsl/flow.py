"""The internal, normalised form of a playbook: what the engine executes.

Both DSL forms (the seed's ``next: [{when, then}, {else}]`` and NoETL's canonical
``next: {spec, arcs}``) load into these frozen dataclasses. The engine never sees YAML.
Templates stay as source strings here; they are rendered at run time by ``dsl.render``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

RoutingMode = Literal["exclusive", "inclusive"]
Backoff = Literal["none", "linear", "exponential"]
RuleAction = Literal["retry", "continue", "fail", "jump"]
LoopMode = Literal["sequential", "parallel"]
RetryMode = Literal["fixed", "learned"]
AnomalyKind = Literal["duration", "failure_rate", "result_drift"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = ("duration", "failure_rate", "result_drift")


@dataclass(frozen=True, slots=True)
class Arc:
    """One outgoing edge: go to ``step`` when ``when`` renders truthy.

    ``args`` become the target step's ``args`` (the seed form); ``set`` updates the
    execution's ``vars`` when the arc fires (NoETL's canonical form).
    """

    step: str
    when: str | None = None
    args: Mapping[str, Any] = field(default_factory=dict)
    set: Mapping[str, Any] = field(default_factory=dict)
    is_else: bool = False
    line: int = 0


@dataclass(frozen=True, slots=True)
class Routing:
    mode: RoutingMode = "exclusive"
    arcs: tuple[Arc, ...] = ()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` counts every attempt, the first included (Temporal's maximum_attempts).

    ``auto`` (``retry: auto``): whether to retry, how often and how long to wait are learned
    per error class from the statistics (``learn.retry``); ``attempts`` and ``max_delay``
    are then upper bounds and ``delay`` the first delay of the default backoff.
    """

    attempts: int = 1
    delay: float = 0.0
    backoff: Backoff = "none"
    max_delay: float | None = None
    jitter: float = 0.0
    on: tuple[str, ...] = ()
    auto: bool = False


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """A NoETL ``tool.spec.policy.rules`` entry: first matching rule decides the outcome."""

    do: RuleAction
    when: str | None = None
    attempts: int | None = None
    delay: float = 0.0
    backoff: Backoff = "none"
    max_delay: float | None = None
    jitter: float = 0.0
    to: str | None = None
    line: int = 0
    #: ``learned``: a ``retry`` rule decides per error class from the statistics, within
    #: its ``attempts`` and ``max_delay``
    mode: RetryMode = "fixed"


@dataclass(frozen=True, slots=True)
class AutoTimeout:
    """``timeout: auto``: learned from the step's duration quantiles, clamped to [min, max]."""

    min: float = 1.0
    max: float = 600.0


@dataclass(frozen=True, slots=True)
class LoopSpec:
    items: Any
    iterator: str = "item"
    mode: LoopMode = "sequential"
    max_in_flight: int | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The tool to run: its kind, its raw (still templated) config and ``input`` bindings."""

    kind: str
    config: Mapping[str, Any] = field(default_factory=dict)
    input: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AnomalySpec:
    """A step's anomaly detection: on by default; ``None`` thresholds take the detector's.

    ``threshold`` is the robust z-score beyond which a duration or a result field is an
    anomaly; ``min_samples`` the history a baseline needs before it judges; ``fields`` the
    result fields watched for drift (None: every numeric top-level field).
    """

    enabled: bool = True
    threshold: float | None = None
    min_samples: int | None = None
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class AnomalyRoute:
    """``on_anomaly``: go to ``step`` instead of ``next`` when the step had an anomaly of
    one of ``kinds`` (every kind when empty)."""

    step: str
    kinds: tuple[AnomalyKind, ...] = ()
    line: int = 0


@dataclass(frozen=True, slots=True)
class FlowStep:
    name: str
    tool: ToolCall
    #: default ``args``; the args of the arcs that led to the step are merged over them
    args: Mapping[str, Any] = field(default_factory=dict)
    next: Routing = field(default_factory=Routing)
    loop: LoopSpec | None = None
    retry: RetryPolicy | None = None
    rules: tuple[PolicyRule, ...] = ()
    timeout: float | None = None
    description: str = ""
    pool: str | None = None
    line: int = 0
    anomaly: AnomalySpec = field(default_factory=AnomalySpec)
    on_anomaly: AnomalyRoute | None = None
    #: ``timeout: auto``: the timeout is decided at dispatch (``timeout`` is then None)
    timeout_auto: AutoTimeout | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """A validated, normalised playbook.

    ``reaches[s]`` is every step reachable from ``s`` through one or more arcs; the engine
    uses it to decide when a join step has no more live branches to wait for.
    """

    name: str
    path: str
    steps: Mapping[str, FlowStep]
    entry: str
    version: str | None = None
    description: str = ""
    workload: Mapping[str, Any] = field(default_factory=dict)
    source_file: str | None = None
    content_hash: str = ""
    predecessors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reaches: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def step(self, name: str) -> FlowStep:
        return self.steps[name]

    def is_join(self, name: str) -> bool:
        return len(self.predecessors.get(name, ())) > 1


def graph_index(
    steps: Mapping[str, FlowStep],
) -> tuple[dict[str, tuple[str, ...]], dict[str, frozenset[str]]]:
    """Predecessors and transitive reachability of every step (rule ``jump`` and
    ``on_anomaly`` targets count)."""
    succ: dict[str, set[str]] = {name: set() for name in steps}
    for name, step in steps.items():
        for arc in step.next.arcs:
            if arc.step in succ:
                succ[name].add(arc.step)
        for rule in step.rules:
            if rule.do == "jump" and rule.to in succ:
                succ[name].add(rule.to)
        if step.on_anomaly is not None and step.on_anomaly.step in succ:
            succ[name].add(step.on_anomaly.step)
    preds: dict[str, list[str]] = {name: [] for name in steps}
    for name, targets in succ.items():
        for target in targets:
            preds[target].append(name)
    reaches: dict[str, frozenset[str]] = {}
    for start in steps:
        seen: set[str] = set()
        stack = list(succ[start])
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(succ[node])
        reaches[start] = frozenset(seen)
    return {k: tuple(sorted(v)) for k, v in preds.items()}, reaches
