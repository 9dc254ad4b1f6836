"""Run the benchmark workloads and print steps/s (and executions/s for W3).

    python -m benchmarks [--rounds 3] [--profile W1]

Each workload runs ``--rounds`` times in one process after a warm-up; the best round is
reported, and each figure is also given as a ratio to the first round of the same run
(these machines are noisy: compare ratios within a run, not absolute times across runs).
Every event is written to SQLite (WAL, synchronous=NORMAL) as in production.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.workloads import w1_chain, w2_fan_out, w3_one_step
from playloop.engine.events import Event, new_id, utcnow
from playloop.runtime import Engine
from playloop.store.sqlite import SqliteStore


def _best(rounds: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    figures = [fn() for _ in range(rounds)]
    return max(figures), figures


def bench_w1(engine: Engine, folder: Path) -> float:
    flow = engine.load(w1_chain(folder))
    started = time.perf_counter()
    summary = engine.run(flow)
    assert summary["status"] == "completed" and summary["result"] == 100, summary
    return 100 / (time.perf_counter() - started)


def bench_w2(engine: Engine, folder: Path) -> float:
    flow = engine.load(w2_fan_out(folder))
    started = time.perf_counter()
    summary = engine.run(flow)
    assert summary["status"] == "completed", summary
    return 202 / (time.perf_counter() - started)


def bench_w3(engine: Engine, folder: Path) -> float:
    flow = engine.load(w3_one_step(folder))
    started = time.perf_counter()
    for _ in range(200):
        assert engine.run(flow)["status"] == "completed"
    return 200 / (time.perf_counter() - started)


def bench_append(folder: Path, batch: int) -> float:
    store = SqliteStore(folder / f"append-{batch}.db")
    total = 5000
    execution_id = new_id()
    started = time.perf_counter()
    for first in range(1, total + 1, batch):
        store.append(
            [
                Event(
                    execution_id=execution_id,
                    seq=seq,
                    event_type="step.finished",
                    playbook_path="bench/append",
                    event_id=new_id(),
                    step_name=f"s{seq}",
                    status="completed",
                    result={"value": seq},
                    created_at=utcnow(),
                )
                for seq in range(first, min(first + batch, total + 1))
            ]
        )
    rate = total / (time.perf_counter() - started)
    store.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--index",
        action="store_true",
        help="keep the vector index up to date in the background (as playloop run does)",
    )
    parser.add_argument(
        "--profile", choices=["W1", "W2", "W3"], help="profile one workload with pyinstrument"
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with Engine(folder / "home", concurrency=16, index=args.index) as engine:
            bench_w3(engine, folder)  # warm-up: child processes, caches
            if args.profile:
                from pyinstrument import Profiler

                fn = {"W1": bench_w1, "W2": bench_w2, "W3": bench_w3}[args.profile]
                with Profiler() as profiler:
                    fn(engine, folder)
                profiler.print()
                return
            rows = [
                ("W1 chain of 100 python steps", "steps/s", lambda: bench_w1(engine, folder)),
                ("W2 fan-out of 200 + join", "steps/s", lambda: bench_w2(engine, folder)),
                ("W3 one-step playbook x 200", "executions/s", lambda: bench_w3(engine, folder)),
            ]
            for name, unit, fn in rows:
                best, figures = _best(args.rounds, fn)
                ratios = " ".join(f"{f / figures[0]:.2f}" for f in figures)
                print(
                    f"{name:34s} {best:9.0f} {unit:13s} rounds: {' '.join(f'{f:.0f}' for f in figures)} "
                    f"(ratio to round 1: {ratios})"
                )
        from playloop.dsl.load import load_text

        def bench_load() -> float:
            """Playbooks loaded per second: a 202-step chain, new templates each time."""
            text = (
                w2_fan_out(folder).read_text().replace("w2_fan_out", f"load_{time.monotonic_ns()}")
            )
            started = time.process_time()
            load_text(text)
            return 1 / (time.process_time() - started)

        best, figures = _best(args.rounds, bench_load)
        print(
            f"{'load + validate a 202-step playbook':34s} {1000 / best:9.1f} ms of CPU   "
            f"rounds: {' '.join(f'{1000 / f:.1f}' for f in figures)}"
        )
        for batch in (1, 100):
            best, figures = _best(args.rounds, lambda b=batch: bench_append(folder, b))
            print(
                f"{f'event append, {batch} per transaction':34s} {best:9.0f} events/s      "
                f"rounds: {' '.join(f'{f:.0f}' for f in figures)}"
            )


if __name__ == "__main__":
    main()
