"""Anomaly detection: a step's outcome judged against its baselines, outside ``decide``.

The orchestrator hands every worker outcome to its advisor before deciding; the
``Detector`` looks the step up in its ``Baselines`` and returns the outcome with the
anomalies it found attached (``Outcome.anomalies``). ``decide`` records them as
``anomaly.detected`` events and routes on them, so it stays pure: a replay of the same
signals decides the same, whatever the baselines say today.

Three kinds (see docs/anomalies.md):

- ``duration``: a finished attempt slower than median + ``threshold`` x spread;
- ``result_drift``: a numeric result field beyond ``threshold`` robust z either way;
- ``failure_rate``: a failed attempt whose recent window holds improbably many failures
  at the step's long-run rate (binomial tail below ``alpha``), once per window.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from playloop.dsl.flow import Flow, FlowStep
from playloop.engine.events import Anomaly, Event
from playloop.engine.signals import Outcome
from playloop.engine.state import ExecutionState
from playloop.learn.baselines import (
    Baseline,
    Baselines,
    StepHistory,
    failure_spike,
    numeric_fields,
    robust_z,
)
from playloop.store.base import EventStore

__all__ = ["Anomaly", "Detector", "Thresholds"]

log = logging.getLogger("playloop")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The detector's defaults; a step's ``anomaly:`` block overrides ``z`` and
    ``min_samples``."""

    #: robust z beyond which a duration or a result field is anomalous (Iglewicz-Hoaglin)
    z: float = 3.5
    #: past samples a baseline needs before it judges (attempts, for failure rates)
    min_samples: int = 20
    #: attempts in the recent window of the failure-rate test (the current one included)
    window: int = 20
    #: the window's failures are a spike when this improbable at the long-run rate
    alpha: float = 0.001
    #: and at least this many
    min_failures: int = 3
    #: a duration's spread is at least this many ms and this fraction of the median
    #: (timers have ms resolution; a step of steady 20 ms is not anomalous at 22 ms)
    duration_floor_ms: float = 5.0
    duration_floor_ratio: float = 0.1
    #: and a slow attempt takes at least this many times the median (a busy machine
    #: stretches a 30 ms step to 50 ms now and then; that is noise, not news)
    duration_min_ratio: float = 2.0
    #: and at least this many ms more than the median: on a busy machine the scheduler
    #: alone stretches a step by tens of ms (up to 85 ms measured at load 7 on 2 cores)
    duration_min_excess_ms: float = 100.0
    #: a result field's spread is at least this fraction of its median: 20 samples
    #: estimate a spread within about a third, and a score that moved 1 % is no drift
    drift_floor_ratio: float = 0.01


