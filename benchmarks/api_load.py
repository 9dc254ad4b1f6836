"""Two servers and three workers on one database: executions started through the HTTP API.

    python -m benchmarks.api_load --db postgresql://... [--executions 1000]

Every execution is a 5-step chain of trivial python steps. Prints how long it took to
start them, steps/s end to end, and dispatch latency p50/p99: from a step's recorded
finish to the moment the next step's tool began running. Checks that every execution
completed and that every step finished exactly once (none advanced twice).
"""

from __future__ import annotations

import argparse
import itertools
import signal
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from tests.distributed.helpers import chain, start_server, start_worker

from playloop.store.open import open_store

STEPS = 5


def run_load(
    db_url: str, folder: Path, executions: int = 1000, servers: int = 2, workers: int = 3
) -> dict[str, Any]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for i in range(servers):
            proc, url = start_server(db_url, folder / f"server{i}")
            procs.append(proc)
            urls.append(url)
        procs += [
            start_worker(db_url, folder / f"worker{i}", concurrency=16, lease_seconds=30)
            for i in range(workers)
        ]
        clients = [httpx.Client(base_url=url, timeout=60) for url in urls]
        try:
            assert (
                clients[0]
                .post("/api/catalog/register", json={"content": chain("apiload", STEPS)})
                .status_code
                == 200
            )
            started = time.perf_counter()

            def execute(i: int) -> str:
                response = clients[i % len(clients)].post(
                    "/api/execute", json={"path": "tests/apiload"}
                )
                assert response.status_code == 202, response.text
                return str(response.json()["execution_id"])

            with ThreadPoolExecutor(8) as pool:
                ids = list(pool.map(execute, range(executions)))
            submitted = time.perf_counter() - started
            deadline = time.time() + 600
            while True:
                body = (
                    clients[0]
                    .get("/api/executions", params={"status": "running", "limit": 1})
                    .json()
                )
                if not body["items"]:
                    break
                assert time.time() < deadline, "executions still running after 10 minutes"
                time.sleep(0.1)
            elapsed = time.perf_counter() - started
        finally:
            for client in clients:
                client.close()
        return _verify(db_url, ids, submitted, elapsed)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)


def _verify(db_url: str, ids: list[str], submitted: float, elapsed: float) -> dict[str, Any]:
    store = open_store(db_url)
    try:
        statuses = [store.get_execution(int(i)) for i in ids]
        assert all(row is not None and row.status == "completed" for row in statuses)
        latencies: list[float] = []
        doubled = 0
        for execution_id in ids:
            finished = [
                e for e in store.read_events(int(execution_id)) if e.event_type == "step.finished"
            ]
            names = [e.step_name for e in finished]
            doubled += len(names) - len(set(names))
            assert sorted(set(names)) == [f"s{i}" for i in range(STEPS)], names
            for prev, nxt in itertools.pairwise(finished):
                if nxt.duration_ms is None:
                    continue
                gap = datetime.fromisoformat(nxt.created_at).timestamp() - nxt.duration_ms / 1000
                latencies.append(
                    max(0.0, (gap - datetime.fromisoformat(prev.created_at).timestamp()) * 1000)
                )
    finally:
        store.close()
    latencies.sort()
    return {
        "executions": len(ids),
        "steps": len(ids) * STEPS,
        "doubled": doubled,
        "submit_s": round(submitted, 2),
        "elapsed_s": round(elapsed, 2),
        "steps_per_s": round(len(ids) * STEPS / elapsed),
        "dispatch_p50_ms": round(statistics.median(latencies), 2),
        "dispatch_p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api_load")
    parser.add_argument("--db", required=True)
    parser.add_argument("--executions", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(run_load(args.db, Path(tmp), args.executions))


if __name__ == "__main__":
    main()
