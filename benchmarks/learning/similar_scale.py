"""Similar failures at scale, the indexer's throughput and ``playloop similar``'s cold start.

    python -m benchmarks.learning.similar_scale [--points 100000] [--distinct 2000]
        [--queries 300] [--events 3000] [--cold 5]

1. Query latency: ``--points`` failure points in a Qdrant Edge ``failures`` shard. Their texts
   come from templates of real errors (PostgreSQL, HTTP, DNS, TLS, OS errnos, Python, cloud
   SDKs) with varying hosts, ports, tables and codes; ``--distinct`` texts are embedded for
   real (the bundled MiniLM) and the points reuse them with different payloads (playbook,
   step, execution): embedding 100k texts takes too long on 2 cores. Queries are new texts
   of the same templates. Reports ``similar_failures`` p50/p99 end to end (embedding the
   query included) and with the query's vector cached (the index alone).
2. Indexer throughput: ``--events`` failure events appended to a SQLite event log (about a
   tenth distinct messages), then one indexer catches up: events/s, against the engine's
   event rate (W1, events/s) measured in the same process.
3. Cold start: ``playloop similar "..." --json`` as a subprocess, ``--cold`` times.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEMPLATES = [
    'psycopg.OperationalError: connection to server at "{host}" ({ip}), port {port} failed: '
    "Connection refused",
    "psycopg.errors.UniqueViolation: duplicate key value violates unique constraint "
    '"{table}_pkey" DETAIL: Key (id)=({n}) already exists.',
    'psycopg.errors.UndefinedTable: relation "{table}" does not exist LINE 1: SELECT * FROM {table}',
    "HTTPStatusError: Server error '503 Service Unavailable' for url 'https://{host}/api/v1/{table}'",
    "HTTPStatusError: Client error '429 Too Many Requests' for url 'https://{host}/{table}' "
    "Retry-After: {n}",
    "HTTPStatusError: Client error '404 Not Found' for url 'https://{host}/{table}/{n}'",
    "ConnectError: [Errno 111] Connection refused: GET http://{ip}:{port}/{table}",
    "ConnectError: [Errno -2] Name or service not known: {host}",
    "ConnectTimeout: timed out connecting to {host}:{port} after {n} s",
    "SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local "
    "issuer certificate ({host})",
    "KeyError: '{table}'",
    "ValueError: invalid literal for int() with base 10: '{table}{n}'",
    "ZeroDivisionError: division by zero in step {table}",
    "MemoryError: cannot allocate {n} MB while loading {table}",
    "PermissionError: [Errno 13] Permission denied: '/data/{table}/{n}.csv'",
    "FileNotFoundError: [Errno 2] No such file or directory: '/data/{table}.parquet'",
    "OSError: [Errno 28] No space left on device: '/var/lib/{table}'",
    "botocore.exceptions.ClientError: An error occurred (AccessDenied) when calling the "
    "GetObject operation on s3://{host}/{table}",
    "botocore.exceptions.NoCredentialsError: Unable to locate credentials for {host}",
    "google.api_core.exceptions.Forbidden: 403 POST https://bigquery.googleapis.com/{table}: "
    "Access Denied",
    "duckdb.CatalogException: Catalog Error: Table with name {table} does not exist!",
    "TimeoutError: step exceeded its timeout of {n} s",
    "json.decoder.JSONDecodeError: Expecting value: line {n} column 1 (char 0) from {host}",
    "redis.exceptions.ConnectionError: Error 111 connecting to {ip}:{port}. Connection refused.",
]
HOSTS = ["orders.internal", "api.example.com", "db-primary", "warehouse", "s3.eu-west-1"]
TABLES = ["orders", "customers", "invoices", "events", "payments", "shipments", "users"]


def error_text(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(
        host=f"{rng.choice(HOSTS)}{rng.randint(1, 40)}",
        ip=f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        port=rng.choice([5432, 6379, 8080, 443, rng.randint(1024, 65535)]),
        table=rng.choice(TABLES),
        n=rng.randint(1, 100_000),
    )


def pct(xs: list[float], p: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def query_latency(points: int, distinct: int, queries: int, folder: Path) -> None:
    from playloop.learn.embed import OnnxEmbedder
    from playloop.learn.service import CachedEmbedder
    from playloop.learn.similar import similar_failures
    from playloop.learn.vectors import Item, VectorIndex

    rng = random.Random(7)
    texts = list(dict.fromkeys(error_text(rng) for _ in range(distinct * 2)))[:distinct]
    embedder = CachedEmbedder(OnnxEmbedder(), size=distinct + queries + 10)
    started = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - started
    print(
        f"embedded {len(texts)} distinct failure texts in {embed_s:.1f}s "
        f"({len(texts) / embed_s:.0f}/s)"
    )
    index = VectorIndex.open(folder, embedder)
    started = time.perf_counter()
    batch = 2_000
    for first in range(0, points, batch):
        items = [
            Item(
                i + 1,
                texts[i % len(texts)],
                {
                    "playbook": f"team{i % 50}/pipeline{i % 7}",
                    "step": f"step{i % 13}",
                    "execution_id": str(10_000_000 + i // 3),
                    "event_id": str(i + 1),
                    "error": texts[i % len(texts)][:200],
                    "resolution": [{"kind": "retry", "note": "attempt 2 succeeded"}]
                    if i % 4 == 0
                    else [],
                },
            )
            for i in range(first, min(points, first + batch))
        ]
        index.upsert("failures", items)
    index.optimize("failures")
    print(
        f"wrote {points} points in {time.perf_counter() - started:.1f}s "
        f"(count {index.count('failures')})"
    )
    asks = [error_text(rng) for _ in range(queries)]
    for label, warm in (("end to end (query embedded)", False), ("query vector cached", True)):
        if warm:
            embedder.embed(asks)
        else:
            embedder._cache.clear()
            embedder.embed(texts[:1])
        times = []
        for text in asks:
            t = time.perf_counter()
            found = similar_failures(index, text, k=5)
            times.append(time.perf_counter() - t)
            assert found
        print(
            f"similar_failures at {points} points, {label}: p50 {pct(times, 50):.1f} ms, "
            f"p99 {pct(times, 99):.1f} ms"
        )
    index.close()


def indexer_rate(events: int, folder: Path) -> None:
    from benchmarks.__main__ import bench_w1
    from playloop.engine.events import Event, new_id, utcnow
    from playloop.learn.indexer import Indexer
    from playloop.runtime import Engine
    from playloop.store.sqlite import SqliteStore

    rng = random.Random(11)
    messages = [error_text(rng) for _ in range(max(1, events // 10))]
    store = SqliteStore(folder / "events.db")
    rows = []
    for i in range(events):
        execution_id = new_id()
        rows.append(
            Event(
                execution_id=execution_id,
                seq=1,
                event_type="step.failed",
                playbook_path=f"team{i % 20}/pipeline",
                event_id=new_id(),
                step_name=f"step{i % 9}",
                status="failed",
                attempt=1,
                error_type="Error",
                error_message=messages[i % len(messages)],
                created_at=utcnow(),
            )
        )
    for first in range(0, len(rows), 500):
        store.append(rows[first : first + 500])
    store.close()
    time.sleep(0.1)
    indexer = Indexer(SqliteStore(folder / "events.db"), folder / "home", lag=0.0)
    assert indexer.claim()
    started = time.perf_counter()
    done = indexer.catch_up()
    took = time.perf_counter() - started
    indexer.close()
    rate = done.events / took
    print(
        f"indexer: {done.events} failure events ({len(messages)} distinct messages) in "
        f"{took:.1f}s = {rate:.0f} events/s"
    )
    with Engine(folder / "w1", concurrency=16) as engine:
        bench_w1(engine, folder)
        steps = bench_w1(engine, folder)
    print(
        f"engine W1: {steps:.0f} steps/s = ~{steps * 3:.0f} events/s (3 per step), of which "
        "failures are a small part: the indexer reads failures, resolutions and decisions only"
    )


def cold_start(runs: int, folder: Path) -> None:
    env = {**os.environ, "PLAYLOOP_HOME": str(folder)}
    playloop = str(Path(sys.executable).with_name("playloop"))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run(
            [playloop, "similar", "connection refused by the orders service", "--json"],
            env=env,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - t)
        assert done.returncode == 0, done.stderr
    print(
        f"playloop similar, cold start ({runs} runs): median {statistics.median(times):.2f}s, "
        f"max {max(times):.2f}s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--distinct", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--events", type=int, default=3_000)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        query_latency(args.points, args.distinct, args.queries, folder / "home")
        cold_start(args.cold, folder / "home")
        indexer_rate(args.events, folder)


if __name__ == "__main__":
    main()
