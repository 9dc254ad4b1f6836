"""The vector index on real Qdrant Edge shards with the bundled ONNX embedder, and the
server path on qdrant-client's local mode (which stands in for a Qdrant server here)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from playloop.learn.embed import OnnxEmbedder
from playloop.learn.qdrant_server_index import ServerBackend
from playloop.learn.vectors import (
    EmbedderMismatch,
    Item,
    UnknownCollection,
    VectorIndex,
    point_id,
)

#: qdrant-client's local mode warns that it ignores payload indexes (a server uses them)
pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

FAILURES = [
    ("connect ECONNREFUSED 127.0.0.1:5432", "load", "tcp"),
    ("ConnectionResetError: [Errno 104] Connection reset by peer", "load", "tcp"),
    ("HTTP 429 Too Many Requests: rate limit exceeded", "fetch", "http"),
    ("HTTP 409 Conflict: the object has been modified", "fetch", "http"),
    ("duplicate key value violates unique constraint (SQLSTATE 23505)", "load", "postgres"),
    ("OSError: [Errno 28] No space left on device", "export", "python"),
]


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder()


def items(playbook: str = "etl/daily") -> list[Item]:
    return [
        Item(1000 + i, text, {"playbook": playbook, "step": step, "tool": tool})
        for i, (text, step, tool) in enumerate(FAILURES)
    ]


@pytest.fixture(params=["edge", "server"])
def index(
    request: pytest.FixtureRequest, tmp_path: Path, embedder: OnnxEmbedder
) -> Iterator[VectorIndex]:
    """Qdrant Edge under tmp_path, or the server path on qdrant-client's local mode."""
    if request.param == "edge":
        ix = VectorIndex.open(tmp_path, embedder)
    else:
        ix = VectorIndex(ServerBackend(QdrantClient(":memory:")), embedder, where=":memory:")
    yield ix
    ix.close()


def test_upsert_is_idempotent_and_reuses_vectors(index: VectorIndex) -> None:
    assert index.count("failures") == 0
    assert index.upsert("failures", items()) == 6
    assert index.stats == {"embedded": 6, "reused": 0}
    assert index.upsert("failures", items()) == 6
    assert index.count("failures") == 6
    assert index.stats == {"embedded": 6, "reused": 6}  # nothing embedded twice
    index.upsert("failures", [Item(2000, FAILURES[0][0], {"playbook": "other"})])
    assert index.stats["embedded"] == 6  # same text, new id: the hash cache
    assert index.count("failures") == 7


def test_modes_scores_and_filters(index: VectorIndex) -> None:
    index.upsert(
        "failures",
        [*items("etl/daily"), Item(7, "HTTP 429 Too Many Requests", {"playbook": "etl/hourly"})],
    )
    for mode in ("dense", "bm25", "hybrid"):
        hits = index.search("failures", "ECONNREFUSED connecting to postgres", mode=mode, k=3)
        assert hits and hits[0].id == 1000, (mode, hits)
        assert all(0.0 <= h.score <= 1.0 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    hits = index.search("failures", "rate limited: 429", where={"playbook": "etl/hourly"})
    assert [h.id for h in hits] == [7]
    hits = index.search("failures", "rate limited: 429", where={"tool": ["http", "tcp"]}, k=10)
    assert {h.payload["tool"] for h in hits} == {"http", "tcp"}
    assert index.search("failures", "rate limited", min_score=0.99) == []
    top = index.search("failures", "HTTP 429 Too Many Requests", k=1)[0]
    assert top.payload["text"] == "HTTP 429 Too Many Requests"
    assert top.dense is not None and top.dense > 0.99 and top.score > 0.8


def test_hybrid_finds_codes_that_embeddings_blur(index: VectorIndex) -> None:
    """Error codes are BM25 terms: 23505 and ECONNREFUSED find their failure first."""
    index.upsert("failures", items())
    assert index.search("failures", "23505", mode="bm25", k=1)[0].id == 1004
    assert index.search("failures", "SQLSTATE 23505", k=1)[0].id == 1004
    assert index.search("failures", "ECONNREFUSED", k=1)[0].id == 1000
    assert index.search("failures", "errno 28", k=1)[0].id == 1005


def test_unknown_collection(index: VectorIndex) -> None:
    with pytest.raises(UnknownCollection, match="failures, playbooks, decisions"):
        index.search("nope", "x")


def test_point_ids_are_deterministic() -> None:
    assert point_id(42) == 42
    assert point_id("data/ingestion/daily_load") == point_id("data/ingestion/daily_load")
    assert 0 <= point_id("x") < 2**63


class Other:
    name = "other-model"
    dim = 8

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 8), dtype=np.float32) / np.sqrt(8)


