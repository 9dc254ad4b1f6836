"""The statistics behind anomaly detection, on data whose answers are known by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from playloop.dsl.load import load_text
from playloop.engine.commands import Command
from playloop.engine.events import Anomaly, Event
from playloop.engine.signals import Outcome
from playloop.learn.anomalies import Detector, Thresholds
from playloop.learn.baselines import (
    Baseline,
    Baselines,
    StepHistory,
    binomial_tail,
    failure_spike,
    median,
    numeric_fields,
    robust,
    robust_z,
)
from playloop.store.sqlite import SqliteStore


def test_median_and_scaled_mad() -> None:
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    # deviations from 3: 2 1 0 1 97 -> MAD 1; one wild value moves neither statistic
    assert robust([1, 2, 3, 4, 100]) == Baseline(3, 1.4826, 5)
    assert robust([1, 2, 3, 4, 5]).mad == robust([1, 2, 3, 4, 5000]).mad


def test_spread_falls_back_to_mean_absolute_deviation_when_mad_is_zero() -> None:
    # deviations from 5: 0 0 0 0 4 -> MAD 0, mean absolute deviation 0.8
    assert robust([5, 5, 5, 5, 9]) == Baseline(5, pytest.approx(1.2533 * 0.8), 5)
    assert robust([7, 7, 7]) == Baseline(7, 0.0, 3)
    with pytest.raises(ValueError):
        robust([])


def test_robust_z_uses_the_floor_and_never_divides_by_zero() -> None:
    base = Baseline(median=100.0, mad=2.0, n=30)
    assert robust_z(107.0, base) == 3.5
    assert robust_z(93.0, base) == -3.5
    assert robust_z(120.0, base, floor=10.0) == 2.0
    flat = Baseline(median=0.9, mad=0.0, n=30)
    assert robust_z(0.9, flat) == 0.0
    assert math.isfinite(robust_z(0.8, flat)) and robust_z(0.8, flat) < -1e6


def test_binomial_tail_matches_exact_sums() -> None:
    def exact(k: int, n: int, p: float) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    for k, n, p in [(1, 1, 0.5), (8, 20, 0.1), (3, 20, 0.05), (12, 20, 0.25), (0, 5, 0.3)]:
        assert binomial_tail(k, n, p) == pytest.approx(exact(k, n, p), rel=1e-9)
    assert binomial_tail(21, 20, 0.5) == 0.0
    assert binomial_tail(1, 20, 0.0) == 0.0


def test_failure_spike_smooths_the_long_run_rate() -> None:
    # no failure in 98 attempts: rate (0 + 1) / (98 + 2) = 0.01, not 0
    spike = failure_spike(3, 20, 0, 98)
    assert spike.rate == 0.01
    assert spike.p_value == pytest.approx(binomial_tail(3, 20, 0.01))
    assert spike.score == pytest.approx(-math.log10(spike.p_value))
    assert failure_spike(1, 20, 10, 98).p_value > 0.5


def test_numeric_fields_are_finite_top_level_numbers() -> None:
    result = {"quality_score": 0.85, "rows": 12, "ok": True, "name": "x", "nan": math.nan}
    assert numeric_fields(result) == {"quality_score": 0.85, "rows": 12.0}
    assert numeric_fields(3) == {"result": 3.0}
    assert numeric_fields([1, 2]) == {} and numeric_fields(None) == {}


def test_a_reported_spike_is_left_out_of_the_long_run_rate_until_it_ends() -> None:
    h = StepHistory(history=50, outcomes_kept=100, window=5)
    for _ in range(20):
        h.finished(10, None)
    for _ in range(5):
        h.failed()
    h.spike_reported()
    assert h.in_spike and list(h.spiked)[-5:] == [True] * 5
    h.failed()  # the spike goes on
    assert h.in_spike and h.calm(len(h.outcomes)) == (0, 20)
    h.finished(10, None)
    h.finished(10, None)
    # 3 failures in the last 5 at a rate of 1 / (20 + 2): p = 0.00083, a spike still
    assert h.in_spike
    h.finished(10, None)
    assert not h.in_spike  # 2 failures: fewer than min_failures; all so far were the spike's
    h.finished(10, None)
    assert h.calm(len(h.outcomes)) == (0, 21)


def baselines_with(tmp_path: Path, playbook: str, step: str, values: list[float]) -> Baselines:
    store = SqliteStore(tmp_path / "playloop.db")
    baselines = Baselines(store)
    baselines.load(playbook)  # nothing stored yet
    baselines.observe(
        Event(
            execution_id=i + 1,
            seq=1,
            event_type="step.finished",
            playbook_path=playbook,
            event_id=i + 1,
            step_name=step,
            duration_ms=100,
            result={"quality_score": value},
        )
        for i, value in enumerate(values)
    )
    return baselines


FLOW = load_text(
    """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: t, path: t/anomaly}
