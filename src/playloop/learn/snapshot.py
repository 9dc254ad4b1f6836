"""A frozen snapshot of the statistics: what learned policies and suggestions read.

Pure data (no I/O): ``learn.stats`` builds one from the event log, ``engine.decide`` reads
one it is handed (never the store), so a decision stays a function of its inputs.
Durations are milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: retries seen after an error class before its history outweighs the defaults
MIN_EVIDENCE = 5
#: the recovery quantiles a class keeps: every 5% from the quickest (0) to the slowest (1)
RECOVERY_STEPS = 20


@dataclass(frozen=True, slots=True)
class Durations:
    count: int
    p50: float
    p90: float
    p95: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Durations | None:
        if not values:
            return None
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=quantile(ordered, 0.50),
            p90=quantile(ordered, 0.90),
            p95=quantile(ordered, 0.95),
            p99=quantile(ordered, 0.99),
            mean=round(sum(ordered) / len(ordered), 3),
            max=ordered[-1],
        )


def quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default) of sorted values."""
    if len(ordered) == 1:
        return float(ordered[0])
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (pos - low), 3)


def quantile_table(values: Sequence[float], steps: int = RECOVERY_STEPS) -> tuple[float, ...]:
    """The values' quantiles at every ``1 / steps`` (``steps + 1`` of them); empty for none."""
    if not values:
        return ()
    ordered = sorted(values)
    return tuple(quantile(ordered, i / steps) for i in range(steps + 1))


@dataclass(frozen=True, slots=True)
class ClassStats:
    """Failures of one error class and what the attempt right after each one did."""

    failures: int = 0
    #: attempts made right after a failure of this class, and how many succeeded
    retried: int = 0
    retry_successes: int = 0
    #: attempt number -> (attempts after this class, successes)
    by_attempt: Mapping[int, tuple[int, int]] = field(default_factory=dict)
    #: from the first failure of a step's attempt chain to the start of the attempt that
    #: succeeded (ms)
    recovery: Durations | None = None
    #: Retry-After values the service sent (seconds), p50; None: it never sent one
    retry_after_p50: float | None = None
    #: recovery times (ms) at every 5% (``RECOVERY_STEPS + 1`` values, quickest first);
    #: empty: none recovered
    recovery_table: tuple[float, ...] = ()

    @property
    def success_probability(self) -> float | None:
        return None if self.retried == 0 else round(self.retry_successes / self.retried, 4)

    def from_attempt(self, attempt: int) -> tuple[int, int]:
        """(tries, successes) of attempts numbered ``attempt`` or later after this class."""
        tries = sum(t for k, (t, _) in self.by_attempt.items() if k >= attempt)
        wins = sum(s for k, (_, s) in self.by_attempt.items() if k >= attempt)
        return tries, wins

    def at_attempt(self, attempt: int) -> tuple[int, int]:
        return self.by_attempt.get(attempt, (0, 0))

    def recovery_at(self, q: float) -> float | None:
        """The recovery time (ms) by which a share ``q`` of the recoveries had happened,
        interpolated in ``recovery_table``; None when nothing recovered."""
        table = self.recovery_table
        if not table:
            return None
        pos = min(max(q, 0.0), 1.0) * (len(table) - 1)
        low = int(pos)
        high = min(low + 1, len(table) - 1)
        return round(table[low] + (table[high] - table[low]) * (pos - low), 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "failures": self.failures,
            "retried": self.retried,
            "retry_successes": self.retry_successes,
            "success_probability": self.success_probability,
            "by_attempt": {
                str(k): {"tries": t, "successes": s, "p": round(s / t, 4) if t else None}
                for k, (t, s) in sorted(self.by_attempt.items())
            },
            "recovery_ms": asdict(self.recovery) if self.recovery else None,
            "recovery_ms_p10": self.recovery_at(0.1),
            "retry_after_p50": self.retry_after_p50,
        }


