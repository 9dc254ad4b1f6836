"""Anomaly detection: precision and recall on injected anomalies, and the W1 overhead.

    python -m benchmarks.learning.anomalies [--db URL] [--cycles 12] [--seed 7]

A playbook of three python steps (``work`` sleeps ``workload.sleep``, ``flaky`` fails 5 %
of its attempts and is retried, ``score`` returns a ``quality_score`` near 0.9) runs
``--warmup`` normal times; then ``--cycles`` times: 8 normal runs and one injection, in
turn a slow run (``work`` sleeps 0.4 s instead of 0.1 s), a drifted run (``quality_score`` 0.6) and a
failure burst (4 runs in which ``flaky`` always fails). Durations are real sleeps.

A detection is right when its kind matches the injection of the run it was found in:
``duration`` on ``work`` in a slow run, ``result_drift`` on ``score`` in a drifted run,
``failure_rate`` on ``flaky`` in a burst's runs (one per burst is enough). Precision is
right detections / detections, recall injections detected / injections, per kind and
overall.

The overhead: W1 (a chain of 100 python steps) with a history of 25 runs, so every step
is judged, run by an engine with detection and by one without, alternately.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.workloads import w1_chain
from playloop.runtime import Engine

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: anomaly_bench, path: bench/anomalies}
workload: {sleep: 0.1, fail: false, fail_p: 0.05, drift: false, seed: 0}
workflow:
  - step: work
    tool:
      kind: python
      input: {sleep: "{{ workload.sleep }}"}
      code: |
        import time
        time.sleep(sleep)
        result = {"done": True}
    next: [{step: flaky}]
  - step: flaky
    retry: {attempts: 3}
    tool:
      kind: python
      input: {fail: "{{ workload.fail }}", p: "{{ workload.fail_p }}"}
      code: |
        import random
        if fail or random.random() < p:
            raise RuntimeError("upstream unavailable")
        result = {"ok": True}
    next: [{step: score}]
  - step: score
    tool:
      kind: python
      input: {drift: "{{ workload.drift }}", seed: "{{ workload.seed }}"}
      code: |
        import random
        rng = random.Random(seed)
        base = 0.6 if drift else 0.9
        result = {"quality_score": round(base + rng.gauss(0, 0.01), 4), "rows": 1000}
"""

KINDS = ("duration", "result_drift", "failure_rate")
WHERE = {"duration": "work", "result_drift": "score", "failure_rate": "flaky"}


def schedule(warmup: int, cycles: int) -> list[tuple[str, int]]:
    """``(injection, injection number)`` per run: ``normal`` or a kind of ``KINDS``."""
    runs: list[tuple[str, int]] = [("normal", -1)] * warmup
    for cycle in range(cycles):
        runs += [("normal", -1)] * 8
        kind = KINDS[cycle % 3]
        runs += [(kind, cycle)] * (4 if kind == "failure_rate" else 1)
    return runs


def workload(kind: str, seed: int) -> dict[str, Any]:
    load: dict[str, Any] = {"seed": seed}
    if kind == "duration":
        load["sleep"] = 0.4
    elif kind == "result_drift":
        load["drift"] = True
    elif kind == "failure_rate":
        load["fail"] = True
    return load


def detections(engine: Engine, run: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        dict(e.meta or {})
        for e in engine.events(int(run["execution_id"]))
        if e.event_type == "anomaly.detected"
    ]


def quality(
    engine: Engine, folder: Path, warmup: int, cycles: int, seed: int, verbose: bool = False
) -> dict[str, Any]:
    path = folder / "anomaly_bench.yaml"
    path.write_text(PLAYBOOK)
    flow = engine.load(path)
    rng = random.Random(seed)
    found: dict[str, list[bool]] = defaultdict(list)  # kind -> right or wrong, per detection
    hit: dict[str, set[int]] = defaultdict(set)  # kind -> injections detected
    injected: dict[str, set[int]] = defaultdict(set)
    started = time.perf_counter()
    for kind, number in schedule(warmup, cycles):
        run = engine.run(flow, workload(kind, rng.randrange(1 << 30)), timeout=60)
        if kind != "normal":
            injected[kind].add(number)
            if verbose:
                print(kind, number, [(a["kind"], a["step"]) for a in detections(engine, run)])
        for anomaly in detections(engine, run):
            right = anomaly["kind"] == kind and anomaly["step"] == WHERE[kind]
            if not right and verbose:
                print("wrong:", kind, anomaly)
            found[anomaly["kind"]].append(right)
            if right:
                hit[kind].add(number)
    elapsed = time.perf_counter() - started
    rows = {}
    for kind in KINDS:
        detected = found[kind]
        rows[kind] = {
            "injected": len(injected[kind]),
            "detections": len(detected),
            "precision": sum(detected) / len(detected) if detected else 0.0,
            "recall": len(hit[kind]) / len(injected[kind]) if injected[kind] else 0.0,
        }
    every = [r for kind in KINDS for r in found[kind]]
    rows["overall"] = {
        "injected": sum(len(v) for v in injected.values()),
        "detections": len(every),
        "precision": sum(every) / len(every) if every else 0.0,
        "recall": sum(len(v) for v in hit.values())
        / max(1, sum(len(v) for v in injected.values())),
    }
    return {"rows": rows, "seconds": elapsed, "runs": len(schedule(warmup, cycles))}


