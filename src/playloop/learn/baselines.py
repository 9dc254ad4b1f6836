"""Robust per-step baselines, a projection of the event log with a checkpoint.

For each (playbook, step) the projection keeps the recent history the anomaly detector
judges against: durations and numeric result fields of finished attempts (their median
and scaled MAD), and the sequence of attempt outcomes (failed or not) for failure-rate
spikes. It is filled from the store once per playbook (the newest ``LOAD_LIMIT`` step
events), then kept current from the events this process commits (``observe``, no I/O)
and, every ``refresh_seconds``, from what other processes appended after the checkpoint
(``refresh``, outside any transaction). A sample committed out of id order by another
process may be missed: a baseline is a statistic, not a ledger.

The statistics are pure functions at the top of the module, tested on known data.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from playloop.engine.events import Event, id_at
from playloop.store.base import EventStore
from playloop.store.generic import fetch
from playloop.store.sqlstore import SqlStore

#: 1.4826 x MAD estimates the standard deviation of normal data
MAD_SCALE = 1.4826
#: 1.2533 x the mean absolute deviation does too; used when more than half the values tie
MEANAD_SCALE = 1.2533
#: step events read per playbook on first use
LOAD_LIMIT = 20_000
#: numeric result fields followed per step
MAX_FIELDS = 32
#: a transaction commits well within this many seconds of making its event ids, so a
#: refresh moves its checkpoint at least this close to now (and never reads older rows)
COMMIT_LAG = 1.0


# --- statistics ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Baseline:
    """A robust centre and spread of ``n`` values: the median and the scaled MAD."""

    median: float
    mad: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"median": round(self.median, 6), "mad": round(self.mad, 6), "n": self.n}


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def robust(values: Sequence[float]) -> Baseline:
    """Median and spread; the spread is 1.4826 x MAD, or 1.2533 x the mean absolute
    deviation when the MAD is 0 (more than half the values equal the median)."""
    if not values:
        raise ValueError("no values")
    centre = median(values)
    deviations = [abs(v - centre) for v in values]
    spread = MAD_SCALE * median(deviations)
    if spread == 0:
        spread = MEANAD_SCALE * sum(deviations) / len(deviations)
    return Baseline(centre, spread, len(values))


def robust_z(value: float, baseline: Baseline, floor: float = 0.0) -> float:
    """``(value - median) / spread``, the spread at least ``floor`` (and never 0)."""
    scale = max(baseline.mad, floor, 1e-9 * max(1.0, abs(baseline.median)))
    return (value - baseline.median) / scale


def binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    total = 0.0
    for i in range(k, n + 1):
        log_term = math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
        total += math.exp(log_term + i * log_p + (n - i) * log_q)
    return min(1.0, total)


@dataclass(frozen=True, slots=True)
class Spike:
    """A window's failures tested against the long-run rate before it."""

    failures: int
    window: int
    baseline_failures: int
    baseline_attempts: int
    rate: float  # the long-run rate, smoothed: (f + 1) / (n + 2)
    p_value: float

    @property
    def score(self) -> float:
        return -math.log10(max(self.p_value, 1e-300))


def failure_spike(failures: int, window: int, before_failures: int, before: int) -> Spike:
    """Are ``failures`` of ``window`` attempts improbable at the long-run failure rate?

    The long-run rate, ``before_failures`` of ``before`` attempts, is smoothed (Laplace:
    one failure and one success added), so a step that never failed still has a small
    rate and a burst of failures a finite p-value.
    """
    rate = (before_failures + 1) / (before + 2)
    p_value = binomial_tail(failures, window, rate)
    return Spike(failures, window, before_failures, before, rate, p_value)


# --- history of one step ---------------------------------------------------------------------