class Detector:
    """The orchestrator's advisor: ``prepare`` before a transaction, ``advise`` on each
    outcome inside it, ``observe`` the events it committed."""

    def __init__(
        self,
        store: EventStore | Callable[[], EventStore],
        thresholds: Thresholds | None = None,
        baselines: Baselines | None = None,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        t = self.thresholds
        self.baselines = baselines or Baselines(
            store, window=t.window, alpha=t.alpha, min_failures=t.min_failures
        )

    def prepare(self, playbooks: set[str]) -> None:
        """Before a transaction: read the baselines of these playbooks when new, and what
        other processes appended (every ``refresh_seconds``)."""
        try:
            for playbook in playbooks:
                self.baselines.load(playbook)
            self.baselines.refresh()
        except Exception:  # advice only: a failed read must not hold a step back
            log.exception("anomaly baselines: reading the store failed")

    def observe(self, events: Sequence[Event]) -> None:
        try:
            self.baselines.observe(events)
        except Exception:  # the events are committed: never fail their batch now
            log.exception("anomaly baselines: observe failed")

    def advise(self, flow: Flow, state: ExecutionState, outcome: Outcome) -> Outcome:
        """The outcome with the anomalies of its step attached (unchanged when none)."""
        cmd = outcome.command
        step = flow.steps.get(cmd.step)
        st = state.steps.get(cmd.step)
        if (
            cmd.iteration is not None
            or outcome.anomalies
            or step is None
            or st is None
            or not step.anomaly.enabled
            or step.loop is not None
            or st.status != "running"
            or st.attempt != cmd.attempt
            or (outcome.ok and cmd.payload.get("callback"))
        ):
            return outcome
        # read already by ``prepare`` unless the state was not cached; a read here fails
        # the batch on error (PostgreSQL aborts the transaction), which is then retried
        self.baselines.load(state.playbook_path)
        try:
            found = self.judge(state.playbook_path, step, outcome)
        except Exception:  # advice only: a bug here must not fail the step
            log.exception("anomaly detection failed for step '%s'", step.name)
            return outcome
        if not found:
            return outcome
        return dataclasses.replace(outcome, anomalies=tuple(a.model_dump() for a in found))

    def judge(self, playbook: str, step: FlowStep, outcome: Outcome) -> list[Anomaly]:
        self.baselines.load(playbook)
        history = self.baselines.steps.get((playbook, step.name))
        if history is None:
            return []
        if not outcome.ok:
            spike = self._failure_rate(step, history, outcome)
            return [spike] if spike else []
        found = []
        if outcome.duration_ms is not None:
            slow = self._duration(step, history, float(outcome.duration_ms))
            if slow:
                found.append(slow)
        watched = step.anomaly.fields
        for name, value in numeric_fields(outcome.result).items():
            if watched is None or name in watched:
                drift = self._drift(step, history, name, value)
                if drift:
                    found.append(drift)
        return found

    # --- the three kinds ----------------------------------------------------------------

    def _z(self, step: FlowStep) -> float:
        return step.anomaly.threshold or self.thresholds.z

    def _min(self, step: FlowStep) -> int:
        return step.anomaly.min_samples or self.thresholds.min_samples

    def _duration(self, step: FlowStep, history: StepHistory, value: float) -> Anomaly | None:
        series = history.duration
        if len(series.values) < self._min(step):
            return None
        base = series.baseline()
        t = self.thresholds
        limit = self._z(step)
        floor = max(t.duration_floor_ms, t.duration_floor_ratio * base.median)
        band = series.bands.get(("duration", limit))
        if band is None:  # the least anomalous duration, once per baseline
            scale = max(base.mad, floor, 1e-9 * max(1.0, base.median))
            high = max(
                base.median + limit * scale,
                t.duration_min_ratio * base.median,
                base.median + t.duration_min_excess_ms,
            )
            band = series.bands[("duration", limit)] = (0.0, high)
        if value <= band[1]:
            return None
        z = robust_z(value, base, floor)
        ratio = value / base.median if base.median else None
        evidence = {"spread_floor_ms": round(floor, 3), "ratio": _round(ratio)}
        return _anomaly("duration", step, "duration_ms", value, base, z, limit, evidence)

    def _drift(
        self, step: FlowStep, history: StepHistory, name: str, value: float
    ) -> Anomaly | None:
        series = history.fields.get(name)
        if series is None or len(series.values) < self._min(step):
            return None
        base = series.baseline()
        limit = self._z(step)
        floor = self.thresholds.drift_floor_ratio * abs(base.median)
        band = series.bands.get(("drift", limit))
        if band is None:  # the values that are no drift, once per baseline
            scale = max(base.mad, floor, 1e-9 * max(1.0, abs(base.median)))
            band = series.bands[("drift", limit)] = (
                base.median - limit * scale,
                base.median + limit * scale,
            )
        if band[0] <= value <= band[1]:
            return None
        z = robust_z(value, base, floor)
        evidence = {"direction": "high" if z > 0 else "low", "z": _round(z)}
        return _anomaly("result_drift", step, name, value, base, abs(z), limit, evidence)

    def _failure_rate(
        self, step: FlowStep, history: StepHistory, outcome: Outcome
    ) -> Anomaly | None:
        t = self.thresholds
        cut = len(history.outcomes) - (t.window - 1)
        if history.in_spike or cut < 0:
            return None  # a spike reported already goes on: one anomaly per spike
        before_failures, before = history.calm(cut)
        if before < self._min(step):
            return None
        recent = sum(list(history.outcomes)[cut:]) + 1  # this failure is not folded yet
        spike = failure_spike(recent, t.window, before_failures, before)
        if spike.failures < t.min_failures or spike.p_value > t.alpha:
            return None
        spread = math.sqrt(spike.rate * (1 - spike.rate) / spike.window)
        base = Baseline(spike.rate, spread, spike.baseline_attempts)
        evidence = {
            "window": spike.window,
            "failures": spike.failures,
            "baseline_failures": spike.baseline_failures,
            "baseline_attempts": spike.baseline_attempts,
            "p_value": float(f"{spike.p_value:.3g}"),
            "error_type": outcome.error_type,
        }
        value = spike.failures / spike.window
        threshold = -math.log10(t.alpha)
        return _anomaly(
            "failure_rate", step, "failure_rate", value, base, spike.score, threshold, evidence
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _anomaly(
    kind: str,
    step: FlowStep,
    metric: str,
    value: float,
    base: Baseline,
    score: float,
    threshold: float,
    evidence: dict[str, Any],
) -> Anomaly:
    return Anomaly.model_validate(
        {
            "kind": kind,
            "step": step.name,
            "metric": metric,
            "value": value,
            "baseline": base.as_dict(),
            "score": round(min(score, 1e9), 3),
            "threshold": round(threshold, 3),
            "evidence": evidence,
        }
    )