class Timed:
    """An advisor that times the one it wraps (wall time spent in the detector)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.refresh_seconds = 0.0
        self.calls = 0

    def prepare(self, playbooks: set[str]) -> None:
        started = time.perf_counter()
        self.inner.prepare(playbooks)
        took = time.perf_counter() - started
        self.seconds += took
        self.refresh_seconds += took

    def advise(self, flow: Any, state: Any, outcome: Any) -> Any:
        started = time.perf_counter()
        try:
            return self.inner.advise(flow, state, outcome)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls += 1

    def observe(self, events: Any) -> None:
        started = time.perf_counter()
        self.inner.observe(events)
        self.seconds += time.perf_counter() - started


def overhead(folder: Path, db: str | None, rounds: int) -> dict[str, Any]:
    """W1 steps/s with and without detection (alternating rounds, after 25 runs of history
    each, so every step is judged) and the time spent in the detector per step."""
    path = w1_chain(folder)
    on: list[float] = []
    off: list[float] = []
    cpu_on: list[float] = []
    cpu_off: list[float] = []
    engines = [
        Engine(folder / "w1-on", db=db, anomalies=True),
        Engine(folder / "w1-off", db=db, anomalies=False),
    ]
    timed = Timed(engines[0].orchestrator.advisor)
    engines[0].orchestrator.advisor = timed
    try:
        flows = [e.load(path) for e in engines]
        for engine, flow in zip(engines, flows, strict=True):
            for _ in range(25):
                assert engine.run(flow)["status"] == "completed"
        detector = engines[0].detector
        assert detector is not None
        detector.baselines.refresh(force=True)  # steady state: the history read once
        timed.seconds, timed.refresh_seconds, timed.calls = 0.0, 0.0, 0
        for _ in range(rounds):
            for figures, cpu, engine, flow in zip(
                (on, off), (cpu_on, cpu_off), engines, flows, strict=True
            ):
                started, cpu_started = time.perf_counter(), time.process_time()
                summary = engine.run(flow)
                assert summary["status"] == "completed" and summary["result"] == 100
                figures.append(100 / (time.perf_counter() - started))
                cpu.append(1e6 * (time.process_time() - cpu_started) / 100)
        judged = engines[0].detector
        assert judged is not None and len(judged.baselines.steps) == 100
    finally:
        for engine in engines:
            engine.close()
    return {
        "on": on,
        "off": off,
        "cpu_on": cpu_on,
        "cpu_off": cpu_off,
        "per_step_us": 1e6 * timed.seconds / max(1, timed.calls),
        "refresh_per_step_us": 1e6 * timed.refresh_seconds / max(1, timed.calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning.anomalies")
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary home)")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--verbose", action="store_true", help="print every injection and miss")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with Engine(folder / "home", db=args.db, concurrency=16) as engine:
            report = quality(engine, folder, args.warmup, args.cycles, args.seed, args.verbose)
        print(f"{report['runs']} runs in {report['seconds']:.1f} s")
        print(f"{'kind':14s} {'injected':>8s} {'detections':>10s} {'precision':>9s} {'recall':>6s}")
        for kind, row in report["rows"].items():
            print(
                f"{kind:14s} {row['injected']:8d} {row['detections']:10d} "
                f"{row['precision']:9.2f} {row['recall']:6.2f}"
            )
        w1 = overhead(folder, args.db, args.rounds)
        for label, figures in (("with", w1["on"]), ("without", w1["off"])):
            print(
                f"W1 {label + ' detection':18s} best {max(figures):5.0f}, median "
                f"{statistics.median(figures):5.0f} steps/s  rounds: "
                + " ".join(f"{f:.0f}" for f in figures)
            )
        for label, figures in (("with", w1["cpu_on"]), ("without", w1["cpu_off"])):
            print(
                f"W1 {label + ' detection':18s} least {min(figures):5.0f}, median "
                f"{statistics.median(figures):5.0f} us of CPU per step (this process, "
                "engine and worker threads)"
            )
        best = 100 * (max(w1["off"]) - max(w1["on"])) / max(w1["off"])
        middle = statistics.median(w1["off"])
        typical = 100 * (middle - statistics.median(w1["on"])) / middle
        cpu = 100 * (min(w1["cpu_on"]) - min(w1["cpu_off"])) / min(w1["cpu_off"])
        print(
            f"W1 overhead: {best:+.1f} % (best vs best), {typical:+.1f} % (median vs median), "
            f"{cpu:+.1f} % of CPU (least vs least)"
        )
        step_us = 1e6 / statistics.median(w1["on"])
        print(
            f"time in the detector: {w1['per_step_us']:.1f} us per step "
            f"({100 * w1['per_step_us'] / step_us:.1f} % of a W1 step's {step_us:.0f} us), "
            f"of which {w1['refresh_per_step_us']:.1f} us reading other processes' events"
        )
        low = min(min(r["precision"], r["recall"]) for r in report["rows"].values())
        if low < 0.9:
            raise SystemExit(f"precision or recall below 0.9 ({low:.2f})")


if __name__ == "__main__":
    main()
