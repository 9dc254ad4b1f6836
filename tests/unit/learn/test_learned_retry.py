"""``retry: auto`` learns attempts and waits per error class from the statistics (pure).

The snapshots are built by hand: a class's retries, its successes per attempt number and
its times to recovery, as ``learn.stats`` would fold them from the event log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from playloop.engine.events import Event, new_id
from playloop.learn.retry import COVER_SHARE, RetryChoice, choose
from playloop.learn.snapshot import ClassStats, Durations, Snapshot, StepStats, quantile_table
from playloop.learn.stats import build_snapshot
from playloop.store.sqlite import SqliteStore

PLAYBOOK, STEP = "test/learned", "call"


def history(by_attempt: Mapping[int, tuple[int, int]], recovery_ms: Sequence[float]) -> ClassStats:
    return ClassStats(
        failures=sum(t for t, _ in by_attempt.values()),
        retried=sum(t for t, _ in by_attempt.values()),
        retry_successes=sum(s for _, s in by_attempt.values()),
        by_attempt=dict(by_attempt),
        recovery=Durations.of(recovery_ms),
        recovery_table=quantile_table(recovery_ms),
    )


def snapshot(**classes: ClassStats) -> Snapshot:
    step = StepStats(playbook=PLAYBOOK, step=STEP, classes=classes)
    return Snapshot(steps={(PLAYBOOK, STEP): step})


def pick(snap: Snapshot, error_class: str, attempt: int, **bounds: Any) -> RetryChoice:
    args: dict[str, Any] = {"max_attempts": 5, "first_delay": 1.0, "max_delay": 30.0}
    return choose(
        snap,
        playbook=PLAYBOOK,
        step=STEP,
        error_class=error_class,
        attempt=attempt,
        **(args | bounds),
    )


def waits(snap: Snapshot, error_class: str, **bounds: Any) -> list[float]:
    """The waits of one chain that keeps failing, until the policy stops."""
    found = []
    for attempt in range(1, 20):
        choice = pick(snap, error_class, attempt, **bounds)
        if not choice.retry:
            break
        assert choice.evidence["source"] == "history"
        found.append(choice.delay)
    return found


# retries pass at attempts 2-4 in both: only how long recovery took differs (ms)
PASSES = {2: (40, 20), 3: (20, 10), 4: (10, 10)}
QUICK = [10.0 + i % 20 for i in range(40)]  # 10-29 ms
SLOW = [1000.0 + 25 * (i % 40) for i in range(40)]  # 1-2 s


def test_long_recovery_waits_longer_than_quick_recovery() -> None:
    snap = snapshot(**{"http.503": history(PASSES, SLOW), "http.502": history(PASSES, QUICK)})
    slow, quick = waits(snap, "http.503"), waits(snap, "http.502")
    assert len(slow) == len(quick) == 3  # attempts 2-4: the last one with successes
    assert all(s > 10 * q for s, q in zip(slow, quick, strict=True))
    # the waits add up to the time by which 98% of past recoveries had happened (to the ms)
    for found, recovery in ((slow, SLOW), (quick, QUICK)):
        cover = history(PASSES, recovery).recovery_at(COVER_SHARE)
        assert cover is not None and sum(found) == pytest.approx(cover / 1000, abs=0.002)
    # the first wait is the quickest 10%'s recovery: no retry before any had recovered
    for found, recovery in ((slow, SLOW), (quick, QUICK)):
        quickest = history(PASSES, recovery).recovery_at(0.1)
        assert quickest is not None and found[0] == pytest.approx(quickest / 1000, abs=0.001)


def test_quick_and_slow_recoveries_mixed_wait_briefly_first_and_long_last() -> None:
    """Blips that pass on the next attempt and restarts that take 1-2.4 s, in one class."""
    mixed = [20.0] * 30 + [40.0] * 10 + [1000.0 + 100 * i for i in range(15)]
    snap = snapshot(**{"http.503": history(PASSES, mixed)})
    found = waits(snap, "http.503")
    assert found[0] == 0.02 and found == sorted(found) and found[-1] > 1
    cover = history(PASSES, mixed).recovery_at(COVER_SHARE)
    assert cover is not None and sum(found) == pytest.approx(cover / 1000, abs=0.002)
    assert pick(snap, "http.503", 1).evidence["growth"] > 5


def test_the_choice_and_its_evidence_are_recorded() -> None:
    choice = pick(snapshot(**{"http.503": history(PASSES, SLOW)}), "http.503", 1)
    evidence = choice.evidence
    assert choice.retry and evidence["delay"] == choice.delay
    assert evidence["attempts_planned"] == 4
    assert evidence["recovery_ms"] == {"samples": 40, "p10": 1097.5, "p98": 1955.5}
    assert evidence["cover_ms"] == pytest.approx(1955.5, abs=1)
    assert evidence["source"] == "history" and evidence["scope"] == "step"
    assert evidence["success_probability_at_attempt"] == 0.5


def test_fewer_attempts_where_late_attempts_never_succeed() -> None:
    late_fail = {2: (40, 20), 3: (20, 10), 4: (10, 0), 5: (10, 0)}
    snap = snapshot(**{"http.503": history(late_fail, QUICK)})
    assert len(waits(snap, "http.503")) == 2  # attempts 2 and 3, not 4 or 5
    last = pick(snap, "http.503", 3)
    assert not last.retry and last.evidence["reason"] == "never succeeded at attempt 4 or later"
    # a negligible chance stops too: 1 success in 60 tries from attempt 4 on
    rare = {2: (100, 40), 3: (60, 0), 4: (60, 1)}
    snap = snapshot(**{"http.503": history(rare, QUICK)})
    assert pick(snap, "http.503", 1).evidence["attempts_planned"] == 2
    assert pick(snap, "http.503", 2).evidence["reason"] == "success probability under 0.02"


def test_never_retry_a_class_that_never_succeeded_on_retry() -> None:
    snap = snapshot(**{"http.500": history({2: (30, 0), 3: (30, 0)}, [])})
    choice = pick(snap, "http.500", 1)
    assert not choice.retry and choice.evidence["reason"] == "never succeeded on retry"


def test_the_bounds_hold() -> None:
    snap = snapshot(**{"http.503": history(PASSES, SLOW)})
    assert len(waits(snap, "http.503", max_attempts=3)) == 2
    assert max(waits(snap, "http.503", max_delay=0.5)) == 0.5
    # one retry allowed: it waits as long as the cover, at once
    assert waits(snap, "http.503", max_attempts=2) == [pytest.approx(1.9555, abs=0.001)]
    # the service's Retry-After is never cut short
    quick = snapshot(**{"http.429": history(PASSES, QUICK)})
    choice = pick(quick, "http.429", 1, retry_after=0.25)
    assert choice.delay == 0.25 and choice.evidence["source"] == "retry-after"


def test_no_history_is_conservative() -> None:
    empty = Snapshot()
    assert [pick(empty, "http.503", n).delay for n in (1, 2)] == [1.0, 2.0]
    third = pick(empty, "http.503", 3)
    assert not third.retry
    assert third.evidence["reason"] == "no history: the default makes 3 attempts"
    assert not pick(empty, "exc.ValueError", 1).retry
    # too little history (under 5 retries) is no history
    few = snapshot(**{"http.503": history({2: (2, 2)}, SLOW[:2])})
    assert pick(few, "http.503", 1).evidence["source"] == "default"


def _event(t: datetime, execution_id: int, seq: int, kind: str, **fields: Any) -> Event:
    return Event(
        execution_id=execution_id,
        seq=seq,
        event_type=kind,
        playbook_path=PLAYBOOK,
        event_id=new_id(),
        created_at=t.isoformat(timespec="microseconds"),
        **fields,
    )


def test_recovery_ends_when_the_attempt_that_succeeded_began(tmp_path: Path) -> None:
    """From the first failure to the start of the attempt that passed: a retry needs to
    wait that long; how long the passing call then took is not part of it."""
    store = SqliteStore(tmp_path / "p.db")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    fail: dict[str, Any] = {"step_name": STEP, "status": "failed", "error_type": "HTTPError"}
    fail["meta"] = {"error_class": "http.503"}
    store.append(
        [
            _event(t0, 1, 1, "execution.started", status="running"),
            _event(t0, 1, 2, "step.failed", attempt=1, **fail),
            _event(t0, 1, 3, "step.retrying", step_name=STEP, attempt=2),
            _event(t0 + timedelta(seconds=0.2), 1, 4, "step.failed", attempt=2, **fail),
            _event(t0 + timedelta(seconds=0.2), 1, 5, "step.retrying", step_name=STEP, attempt=3),
            _event(
                t0 + timedelta(seconds=1.5),
                1,
                6,
                "step.finished",
                step_name=STEP,
                status="completed",
                attempt=3,
                duration_ms=500,
            ),
        ]
    )
    c503 = build_snapshot(store).classes["http.503"]
    store.close()
    assert c503.by_attempt == {2: (1, 0), 3: (1, 1)}
    assert c503.recovery is not None and c503.recovery.max == 1000.0
    assert c503.recovery_at(0.1) == c503.recovery_at(COVER_SHARE) == 1000.0