def test_another_embedder_is_a_clear_error(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    with VectorIndex.open(tmp_path, embedder) as ix:
        ix.upsert(
            "playbooks",
            [Item(point_id("etl/daily"), "loads the warehouse daily", {"path": "etl/daily"})],
        )
    with pytest.raises(EmbedderMismatch) as e:
        VectorIndex.open(tmp_path, Other())
    message = str(e.value)
    assert "all-MiniLM-L6-v2 (384" in message and "other-model (8" in message
    assert "playloop learn rebuild" in message
    with VectorIndex.open(tmp_path, embedder) as ix:  # the same model reopens, data kept
        assert ix.count("playbooks") == 1
        ix.drop("playbooks")
        assert ix.count("playbooks") == 0
    with VectorIndex.open(tmp_path, Other()) as ix:  # after a drop, any model may build it
        ix.upsert("playbooks", [Item(1, "x")])


def test_server_mismatch_on_qdrant_client_local_mode(embedder: OnnxEmbedder) -> None:
    """The server path's meta lives in the collection's metadata (qdrant-client local mode)."""
    client = QdrantClient(":memory:")
    VectorIndex(ServerBackend(client), embedder, where="m").upsert(
        "decisions", [Item(1, "approve")]
    )
    with pytest.raises(EmbedderMismatch, match="playloop learn rebuild"):
        VectorIndex(ServerBackend(client), Other(), where="m").search("decisions", "x")


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from playloop.learn.vectors import Item, VectorIndex
    index = VectorIndex.open(Path(sys.argv[1]))
    n = 0
    deadline = time.monotonic() + float(sys.argv[2])
    print("ready", flush=True)
    while time.monotonic() < deadline:
        index.upsert("failures", [Item(10_000 + n + i, f"error {n + i}: timeout") for i in range(8)])
        n += 8
    index.close()
    print(n, flush=True)
    """
)


@pytest.mark.slow
def test_a_reader_and_a_writer_in_two_processes(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    """Qdrant Edge's shard has one owner: the processes hand it over, nobody crashes."""
    with VectorIndex.open(tmp_path, embedder) as ix:
        ix.upsert("failures", items())
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), "6"], stdout=subprocess.PIPE, text=True
    ) as writer:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
        searches = 0
        with VectorIndex.open(tmp_path, embedder, wait=20) as ix:
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                hits = ix.search("failures", "ECONNREFUSED", k=3)
                assert hits[0].id == 1000
                searches += 1
            counted = ix.count("failures")
        written = int(writer.stdout.readline())
        assert writer.wait(timeout=60) == 0
    assert searches > 5 and written > 8
    assert 6 < counted <= 6 + written
    with VectorIndex.open(tmp_path, embedder) as ix:
        assert ix.count("failures") == 6 + written


READER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from playloop.learn.vectors import VectorIndex
    with VectorIndex.open(Path(sys.argv[1]), wait=5) as index:
        started = time.perf_counter()
        hits = index.search("failures", "ECONNREFUSED", k=3)
        count = index.count("failures")
        held = index.backend._shards["failures"]._shard is not None
        seconds = time.perf_counter() - started
    print(json.dumps({"ids": [h.id for h in hits], "count": count, "held": held, "s": seconds}))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads through the owner: Linux")
def test_another_process_reads_through_the_owner(tmp_path: Path, embedder: OnnxEmbedder) -> None:
    """A process that holds a shard answers other processes' reads: it keeps the shard
    (no hand-over, which costs a flush, a close and a load) and the reader gets the same
    answers as the owner."""
    import json

    with VectorIndex.open(tmp_path, embedder) as owner:
        owner.upsert("failures", items())
        shard = owner.backend._shards["failures"]  # type: ignore[attr-defined]
        held = shard._shard
        assert held is not None
        mine = [h.id for h in owner.search("failures", "ECONNREFUSED", k=3)]
        done = subprocess.run(
            [sys.executable, "-c", READER, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["ids"] == mine and answer["ids"][0] == 1000
        assert answer["count"] == len(FAILURES)
        assert answer["held"] is False  # the reader never opened the shard
        assert shard._shard is held  # and the owner never let it go
        owner.upsert("failures", [Item(2000, "HTTP 503 Service Unavailable")])
    # nobody holds it now: the reader takes the shard itself
    done = subprocess.run(
        [sys.executable, "-c", READER, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["count"] == len(FAILURES) + 1 and answer["held"] is True
