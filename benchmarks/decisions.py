"""Decision latency and the cost of paused executions.

    python -m benchmarks.decisions [--db URL] [--decisions 200] [--paused 10000]

1. ``--decisions`` executions pause at an approval; another engine (the server's role)
   decides each: the time from submitting the decision to its commit, which appends
   ``decision.made`` and the next step's ``step.started`` in one transaction (p50/p99).
2. ``--paused`` executions are started and left paused: the running engine's memory (RSS)
   and the database connections it holds, before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from playloop.runtime import Engine

PLAYBOOK = """apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: bench_gate, path: bench/gate}
workflow:
  - step: ask
    tool: {kind: approval, prompt: "ok?"}
    next: [{step: after}]
  - step: after
    tool: {kind: noop, result: done}
"""


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connections(db: str | None) -> int | None:
    if not db or not db.startswith("postgres"):
        return None
    import psycopg

    with psycopg.connect(db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) - 1 if row else None


def pending(engine: Engine, want: int, timeout: float = 600) -> list[str]:
    deadline = time.time() + timeout
    while True:
        rows = engine.store.list_decisions(status="pending", limit=want + 10)
        if len(rows) >= want:
            return [r["decision_id"] for r in rows]
        assert time.time() < deadline, f"{len(rows)} of {want} paused"
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.decisions")
    parser.add_argument("--db", default=None)
    parser.add_argument("--decisions", type=int, default=200)
    parser.add_argument("--paused", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "gate.yaml").write_text(PLAYBOOK)
        db = args.db or f"sqlite:///{folder / 'home' / 'playloop.db'}"
        with (
            Engine(folder / "home", db=db) as runner,
            Engine(folder / "decider", db=db, concurrency=0) as decider,
        ):
            flow = runner.load(folder / "gate.yaml")
            ids = [runner.start(flow) for _ in range(args.decisions)]
            waits = []
            for decision_id in pending(decider, args.decisions):
                started = time.perf_counter()
                decider.decide(decision_id, "approve", actor="bench")
                waits.append((time.perf_counter() - started) * 1000)
            for execution_id in ids:
                assert runner.wait(execution_id, timeout=60)["status"] == "completed"
            waits.sort()
            print(
                f"decide -> next step queued (one commit), {len(waits)} decisions: "
                f"p50 {statistics.median(waits):.2f} ms, p99 {waits[int(0.99 * (len(waits) - 1))]:.2f} ms"
            )
            before_rss, before_conn = rss_mb(), connections(args.db)
            started = time.perf_counter()
            for _ in range(args.paused):
                runner.start(flow)
            pending(decider, args.paused)
            elapsed = time.perf_counter() - started
            print(
                f"{args.paused} paused executions in {elapsed:.1f} s: engine RSS {before_rss:.0f} -> "
                f"{rss_mb():.0f} MB, database connections {before_conn} -> {connections(args.db)}"
            )


if __name__ == "__main__":
    main()