@dataclass(slots=True)
class Series:
    """Recent values of one metric and their baseline, recomputed lazily: when 5 values,
    and at least 1/20 of the history, are new since (a median of 200 values barely moves
    with one more; judging stays cheap on the step's hot path)."""

    values: deque[float]
    added: int = 0
    #: what a judge derived from the current baseline (its bounds), dropped with it
    bands: dict[Any, tuple[float, float]] = field(default_factory=dict)
    _baseline: Baseline | None = None
    _at: int = 0

    def add(self, value: float) -> None:
        self.values.append(value)
        self.added += 1

    def baseline(self) -> Baseline:
        n = len(self.values)
        if self._baseline is None or self.added - self._at >= max(5, n // 20):
            self._baseline = robust(list(self.values))
            self._at = self.added
            self.bands.clear()
        return self._baseline


@dataclass(slots=True)
class StepHistory:
    """One step's recent samples. Attempts are outcomes (failed or not), oldest first;
    those of a reported failure spike (its window, and every attempt until the last
    ``window`` attempts are no spike any more: fewer than ``min_failures`` failures, or
    not improbable at ``alpha``) are marked, and left out of the long-run rate: past
    bursts must not make the next one look normal."""

    history: int
    outcomes_kept: int
    window: int
    alpha: float = 0.001
    min_failures: int = 3
    duration: Series = field(init=False)
    fields: dict[str, Series] = field(default_factory=dict)
    #: True for a failed attempt, oldest first
    outcomes: deque[bool] = field(init=False)
    #: True for an attempt of a reported spike (parallel to ``outcomes``)
    spiked: deque[bool] = field(init=False)
    attempts: int = 0
    #: a reported spike goes on: no other failure_rate anomaly until it ends
    in_spike: bool = False

    def __post_init__(self) -> None:
        self.duration = Series(deque(maxlen=self.history))
        self.outcomes = deque(maxlen=self.outcomes_kept)
        self.spiked = deque(maxlen=self.outcomes_kept)

    def calm(self, upto: int) -> tuple[int, int]:
        """``(failures, attempts)`` of the first ``upto`` attempts kept, spikes left out."""
        failures = attempts = 0
        for i, (failed, spiked) in enumerate(zip(self.outcomes, self.spiked, strict=True)):
            if i >= upto:
                break
            if not spiked:
                failures += failed
                attempts += 1
        return failures, attempts

    def spike_reported(self) -> None:
        for i in range(max(0, len(self.spiked) - self.window), len(self.spiked)):
            self.spiked[i] = True
        self.in_spike = True

    def _outcome(self, failed: bool) -> None:
        self.attempts += 1
        self.outcomes.append(failed)
        self.spiked.append(self.in_spike)
        if self.in_spike:
            recent = sum(list(self.outcomes)[-self.window :])
            spike = failure_spike(recent, self.window, *self.calm(len(self.outcomes)))
            if recent < self.min_failures or spike.p_value > self.alpha:
                self.in_spike = False

    def series(self, name: str) -> Series | None:
        found = self.fields.get(name)
        if found is None and len(self.fields) < MAX_FIELDS:
            found = self.fields[name] = Series(deque(maxlen=self.history))
        return found

    def finished(self, duration_ms: int | None, result: Any) -> None:
        self._outcome(False)
        if duration_ms is not None:
            self.duration.add(float(duration_ms))
        for name, value in numeric_fields(result).items():
            series = self.series(name)
            if series is not None:
                series.add(value)

    def failed(self) -> None:
        self._outcome(True)


def numeric_fields(result: Any) -> dict[str, float]:
    """The finite numbers of a result: its top-level numeric fields, or ``result`` itself."""
    if _number(result):
        return {"result": float(result)}
    if not isinstance(result, dict):
        return {}
    return {str(k): float(v) for k, v in result.items() if _number(v)}


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


# --- the projection -------------------------------------------------------------------------


class Baselines:
    """Per (playbook, step) histories, loaded per playbook and kept current."""

    def __init__(
        self,
        store: EventStore | Callable[[], EventStore],
        *,
        history: int = 200,
        outcomes: int = 500,
        window: int = 20,
        alpha: float = 0.001,
        min_failures: int = 3,
        refresh_seconds: float = 5.0,
    ) -> None:
        #: the store to read, or how to find it (the engine's current one)
        self.store = store
        self.history = history
        self.outcomes = outcomes
        self.window = window
        self.alpha = alpha
        self.min_failures = min_failures
        self.refresh_seconds = refresh_seconds
        self.steps: dict[tuple[str, str], StepHistory] = {}
        #: playbook -> the greatest event id read from the store for it
        self.checkpoints: dict[str, int] = {}
        #: ids folded by ``observe`` that a refresh may read again -> their playbook
        self._observed: dict[int, str] = {}
        #: the actor of the events this process commits: a refresh does not read them
        self._actor: str | None = None
        #: SQLite's count of commits by other connections at the last refresh
        self._version: Any = None
        self._refreshed = time.monotonic()

    def step(self, playbook: str, step: str) -> StepHistory:
        key = (playbook, step)
        found = self.steps.get(key)
        if found is None:
            found = self.steps[key] = StepHistory(
                self.history, self.outcomes, self.window, self.alpha, self.min_failures
            )
        return found

    def fold(self, e: Event) -> None:
        """One event into its step's history (events that are no sample are ignored)."""
        if e.step_name is None or e.iteration is not None:
            return
        kind = e.event_type
        if kind == "step.finished":
            if (e.meta or {}).get("via"):
                return  # a policy carried on past a failure already counted
            self.step(e.playbook_path, e.step_name).finished(e.duration_ms, e.result)
        elif kind in ("step.failed", "step.timed_out"):
            self.step(e.playbook_path, e.step_name).failed()
        elif kind == "anomaly.detected" and (e.meta or {}).get("kind") == "failure_rate":
            self.step(e.playbook_path, e.step_name).spike_reported()

    def load(self, playbook: str) -> None:
        """Read the playbook's newest step events, once (later: ``observe``, ``refresh``)."""
        if playbook in self.checkpoints:
            return
        rows = fetch(self._sql(), "anomaly_history", {"playbook": playbook, "limit": LOAD_LIMIT})
        events = [self._sql().event_from_row(r) for r in reversed(rows)]
        self.checkpoints[playbook] = max((e.event_id for e in events), default=0)
        for event in events:
            self.fold(event)

    def observe(self, events: Iterable[Event]) -> None:
        """Events this process just committed (none of them read from the store yet)."""
        for event in events:
            if event.playbook_path in self.checkpoints and event.event_type in SAMPLE_TYPES:
                self.fold(event)
                self._observed[event.event_id] = event.playbook_path
                self._actor = event.actor or self._actor

    def refresh(self, *, force: bool = False) -> None:
        """Fold what other processes appended since the checkpoints (rate-limited).

        Events of this process's actor are not read (``observe`` folded them); the ids
        folded by ``observe`` are skipped all the same, whoever their actor.
        """
        now = time.monotonic()
        if not force and now - self._refreshed < self.refresh_seconds:
            return
        self._refreshed = now
        sql = self._sql()
        settled = id_at(time.time() - COMMIT_LAG)
        version = fetch(sql, "anomaly_data_version")[0][0]
        if version is not None and version == self._version:
            # no other connection committed since: every new event is ours, observed
            for playbook, after in self.checkpoints.items():
                self.checkpoints[playbook] = max(after, settled)
            self._forget_observed()
            return
        self._version = version
        for playbook, after in list(self.checkpoints.items()):
            while True:
                params = {"playbook": playbook, "after": after, "actor": self._actor, "limit": 5000}
                rows = fetch(sql, "anomaly_since", params)
                for event in map(sql.event_from_row, rows):
                    after = max(after, event.event_id)
                    if self._observed.pop(event.event_id, None) is None:
                        self.fold(event)
                if len(rows) < 5000:
                    break
            self.checkpoints[playbook] = max(after, settled)
        self._forget_observed()

    def _forget_observed(self) -> None:
        """An observed id at or below its playbook's checkpoint is never read again."""
        self._observed = {i: p for i, p in self._observed.items() if i > self.checkpoints.get(p, 0)}

    def _sql(self) -> SqlStore:
        store = self.store() if callable(self.store) else self.store
        if not isinstance(store, SqlStore):
            raise TypeError(f"{type(store).__name__} is not a SQL store")
        return store


SAMPLE_TYPES = frozenset({"step.finished", "step.failed", "step.timed_out", "anomaly.detected"})