@dataclass(frozen=True, slots=True)
class StepStats:
    playbook: str
    step: str
    tool: str | None = None
    #: times the step ended: completed, or failed for good
    runs: int = 0
    completed: int = 0
    failed: int = 0
    #: every attempt (and loop iteration attempt) that ended, and how many failed
    attempts: int = 0
    failed_attempts: int = 0
    timed_out: int = 0
    durations: Durations | None = None
    classes: Mapping[str, ClassStats] = field(default_factory=dict)
    #: decision actions taken at this step (approve, reject, override...) and feedback
    decisions: Mapping[str, int] = field(default_factory=dict)
    feedback: Mapping[str, int] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float | None:
        return None if self.runs == 0 else round(self.failed / self.runs, 4)

    @property
    def attempt_failure_rate(self) -> float | None:
        return None if self.attempts == 0 else round(self.failed_attempts / self.attempts, 4)

    def rate(self, action: str) -> float | None:
        total = sum(self.decisions.values())
        return None if total == 0 else round(self.decisions.get(action, 0) / total, 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "playbook": self.playbook,
            "step": self.step,
            "tool": self.tool,
            "runs": self.runs,
            "completed": self.completed,
            "failed": self.failed,
            "failure_rate": self.failure_rate,
            "attempts": self.attempts,
            "failed_attempts": self.failed_attempts,
            "attempt_failure_rate": self.attempt_failure_rate,
            "timed_out": self.timed_out,
            "duration_ms": asdict(self.durations) if self.durations else None,
            "error_classes": {k: v.to_dict() for k, v in sorted(self.classes.items())},
            "decisions": dict(self.decisions),
            "approval_rate": self.rate("approve"),
            "override_rate": self.rate("override"),
            "feedback": dict(self.feedback),
        }


@dataclass(frozen=True, slots=True)
class GroupStats:
    """A playbook's executions or a tool's attempts: counts and durations."""

    name: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    durations: Durations | None = None
    classes: Mapping[str, int] = field(default_factory=dict)
    feedback: Mapping[str, int] = field(default_factory=dict)

    @property
    def failure_rate(self) -> float | None:
        return None if self.total == 0 else round(self.failed / self.total, 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "failure_rate": self.failure_rate,
            "duration_ms": asdict(self.durations) if self.durations else None,
            "error_classes": dict(sorted(self.classes.items())),
            "feedback": dict(self.feedback),
        }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Statistics as of ``checkpoint`` (the last event id folded in)."""

    checkpoint: int = 0
    built_at: float = 0.0
    events: int = 0
    steps: Mapping[tuple[str, str], StepStats] = field(default_factory=dict)
    playbooks: Mapping[str, GroupStats] = field(default_factory=dict)
    tools: Mapping[str, GroupStats] = field(default_factory=dict)
    #: every playbook and step pooled, per error class
    classes: Mapping[str, ClassStats] = field(default_factory=dict)

    def step(self, playbook: str, step: str) -> StepStats | None:
        return self.steps.get((playbook, step))

    def error_class(
        self, playbook: str, step: str, error_class: str
    ) -> tuple[ClassStats | None, str]:
        """The class's history at this step when it has enough retries, else pooled over
        every step (``scope``: "step" or "all")."""
        found = self.steps.get((playbook, step))
        local = found.classes.get(error_class) if found else None
        if local is not None and local.retried >= MIN_EVIDENCE:
            return local, "step"
        pooled = self.classes.get(error_class)
        if pooled is not None and pooled.retried > (local.retried if local else 0):
            return pooled, "all"
        return local, "step"

    def to_dict(self, playbook: str | None = None) -> dict[str, Any]:
        steps = [
            s.to_dict()
            for (p, _), s in sorted(self.steps.items())
            if playbook is None or p == playbook
        ]
        playbooks = [
            g.to_dict() for name, g in sorted(self.playbooks.items()) if playbook in (None, name)
        ]
        return {
            "checkpoint": str(self.checkpoint),
            "events": self.events,
            "playbooks": playbooks,
            "steps": steps,
            "tools": [g.to_dict() for _, g in sorted(self.tools.items())],
            "error_classes": {k: v.to_dict() for k, v in sorted(self.classes.items())},
        }


EMPTY = Snapshot()
