"""W1/W2/W3 on a shared database with separate worker processes, and dispatch latency.

    python -m benchmarks.distributed --db postgresql://... [--workers 2] [--rounds 3]

A client engine that runs no steps starts each execution; ``--workers`` worker processes
(``playloop worker start``) claim and run the steps. Dispatch latency is the time from a
step's recorded finish (its ``step.finished`` commit) to the moment the next step's tool
began running (that step's ``step.finished`` time minus its duration).
"""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchmarks.workloads import w1_chain, w2_fan_out, w3_one_step
from playloop.runtime import Engine

WORKER = "import sys; from playloop.cli_worker import worker_app; worker_app(sys.argv[1:])"


def start_workers(
    db: str, folder: Path, count: int, concurrency: int
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(count):
        home = folder / f"worker{i}"
        home.mkdir(parents=True, exist_ok=True)
        with (home / "log").open("ab") as log:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        WORKER,
                        "start",
                        "--db",
                        db,
                        "--home",
                        str(home),
                        "--concurrency",
                        str(concurrency),
                        "--processes",
                        "2",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    time.sleep(1.5)
    return procs


def dispatch_latencies_ms(engine: Engine, execution_id: int) -> list[float]:
    """For each chained step: next tool start minus previous step's finish commit."""
    finished = [e for e in engine.events(execution_id) if e.event_type == "step.finished"]
    out = []
    for prev, nxt in itertools.pairwise(finished):
        if nxt.duration_ms is None:
            continue
        prev_end = datetime.fromisoformat(prev.created_at).timestamp()
        next_start = datetime.fromisoformat(nxt.created_at).timestamp() - nxt.duration_ms / 1000
        out.append(max(0.0, (next_start - prev_end) * 1000))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed")
    parser.add_argument("--db", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        workers = start_workers(args.db, folder, args.workers, args.concurrency)
        try:
            with Engine(folder / "client", db=args.db, concurrency=0) as client:
                w1, w2, w3 = (client.load(f(folder)) for f in (w1_chain, w2_fan_out, w3_one_step))
                client.run(w3)  # warm-up
                latencies: list[float] = []
                for name, flow, steps, repeat in (("W1 chain of 100", w1, 100, 1), ("W2 fan-out 200 + join", w2, 202, 1),
                                                   ("W3 one-step x 200", w3, 1, 200)):  # fmt: skip
                    figures = []
                    for _ in range(args.rounds):
                        started = time.perf_counter()
                        if repeat == 1:
                            execution_id = client.start(flow)
                            summary = client.wait(execution_id, timeout=600)
                            assert summary["status"] == "completed", summary
                            if flow is w1:
                                latencies += dispatch_latencies_ms(client, execution_id)
                        else:
                            ids = [client.start(flow) for _ in range(repeat)]
                            for execution_id in ids:
                                assert (
                                    client.wait(execution_id, timeout=600)["status"] == "completed"
                                )
                        figures.append(steps * repeat / (time.perf_counter() - started))
                    unit = "executions/s" if repeat > 1 else "steps/s"
                    print(
                        f"{name:24s} {max(figures):8.0f} {unit:13s} rounds: {' '.join(f'{f:.0f}' for f in figures)}"
                    )
                print(
                    f"dispatch latency (W1, {len(latencies)} hand-offs): p50 {statistics.median(latencies):.2f} ms, "
                    f"p99 {pct(latencies, 0.99):.2f} ms"
                )
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(timeout=60)


if __name__ == "__main__":
    main()
