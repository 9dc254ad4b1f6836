"""Qdrant Edge at scale: 100k 384-dimension points in one ``failures`` shard.

    python -m benchmarks.learning.vectors_scale [--points 100000] [--queries 500]

Vectors are random but shaped like embeddings (clustered around 2,000 centres, unit
length); payloads carry a playbook (one of 50) and a step. Reports insert points/s
(upserts of 1,000, each flushed), the HNSW build (``optimize``, once at the end, timed
apart), dense query latency p50/p99 without and with a payload filter (k=10), and the
time to reopen the shard. Target: query p99 < 20 ms.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from playloop.learn.qdrant_edge_index import EdgeBackend
from playloop.learn.vectors import COLLECTIONS, INDEXED_ALWAYS, CollectionMeta, Stored

DIM = 384


def vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(2000, DIM)).astype(np.float32)
    v = centres[rng.integers(0, 2000, n)] + 0.35 * rng.normal(size=(n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


def percentile(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, p))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    data = vectors(args.points, rng)
    with tempfile.TemporaryDirectory() as tmp:
        backend = EdgeBackend(Path(tmp))
        meta = CollectionMeta("random", DIM)
        backend.ensure("failures", meta, COLLECTIONS["failures"] + INDEXED_ALWAYS)
        started = time.perf_counter()
        for start in range(0, args.points, 1000):
            backend.upsert(
                "failures",
                [
                    Stored(
                        i + 1,
                        data[i].tolist(),
                        ([i % 1000], [1.0]),
                        {"playbook": f"pb/{i % 50}", "step": f"s{i % 7}", "text_hash": str(i)},
                    )
                    for i in range(start, min(start + 1000, args.points))
                ],
            )
        inserted = time.perf_counter() - started
        started = time.perf_counter()
        backend.optimize("failures")
        optimized = time.perf_counter() - started
        queries = vectors(args.queries, rng).tolist()
        for q in queries[:20]:
            backend.dense("failures", q, 10, None)
        plain, filtered = [], []
        for i, q in enumerate(queries):
            t = time.perf_counter()
            backend.dense("failures", q, 10, None)
            plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            backend.dense("failures", q, 10, {"playbook": f"pb/{i % 50}"})
            filtered.append(time.perf_counter() - t)
        backend.close()
        started = time.perf_counter()
        reopened = EdgeBackend(Path(tmp))
        count = reopened.count("failures")
        reopen = time.perf_counter() - started
        reopened.close()
    assert count == args.points, count
    print(f"{args.points} points, {DIM} dims, Qdrant Edge")
    print(
        f"insert: {args.points / inserted:.0f} points/s; HNSW build (optimize): {optimized:.1f} s"
    )
    print(f"query k=10: p50 {percentile(plain, 50):.2f} ms, p99 {percentile(plain, 99):.2f} ms")
    print(
        f"filtered (1 of 50 playbooks): p50 {percentile(filtered, 50):.2f} ms, "
        f"p99 {percentile(filtered, 99):.2f} ms"
    )
    print(f"reopen + count: {reopen * 1000:.0f} ms")


if __name__ == "__main__":
    main()