workflow:
  - step: check
    tool: {kind: python, code: "result = {}"}
"""
)


def judge(detector: Detector, score: float, duration_ms: int = 100) -> list[Anomaly]:
    cmd = Command(execution_id=99, kind="run", step="check", attempt=1)
    outcome = Outcome(cmd, ok=True, result={"quality_score": score}, duration_ms=duration_ms)
    return detector.judge(FLOW.path, FLOW.steps["check"], outcome)


def test_nothing_is_judged_before_the_minimum_sample(tmp_path: Path) -> None:
    scores = [0.90 + 0.01 * (i % 5 - 2) for i in range(19)]  # 0.88 .. 0.92
    detector = Detector(None, baselines=baselines_with(tmp_path, FLOW.path, "check", scores))  # type: ignore[arg-type]
    assert judge(detector, 0.2, duration_ms=5000) == []  # 19 samples: no verdict
    detector.baselines.observe(
        [
            Event(
                execution_id=20,
                seq=1,
                event_type="step.finished",
                playbook_path=FLOW.path,
                event_id=20,
                step_name="check",
                duration_ms=100,
                result={"quality_score": 0.9},
            )
        ]
    )
    found = judge(detector, 0.2, duration_ms=5000)  # the 20th sample: judged
    assert [(a.kind, a.metric) for a in found] == [
        ("duration", "duration_ms"),
        ("result_drift", "quality_score"),
    ]
    duration, drift = found
    assert duration.baseline.model_dump() == {"median": 100.0, "mad": 0.0, "n": 20}
    # the spread floor: max(5 ms, 10 % of 100 ms) = 10 ms -> (5000 - 100) / 10
    assert duration.score == 490.0 and duration.threshold == 3.5
    assert drift.baseline.median == 0.9 and drift.baseline.n == 20
    assert drift.evidence["direction"] == "low" and drift.score > 3.5


def test_values_inside_the_threshold_are_not_anomalies(tmp_path: Path) -> None:
    scores = [0.90 + 0.01 * (i % 5 - 2) for i in range(40)]
    detector = Detector(None, baselines=baselines_with(tmp_path, FLOW.path, "check", scores))  # type: ignore[arg-type]
    base = robust(scores)
    assert base.median == pytest.approx(0.9) and base.mad == pytest.approx(0.014826)
    edge = 0.9 + 3.4 * base.mad
    assert judge(detector, edge) == []
    assert [a.kind for a in judge(detector, 0.9 + 3.6 * base.mad)] == ["result_drift"]
    # slower, but not twice the median and 100 ms more: noise on a busy machine
    assert judge(detector, 0.9, duration_ms=190) == []
    assert [a.kind for a in judge(detector, 0.9, duration_ms=201)] == ["duration"]


def test_step_tuning_overrides_the_defaults(tmp_path: Path) -> None:
    flow = load_text(
        """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: t, path: t/anomaly}
workflow:
  - step: check
    anomaly: {threshold: 10, min_samples: 5, fields: [rows]}
"""
    )
    scores = [0.90 + 0.01 * (i % 5 - 2) for i in range(5)]
    detector = Detector(None, Thresholds(), baselines_with(tmp_path, flow.path, "check", scores))  # type: ignore[arg-type]
    cmd = Command(execution_id=99, kind="run", step="check", attempt=1)
    drifted = Outcome(cmd, ok=True, result={"quality_score": 0.2}, duration_ms=100)
    assert detector.judge(flow.path, flow.steps["check"], drifted) == []  # not a watched field
    slow = Outcome(cmd, ok=True, result={}, duration_ms=1000)
    (found,) = detector.judge(flow.path, flow.steps["check"], slow)
    assert found.kind == "duration" and found.threshold == 10 and found.baseline.n == 5
